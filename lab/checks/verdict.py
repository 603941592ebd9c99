"""A check's outcome: a Verdict per model.yaml key, and what a verb that judged exits with.

A verdict is green only on positive evidence: a judge that lacks what it
needs raises Missing (through need()), and its verdict is "not judged:
<what was missing>" (ok None), never a pass and never a failure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ioschema import CHECKS_SCHEMA

from ..errors import ExpectationFailed, NotJudged, UsageError


NOT_JUDGED = "not judged: "


@dataclass
class Verdict:
    model: str
    check: str  # scenario name, or scenario:key when a scenario judges several keys
    expect: str  # the model.yaml key
    claim: str
    expected: str
    observed: str
    ok: bool | None  # None: not judged (evidence missing, or the host too busy)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        return self.ok is not None

    @property
    def outcome(self) -> str:
        return {True: "held", False: "failed", None: "not judged"}[self.ok]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "judged": self.judged, "outcome": self.outcome}


class Missing(Exception):
    """Evidence a judge needs is missing: its verdict is "not judged: <why>"."""

    def __init__(self, why: str, **figures: Any) -> None:
        super().__init__(why)
        self.figures = figures


def need(evidence: Any, why: str) -> None:
    """Go on only with ``evidence``; else the verdict is not judged, saying why."""
    if not evidence:
        raise Missing(why)


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    return {"held": sum(1 for v in verdicts if v.ok is True),
            "failed": sum(1 for v in verdicts if v.ok is False),
            "not_judged": sum(1 for v in verdicts if v.ok is None)}


def outcome(verdicts: list[Verdict]) -> str:
    """The worst outcome: failed, else not judged, else held."""
    n = counts(verdicts)
    return "failed" if n["failed"] else "not judged" if n["not_judged"] else "held"


def as_json(verdicts: list[Verdict], meta: dict[str, Any],
            skips: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"schema": CHECKS_SCHEMA, **meta, "passed": bool(verdicts) and all(v.ok for v in verdicts),
            "outcome": outcome(verdicts), **counts(verdicts), "skipped": skips or [],
            "checks": [v.as_dict() for v in verdicts]}


def conclude(verdicts: list[Verdict], where: str) -> int:
    """The exit of a verb that judged: 0 every verdict held; 1 one did not
    (ExpectationFailed); 3 none failed but some were not judged (NotJudged)."""
    if not verdicts:
        raise UsageError("no check ran: none of the scenarios judges a key these models declare")
    n = counts(verdicts)
    if n["failed"]:
        raise ExpectationFailed(f"{n['failed']} expectation(s) did not hold"
                                + (f", {n['not_judged']} not judged" if n["not_judged"] else "") + f"; see {where}")
    if n["not_judged"]:
        busy = sum(1 for v in verdicts if v.ok is None and v.figures.get("host_busy"))
        raise NotJudged(f"{n['not_judged']} expectation(s) could not be judged"
                        + (f" ({busy} because the host was busy)" if busy else "") + f"; see {where}")
    return 0
