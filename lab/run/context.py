"""What every verb that needs the engine does first: connect, then clean up
after any lab process that died without doing so itself, whichever
orchestrator its run was on.

    engine(wanted)   the orchestrator a verb starts things with (--orchestrator)
    inventory()      every orchestrator's runs on this engine: what status,
                     down and logs look at, whatever --orchestrator says
"""

from __future__ import annotations

from ..console import say
from ..engine import Engine, Inventory, connect, connect_every, orchestrator

_inventory: Inventory | None = None
_engines: dict[str, Engine] = {}


def inventory() -> Inventory:
    """Every run on the engine (local containers and, on a Swarm manager,
    Swarm services); the first call sweeps the runs of dead lab processes."""
    global _inventory
    orchestrator()  # a bad LAB_ORCHESTRATOR is bad input here too, though only starting needs it
    if _inventory is None:
        _inventory = connect_every()
        for line in _inventory.sweep_dead():
            say(line)
    return _inventory


def engine(wanted: str | None = None) -> Engine:
    """The engine of ``wanted`` (--orchestrator; default LAB_ORCHESTRATOR, else local)."""
    name = orchestrator(wanted)
    if name not in _engines:
        found = inventory().engines.get(name)
        _engines[name] = found if found is not None else connect(name)
    return _engines[name]


def forget() -> None:
    """Connect afresh next time (a test that changes the engine under the lab)."""
    global _inventory
    _inventory = None
    _engines.clear()
