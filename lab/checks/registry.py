"""The judges' registry: each judge by name, the model.yaml keys it judges,
and the evidence it needs before it may say "held" or "did not hold".

lab/plan/scenarios.py reads it to validate a scenario's `judge:` and `expect:`;
lab/checks runs what it names.  It imports neither of them, so scenarios,
checks and judges have no import cycle: registry <- judges <- checks, and
registry <- scenarios.  `load()` imports lab/checks/judges.py and
client_side.py, whose `@judge(...)` decorators fill it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from . import Context, Verdict

Judge = Callable[["Context"], list["Verdict"]]


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Judge
    keys: tuple[str, ...]  # the model.yaml keys it can give verdicts on
    needs: tuple[str, ...]  # the evidence it needs: without it, "not judged: <what was missing>"
    host_cpu: bool  # depends on free CPU: its probes record what the host could give meanwhile


ENTRIES: dict[str, Entry] = {}
JUDGES: dict[str, Judge] = {}  # name -> function (what lab/verbs/compare.py calls)


def judge(*, keys: tuple[str, ...], needs: tuple[str, ...], host_cpu: bool = False) -> Callable[[Judge], Judge]:
    """Register a judge with the keys it judges and the evidence it needs."""
    if not keys or not needs:
        raise ValueError("a judge names the keys it judges and the evidence it needs")

    def register(fn: Judge) -> Judge:
        ENTRIES[fn.__name__] = Entry(fn.__name__, fn, keys, needs, host_cpu)
        JUDGES[fn.__name__] = fn
        return fn

    return register


def load() -> dict[str, Entry]:
    """Every registered judge (importing the judges registers them)."""
    for module in ("judges", "client_side"):  # their decorators fill ENTRIES
        importlib.import_module(f"{__package__}.{module}")
    return ENTRIES
