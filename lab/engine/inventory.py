"""Every run on the engine, whichever orchestrator started it.

Starting something needs an orchestrator (--orchestrator, LAB_ORCHESTRATOR);
seeing and removing it must not.  A user who started a run in Swarm mode and
types `lab status` or `lab down` without the flag, or whose LAB_ORCHESTRATOR
was set in another shell, must still find it: the labels are the source of
truth, not a flag remembered from an earlier command.

So the verbs that look (status, down, logs) and the sweep after a killed lab
ask an Inventory: the local orchestrator always, and Swarm mode as well when
this engine is a Swarm manager.  On an engine outside Swarm mode no Swarm
call is made at all; on a Swarm worker (which cannot list services) only its
containers are seen, as on any engine.
"""

from __future__ import annotations

from typing import Any

from .base import Engine, RunResources
from .labels import OWNER, owner_alive


def swarm_manager(info: dict[str, Any]) -> bool:
    """Is the engine ``info`` describes an active Swarm manager?"""
    state = info.get("Swarm") or {}
    return state.get("LocalNodeState") == "active" and bool(state.get("ControlAvailable"))


class Inventory:
    """The runs of every orchestrator on one engine, and their removal."""

    def __init__(self, engines: list[Engine]) -> None:
        self.engines = {e.kind: e for e in engines}

    def engine(self, kind: str) -> Engine:
        return self.engines[kind]

    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, RunResources]:
        """Every run, by id; a run's ``orchestrator`` says which started it."""
        found: dict[str, RunResources] = {}
        for kind, eng in self.engines.items():
            for run_id, res in eng.runs(run, every_lab).items():
                res.orchestrator = kind
                if run_id in found:  # one id on both (never made by the lab itself): keep both parts
                    found[run_id].also.append(res)
                else:
                    found[run_id] = res
        return found

    def remove(self, res: RunResources) -> list[str]:
        """Remove a run through the orchestrator that started it; what went, in words."""
        removed: list[str] = []
        for part in (res, *res.also):
            removed += self.engines[part.orchestrator].remove(part)
        return removed

    def sweep_dead(self) -> list[str]:
        """Remove runs whose lab process died without cleaning up (any lab name: a
        dead owner cannot object).  Returns one line per run removed."""
        said = []
        for run, res in self.runs(every_lab=True).items():
            if res.kept or owner_alive(res.labels.get(OWNER)) is not False:
                continue
            things = self.remove(res)
            owner = res.labels.get(OWNER, "?").split(":")
            said.append(f"removed dead run {run} (its lab process {owner[1]} is gone): "
                        f"{len(things)} resources")
        return said
