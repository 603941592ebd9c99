"""Behaviour checks: scenarios run against live models, judged against model.yaml.

For each model, the checks whose expectation the model declares run in
scenario order on one server container (a fresh one when a scenario asks,
or when the last one died).  Each scenario's probes run the swarm against
it; the judge named by the scenario turns what was recorded into verdicts.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from .. import config, measure
from ..events import Event
from ..models import Model
from ..measure import Cpu, Sample
from ..probe import Bench, Probe, Target
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
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)  # memory etc. per probe
    cpu: dict[str, Any] = field(default_factory=dict)  # measure.Sampler per probe (option cpu)

    def cores(self, probe: str, start: float, end: float) -> float | None:
        """Cores the server used between two moments of a probe sampled with
        `cpu: true` (interpolated between readings 50 ms apart)."""
        sampler = self.cpu.get(probe)
        if sampler is None or end <= start:
            return None
        a, b = sampler.at(start), sampler.at(end)
        return None if a is None or b is None else (b - a) / (end - start)
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
    args: list[str] = []
    tol = tolerances(model)
    try:
        for scenario in applicable(model, scenarios):
            progress(model.name, scenario.name, None)
            if target is None or scenario.fresh or scenario.server != args or not target.alive():
                if target is not None:
                    target.close()
                args = scenario.server
                target = bench.serve(model, args=args)
            ctx = Context(model, scenario, target, tol)
            try:
                run_probes(bench, ctx)
                found = judges.JUDGES[scenario.judge](ctx)
            except Exception as exc:  # a probe or judge that breaks is a failed check, not a lost run
                found = [ctx.unknown(scenario.expect, f"{type(exc).__name__}: {exc}")]
            verdicts += found
            progress(model.name, scenario.name, found)
    finally:
        if target is not None:
            target.close()
            bench.remove(target)
    return verdicts


def run_probes(bench: Bench, ctx: Context) -> None:
    """The scenario's idle window and probes, recording what the judge reads."""
    target, scenario = ctx.target, ctx.scenario
    workers = ctx.model.workers or 0
    if scenario.idle:
        first = target.cpu()
        threading.Event().wait(scenario.idle)  # the measurement window itself
        ctx.idle = [first, target.cpu()]
    for name, spec in scenario.probes.items():
        label = f"{scenario.name}-{name}"
        if spec.values.get("before"):
            ctx.stats[f"{name}:before"] = target.stats_request()
        if spec.values.get("memory"):
            ctx.readings[name] = {"before": target.memory(), "cpu_before": target.cpu(),
                                  "netstat_before": target.netstat()}
        sampler = measure.Sampler(target.cgroup) if spec.values.get("cpu") else None
        if sampler is not None:
            sampler.start()
            ctx.cpu[name] = sampler
        with target.sampling() if spec.values.get("sample") else _nothing() as taken:
            if spec.values.get("memory"):
                ctx.probes[name] = _with_peak_reading(bench, ctx, name, label, spec.flags(workers),
                                                      spec.number("clients", workers))
            else:
                ctx.probes[name] = bench.swarm(target, label, spec.flags(workers))
        if sampler is not None:
            sampler.stop()
        if taken is not None:
            ctx.samples[name] = taken
        if spec.values.get("after"):
            ctx.settle(dict.fromkeys(_conns(ctx.probes[name])))
            ctx.stats[f"{name}:after"] = target.stats_request()


def _with_peak_reading(bench: Bench, ctx: Context, name: str, label: str, flags: list[str],
                       clients: int) -> Probe:
    """Run the swarm in the background; once the server has accepted every
    client (or the swarm has ended, or the ramp's bound has passed), read the
    server's memory, listen-queue counters and process table at that peak."""
    done: dict[str, Any] = {}
    swarm = threading.Thread(target=lambda: done.update(probe=bench.swarm(ctx.target, label, flags)),
                             daemon=True)
    swarm.start()
    reading = ctx.readings[name]
    bound = float(ctx.scenario.settings.get("peak_within_s", 20))
    try:
        ctx.target.events.wait_for(lambda e: e["ev"] == "accept", timeout=bound, count=clients,
                                   what="accepted connections")
        reading["all_accepted"] = True
    except AssertionError:
        reading["all_accepted"] = False  # a model that cannot take them all: read it as it is
    if swarm.is_alive():
        reading.update(peak=ctx.target.memory(), peak_sample=ctx.target.sample(),
                       netstat_peak=ctx.target.netstat(), cgroup_peak=ctx.target.cpu(),
                       peak_t=time.monotonic())
    swarm.join()
    if "probe" not in done:
        raise RuntimeError("the swarm ended without results")
    if ctx.target.alive():
        reading["cpu_after"] = ctx.target.cpu()
    return done["probe"]


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _conns(probe: Probe) -> list[str]:
    return [c["conn"] for c in probe.results.get("connections", []) if c.get("conn")]


def as_json(verdicts: list[Verdict], meta: dict[str, Any]) -> dict[str, Any]:
    return {"schema": "iolab.checks/1", **meta, "passed": all(v.ok for v in verdicts),
            "checks": [v.as_dict() for v in verdicts]}


def scenario_files(names: list[str] | None, root: Path | None = None) -> list[Scenario]:
    from .. import scenarios
    found = scenarios.all_scenarios(root)
    if not names:
        return [s for s in found.values() if s.default]
    return [scenarios.get(n) for n in names]
