"""What every verb that needs the engine does first: connect, then clean up
after any lab process that died without doing so itself."""

from __future__ import annotations

from .console import say
from .engine import Engine

_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine()
        for line in _engine.sweep_dead():
            say(line)
    return _engine
