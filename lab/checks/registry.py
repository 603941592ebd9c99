"""The judges by name: each one's function and the evidence it needs before
it may say "held" or "did not hold".

    @judge(needs=("...", ...), host_cpu=True)
    def stalls(ctx: Context) -> list[Verdict]: ...

A judge's name is the one scenarios give in `judge:`, and the model.yaml
keys it gives verdicts on are the scenarios' table (lab/plan/scenarios.py
JUDGE_KEYS), so a scenario file is checked without importing any judge.
judges.py and client_side.py register theirs as they are imported
(runner.py imports both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..plan.scenarios import JUDGE_KEYS
from .context import Context
from .verdict import Verdict

Judge = Callable[[Context], list[Verdict]]


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Judge
    keys: tuple[str, ...]  # the model.yaml keys it can give verdicts on
    needs: tuple[str, ...]  # the evidence it needs: without it, "not judged: <what was missing>"
    host_cpu: bool  # depends on free CPU: its probes record what the host could give meanwhile


ENTRIES: dict[str, Entry] = {}
JUDGES: dict[str, Judge] = {}  # name -> function


def judge(*, needs: tuple[str, ...], host_cpu: bool = False) -> Callable[[Judge], Judge]:
    """Register a judge (a scenario's `judge:` names it) with the evidence it needs."""
    if not needs:
        raise ValueError("a judge names the evidence it needs")

    def register(fn: Judge) -> Judge:
        if fn.__name__ not in JUDGE_KEYS:
            raise ValueError(f"judge {fn.__name__} judges no key: add it to lab/plan/scenarios.py JUDGE_KEYS")
        ENTRIES[fn.__name__] = Entry(fn.__name__, fn, JUDGE_KEYS[fn.__name__], needs, host_cpu)
        JUDGES[fn.__name__] = fn
        return fn

    return register
