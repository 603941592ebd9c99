"""Every run on the engine, whichever orchestrator started it (lab/engine/inventory.py):
status, down and logs see local and Swarm-mode runs alike, removal goes
through the orchestrator that started each run, the sweep after a killed lab
covers both, and an engine outside Swarm mode gets no Swarm call at all."""

from __future__ import annotations

from typing import Any

import pytest

from lab import cli
from lab.engine import OWNER, RUN, Inventory, RunResources, connect_every, sdk
from lab.run import context

from .test_swarm_orchestrator import FakeClient

class FakeUnit:
    def __init__(self, run: str, owner: str | None = None) -> None:
        self.name, self.id = f"{run}-u", f"id-{run}"
        self.labels = {RUN: run, **({OWNER: owner} if owner else {})}


class FakeEngine:
    """An Engine's runs and remove(), from fixed data."""

    def __init__(self, kind: str, runs: dict[str, list[FakeUnit]]) -> None:
        self.kind, self._runs, self.removed = kind, runs, []

    def runs(self, run: str | None = None, every_lab: bool = False) -> dict[str, RunResources]:
        return {r: RunResources(r, units=list(us), orchestrator=self.kind)  # type: ignore[arg-type]
                for r, us in self._runs.items() if run in (None, r)}

    def remove(self, res: RunResources) -> list[str]:
        self.removed.append(res.run)
        return [f"container {u.name}" for u in res.units]


def test_runs_of_both_orchestrators_are_listed_each_with_its_own() -> None:
    local, swarm = FakeEngine("local", {"a": [FakeUnit("a")]}), FakeEngine("swarm", {"b": [FakeUnit("b")]})
    runs = Inventory([local, swarm]).runs()  # type: ignore[list-item]
    assert {r: res.orchestrator for r, res in runs.items()} == {"a": "local", "b": "swarm"}


def test_removal_goes_through_the_orchestrator_that_started_the_run() -> None:
    local, swarm = FakeEngine("local", {"a": [FakeUnit("a")]}), FakeEngine("swarm", {"b": [FakeUnit("b")]})
    inv = Inventory([local, swarm])  # type: ignore[list-item]
    assert inv.remove(inv.runs()["b"]) == ["container b-u"]
    assert (local.removed, swarm.removed) == ([], ["b"])


def test_one_id_on_both_orchestrators_is_removed_from_both() -> None:
    local, swarm = FakeEngine("local", {"a": [FakeUnit("a")]}), FakeEngine("swarm", {"a": [FakeUnit("a")]})
    inv = Inventory([local, swarm])  # type: ignore[list-item]
    assert len(inv.remove(inv.runs()["a"])) == 2
    assert (local.removed, swarm.removed) == (["a"], ["a"])


def test_the_sweep_after_a_killed_lab_covers_swarm_services(monkeypatch) -> None:
    import lab.engine.inventory as inventory
    monkeypatch.setattr(inventory, "owner_alive", lambda owner: {"h:41:1": False, "h:42:1": True}.get(owner))
    local = FakeEngine("local", {"a": [FakeUnit("a", "h:42:1")]})
    swarm = FakeEngine("swarm", {"b": [FakeUnit("b", "h:41:1")], "c": [FakeUnit("c")]})
    said = Inventory([local, swarm]).sweep_dead()  # type: ignore[list-item]
    assert (local.removed, swarm.removed) == ([], ["b"])
    assert said == ["removed dead run b (its lab process 41 is gone): 1 resources"]


class Recording(FakeClient):
    """A client that records which collections were asked for."""

    def __init__(self, swarm: dict[str, Any]) -> None:
        super().__init__([], swarm=swarm)
        self.asked: list[str] = []
        for name in ("containers", "networks", "volumes", "services", "configs"):
            setattr(self, name, self._collection(name))

    def _collection(self, name: str) -> Any:
        asked = self.asked

        class Listed:
            def list(self, *a: Any, **k: Any) -> list[Any]:
                asked.append(name)
                return []
        return Listed()


@pytest.mark.parametrize("state, swarm_calls", [
    ({"LocalNodeState": "inactive"}, False),
    ({"LocalNodeState": "active", "ControlAvailable": False, "NodeID": "w"}, False),  # a worker: no services
    ({"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "m"}, True),
])
def test_swarm_is_asked_only_on_a_manager(monkeypatch, state, swarm_calls) -> None:
    client = Recording(state)
    monkeypatch.setattr(sdk, "connect", lambda *a, **k: client)
    inv = connect_every()
    assert sorted(inv.engines) == (["local", "swarm"] if swarm_calls else ["local"])
    inv.runs()
    assert ("services" in client.asked) is swarm_calls and "containers" in client.asked


@pytest.mark.parametrize("verb", [["status"], ["down", "--all"], ["logs"]])
def test_looking_verbs_ignore_the_orchestrator_flag(monkeypatch, capsys, verb) -> None:
    """--orchestrator swarm on an engine outside Swarm mode: status and down
    look at what is there (nothing) and succeed; no Swarm call is made."""
    client = Recording({"LocalNodeState": "inactive"})
    monkeypatch.setattr(sdk, "connect", lambda *a, **k: client)
    context.forget()
    code = cli.main([*verb, "--orchestrator", "swarm"])
    err = capsys.readouterr().err
    assert "services" not in client.asked and "Swarm manager" not in err
    assert code == (2 if verb == ["logs"] else 0), err  # logs: "no lab is up", one line
    context.forget()
