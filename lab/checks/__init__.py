"""Behaviour checks: scenarios run against live models, judged against model.yaml.

For each model, the checks whose expectation the model declares run in
scenario order on one server container (a fresh one when a scenario asks,
or when the last one died).  Each scenario's probes run the swarm against
it; the judge named by the scenario turns what was recorded into verdicts.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import config
from ..events import Event
from ..models import Model
from ..probe import Bench, Cpu, Probe, Sample, Target
from ..scenarios import Scenario
from . import judges

TOLERANCES = config.SERVICES / "tolerances.yaml"
SETTLE_S = 10.0  # bound on waiting for the server to log the swarm's closes


@dataclass
class Verdict:
    model: str
    check: str  # scenario name, or scenario:key when a scenario judges several keys
    expect: str  # the model.yaml key
    claim: str
    expected: str
    observed: str
    ok: bool | None  # None: could not be judged (counts as a failure)
    figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tolerances(model: Model) -> dict[str, Any]:
    base = yaml.safe_load(TOLERANCES.read_text()) or {}
    return {**base, **(model.spec.get("tolerances") or {})}


@dataclass
class Context:
    model: Model
    scenario: Scenario
    target: Target
    tol: dict[str, Any]
    probes: dict[str, Probe] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    idle: list[Cpu] = field(default_factory=list)  # two readings around the idle window

    @property
    def workers(self) -> int:
        return self.model.workers or 0

    def declares(self, key: str) -> bool:
        return key in self.model.expect

    def expect(self, key: str) -> Any:
        return self.model.expect[key]

    def events(self, probe: Probe) -> list[Event]:
        """The server's events from the probe's start on."""
        return self.target.events.matching(lambda e: e.get("t", 0) >= probe.began - 0.05)

    def settle(self, conns: dict[str, int]) -> None:
        """Wait (bounded) until the server has logged the close of each of
        ``conns``; a server that died logs nothing more, so stop there."""
        if not conns or not self.target.alive():
            return
        try:
            self.target.events.wait_for(lambda e: e["ev"] == "close" and e.get("conn") in conns,
                                        timeout=SETTLE_S, count=len(conns), what="closes")
        except AssertionError:
            pass  # the judge sees what was logged, and says so in its figures

    def verdict(self, key: str, expected: str, observed: str, ok: bool | None, **figures: Any) -> Verdict:
        name = self.scenario.name if key == self.scenario.expect else f"{self.scenario.name}:{key}"
        return Verdict(self.model.name, name, key, self.scenario.claim, f"{key}: {expected}",
                       observed, ok, figures)

    def unknown(self, key: str, why: str) -> Verdict:
        return self.verdict(key, str(self.model.expect.get(key)), f"could not judge: {why}", None)


def applicable(model: Model, scenarios: list[Scenario]) -> list[Scenario]:
    return [s for s in scenarios if s.expect in model.expect]


def run_model(bench: Bench, model: Model, scenarios: list[Scenario],
              progress: Callable[[str, str, list[Verdict] | None], None]) -> list[Verdict]:
    """Every applicable scenario against ``model``; verdicts in order."""
    verdicts: list[Verdict] = []
    target: Target | None = None
    tol = tolerances(model)
    try:
        for scenario in applicable(model, scenarios):
            progress(model.name, scenario.name, None)
            if target is None or scenario.fresh or not target.alive():
                if target is not None:
                    target.close()
                target = bench.serve(model)
            ctx = Context(model, scenario, target, tol)
            if scenario.idle:
                first = target.cpu()
                threading.Event().wait(scenario.idle)  # the measurement window itself
                ctx.idle = [first, target.cpu()]
            for name, spec in scenario.probes.items():
                workers = model.workers or 0
                if spec.values.get("before"):
                    ctx.stats[f"{name}:before"] = target.stats_request()
                if spec.values.get("sample"):
                    with target.sampling() as taken:
                        ctx.probes[name] = bench.swarm(target, f"{scenario.name}-{name}", spec.flags(workers))
                    ctx.samples[name] = taken
                else:
                    ctx.probes[name] = bench.swarm(target, f"{scenario.name}-{name}", spec.flags(workers))
                if spec.values.get("after"):
                    ctx.settle(dict.fromkeys(c for c in _conns(ctx.probes[name])))
                    ctx.stats[f"{name}:after"] = target.stats_request()
            try:
                found = judges.JUDGES[scenario.judge](ctx)
            except Exception as exc:  # a judge that breaks is a failed check, not a lost run
                found = [ctx.unknown(scenario.expect, f"the judge failed: {type(exc).__name__}: {exc}")]
            verdicts += found
            progress(model.name, scenario.name, found)
    finally:
        if target is not None:
            target.close()
            bench.remove(target)
    return verdicts


def _conns(probe: Probe) -> list[str]:
    return [c["conn"] for c in probe.results.get("connections", []) if c.get("conn")]


def as_json(verdicts: list[Verdict], meta: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "iolab.checks/1", **meta, "passed": all(v.ok for v in verdicts),
            "checks": [v.as_dict() for v in verdicts]}


def scenario_files(names: list[str] | None, root: Path | None = None) -> list[Scenario]:
    from .. import scenarios
    found = scenarios.all_scenarios(root)
    if not names:
        return list(found.values())
    return [scenarios.get(n) for n in names]
