"""The boundary with the orchestrator: every Docker SDK call the lab makes is in this package.

Two orchestrators implement one interface (base.py):

    local   lab/engine/local.py       each unit a container on one Docker engine
    swarm   lab/engine/swarmmode.py   each unit a Docker Swarm-mode service, placed on labelled
                                      nodes (its decisions as plain data: swarmmode_spec.py)

Verbs, checks, measurement and reports ask an Engine to start a compose.yaml
service (spec.py's UnitSpec), to list and remove what carries the lab's
labels (labels.py), and ask the Units it starts for their logs, execs,
files, cgroup, stats and process table.  None of them imports `docker`
(tests/unit/test_boundary.py fails if one does), so a third orchestrator is
one more module here and one more name in ORCHESTRATORS.
"""

from __future__ import annotations

import os

from ..errors import UsageError
from .base import (SAME, Clock, Engine, EngineError, EngineTimeout, Exec, Finished, Gone, HostCgroup, Limits,
                   Output, Resource, RunResources, State, Unit, Unreachable)
from .inventory import Inventory, swarm_manager
from .labels import (IMAGE_LAB, IMAGE_RUN, KEEP, LAB, ORCHESTRATOR, OWNER, ROLE, RUN, RUNDIR, SERVICE, VERB, me,
                     owner_alive)
from .spec import NO_HEALTHCHECK, Mount, UnitSpec

ORCHESTRATORS = ("local", "swarm")

__all__ = ["IMAGE_LAB", "IMAGE_RUN", "KEEP", "LAB", "NO_HEALTHCHECK", "ORCHESTRATOR", "ORCHESTRATORS", "OWNER",
           "ROLE", "RUN", "RUNDIR", "SAME", "SERVICE", "VERB", "Clock", "Engine", "EngineError", "EngineTimeout",
           "Exec", "Finished", "Gone", "HostCgroup", "Inventory", "Limits", "Mount", "Output", "Resource",
           "RunResources", "State",
           "Unit", "UnitSpec", "Unreachable", "connect", "connect_every", "me", "orchestrator", "owner_alive"]


def orchestrator(wanted: str | None = None) -> str:
    """--orchestrator, else LAB_ORCHESTRATOR, else local."""
    name = wanted or os.environ.get("LAB_ORCHESTRATOR") or "local"
    if name not in ORCHESTRATORS:
        raise UsageError(f"unknown orchestrator '{name}' (from {'--orchestrator' if wanted else 'LAB_ORCHESTRATOR'}); "
                         f"the orchestrators are: {', '.join(ORCHESTRATORS)}")
    return name


def connect(wanted: str | None = None) -> Engine:
    """The engine of the orchestrator asked for, connected (or one line on what to do)."""
    name = orchestrator(wanted)
    if name == "swarm":
        from .swarmmode import SwarmModeEngine
        return SwarmModeEngine()
    from .local import LocalEngine
    return LocalEngine()


def connect_every() -> Inventory:
    """Every orchestrator this engine runs: the local one, and Swarm mode
    when the engine is a Swarm manager (no Swarm call otherwise)."""
    from .local import LocalEngine
    local = LocalEngine()
    engines: list[Engine] = [local]
    if swarm_manager(local.info()):
        from .swarmmode import SwarmModeEngine
        engines.append(SwarmModeEngine(local.client))
    return Inventory(engines)
