"""What every verb that needs the engine does first: connect to the
orchestrator asked for, then clean up after any lab process that died
without doing so itself."""

from __future__ import annotations

from .console import say
from .engine import Engine, connect, orchestrator

_engine: Engine | None = None


def engine(wanted: str | None = None) -> Engine:
    """The engine of ``wanted`` (--orchestrator; default LAB_ORCHESTRATOR, else local)."""
    global _engine
    name = orchestrator(wanted)
    if _engine is None or _engine.kind != name:
        _engine = connect(name)
        for line in _engine.sweep_dead():
            say(line)
    return _engine
