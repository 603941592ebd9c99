"""What a step may say, from its verdicts alone: the lesson only where the measurement agrees.

    said = conclude(verdicts, words)     # words: the step's parts in one language
    said.kind        "held" | "failed" | "not judged"
    said.answer      the answer with the figures in it (held only)
    said.lesson      the lesson (held), or the lesson still to be shown (not judged); never when failed
    said.instead     what was measured instead: the verdicts that did not hold
    said.why         why it was not judged

The rule (DESIGN.md, "For the learner"): a step never presents a lesson its
measurement contradicts.  One verdict that did not hold is enough to
withhold the lesson and say what was measured instead; a verdict that could
not be judged contradicts nothing, so the lesson is given, marked unproven.
Pure: verdicts in (checks.json's dicts), words out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .steps import fill, tidy

HELD, FAILED, NOT_JUDGED = "held", "failed", "not judged"


@dataclass(frozen=True)
class Said:
    kind: str
    answer: str | None = None
    lesson: str | None = None
    instead: list[dict[str, Any]] = field(default_factory=list)
    why: list[str] = field(default_factory=list)


def outcome(verdicts: list[dict[str, Any]]) -> str:
    """The worst of them: failed, else not judged (none at all counts), else held."""
    if any(v["ok"] is False for v in verdicts):
        return FAILED
    if not verdicts or any(v["ok"] is None for v in verdicts):
        return NOT_JUDGED
    return HELD


def conclude(verdicts: list[dict[str, Any]], words: dict[str, Any], errors: list[str] | None = None) -> Said:
    kind = outcome(verdicts)
    lesson = tidy(words.get("lesson", ""))
    if kind == FAILED:
        return Said(kind, instead=[v for v in verdicts if v["ok"] is False])
    if kind == NOT_JUDGED:
        why = [f"{v['model']} {v['check']}: {v['observed'].removeprefix('not judged: ')}"
               for v in verdicts if v["ok"] is None]
        return Said(kind, lesson=lesson, why=why or list(errors or []) or ["no check ran"])
    return Said(kind, answer=fill(str(words.get("answer", "")), verdicts), lesson=lesson)
