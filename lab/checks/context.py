"""What a judge reads: one model, one scenario, and what its probes recorded.

The runner (runner.py) fills a Context as the scenario's probes run; a judge
(judges.py, client_side.py) reads it and asks it for verdicts, so every
verdict names its model, check, claim and declared value the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml

from .. import config
from ..measure import analysis, reach
from ..measure.cgroup import Cpu
from ..measure.events import Event
from ..measure.procs import Sample
from ..plan.models import Model
from ..plan.scenarios import Scenario
from ..run.probe import Probe, Target
from .domain import CORES_SLACK, distinct_clients, need_threads
from .verdict import NOT_JUDGED, Missing, Verdict, need


TOLERANCES = config.SERVICES / "tolerances.yaml"


SETTLE_S = 10.0  # bound on waiting for the server to log the swarm's closes


def connected_clients(ctx: Context) -> tuple[Any, Any]:
    """The main probe and the clients of it that connected: none asked, or
    none connected, is missing evidence."""
    probe = ctx.probe()
    conns = analysis.conns_of(probe.results)
    need(ctx.asked() > 0, "the scenario asked for no clients")
    need(conns, f"none of the {ctx.asked()} clients asked for connected")
    distinct_clients(probe.results.get("connections", []))
    return probe, conns


def threads_while_serving(ctx: Context, key: str, served: dict[str, tuple[float, float]]) -> Verdict:
    """thread_count: the most threads any server process had in a sample
    taken while clients (``served``: connection -> the span it was served) were served."""
    samples = ctx.samples.get("main") or []
    need(samples, "no process-table samples")
    need(served, "no client was answered, so no sample was taken while serving")
    start, end = min(s for s, _ in served.values()), max(e for _, e in served.values())
    during = [s for s in samples if start <= s.t <= end and s.per_process]
    need(during, f"none of the {len(samples)} samples of the server's threads was taken while clients were served")
    need_threads(during)
    most = max(max(s.per_process.values()) for s in during)
    want = ctx.expect(key)
    return ctx.verdict(key, f"{want} per process", f"at most {most} while serving {len(served)}",
                       most == want, max_threads=most, samples=len(during))


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
    cpu: dict[str, Any] = field(default_factory=dict)  # a Sampler per probe (option cpu)
    idle: list[Cpu] = field(default_factory=list)  # two readings around the idle window
    host: dict[str, Any] = field(default_factory=dict)  # host.HostLoad per probe ("idle": the idle window)
    traces: dict[str, Any] = field(default_factory=dict)  # per probe: run.tracer.Traced, or why not (text)
    switches: dict[str, Any] = field(default_factory=dict)  # per probe: measure.switches.SwitchSampler

    @property
    def workers(self) -> int:
        return self.model.workers or 0

    def declares(self, key: str) -> bool:
        return key in self.model.expect

    def expect(self, key: str) -> Any:
        return self.model.expect[key]

    def asked(self, probe: str = "main") -> int:
        """The clients the scenario asked the swarm for (the swarm's own
        count when the scenario leaves it to the swarm's default)."""
        spec = self.scenario.probes.get(probe)
        n = spec.number("clients", self.workers) if spec is not None else None
        if n is None and probe in self.probes:
            n = self.probes[probe].summary.get("clients")
        return int(n or 0)

    def probe(self, name: str = "main") -> Probe:
        need(name in self.probes, f"the {name} probe did not run")
        return self.probes[name]

    def cores(self, probe: str, start: float, end: float) -> float | None:
        """Cores the server used between two moments of a probe sampled with
        `cpu: true` (interpolated between readings 50 ms apart)."""
        sampler = self.cpu.get(probe)
        if sampler is None or end <= start:
            return None
        a, b = sampler.at(start), sampler.at(end)
        return None if a is None or b is None else (b - a) / (end - start)

    def cores_bound(self, probe: str) -> float:
        """The most cores the server can have used during ``probe``: the CPUs
        present on the engine's host (/proc/stat, read around the probe),
        plus the interpolation's slack.  Not the container's CPU limit: CFS
        enforces it per 100 ms period, so a shorter window may exceed it.
        Where the host was not read, the most of what is known (this
        machine's CPUs, the container's limit): never a false refusal."""
        load = self.host.get(probe)
        if load is not None and getattr(load, "cpus", None):
            return float(load.cpus) + CORES_SLACK
        limits = getattr(getattr(self.target, "container", None), "limits", None)
        nano = getattr(limits(), "nano_cpus", None) if limits is not None else None
        return max(float(os.cpu_count() or 1), (nano or 0) / 1e9) + CORES_SLACK

    def host_check(self, probe: str, need_key: str, start: float | None = None,
                   end: float | None = None) -> tuple[str | None, dict[str, Any]]:
        """Could the host give the cores a claim needs (tolerance ``need_key``)
        between start and end?  (None, figures) if it could, else (why, figures)."""
        load = self.host.get(probe)
        free = load.free_cores(start, end) if load is not None else None
        wanted = self.tol[need_key]
        figures: dict[str, Any] = {"free_cores": None if free is None else round(free, 2),
                                   "free_cores_needed": wanted}
        if free is None:
            return "what the host could give was not measured (no /proc/stat readings around the probe)", figures
        if free < wanted:
            return f"host busy ({free:.1f} cores free, {wanted} needed)", {**figures, "host_busy": True}
        return None, figures

    def events(self, probe: Probe) -> list[Event]:
        """The server's events from the probe's start on."""
        return self.target.events.matching(lambda e: e.get("t", 0) >= probe.began - 0.05)

    def settle(self, conns: dict[str, int]) -> None:
        """Wait (bounded) until the server has logged the close of each of
        ``conns``; a server that died logs nothing more, so stop there."""
        if not conns or not self.target.alive():
            return
        if not getattr(self.target, "traced", True):  # a real server: its socket table (lab/measure/reach.py)
            reach.wait_closed(self.target.container, self.target.cgroup.procs_dir, conns, SETTLE_S)
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

    def not_judged(self, key: str, why: str, **figures: Any) -> Verdict:
        declared = json.dumps(self.model.expect.get(key)).strip('"')  # as model.yaml writes it
        return self.verdict(key, declared, NOT_JUDGED + why, None, **figures)

    unknown = not_judged  # the older name

    def each(self, keys: tuple[str, ...], judge_one: Callable[[str], Verdict]) -> list[Verdict]:
        """A verdict for each declared key: judge_one(key), or not judged
        when it finds evidence missing (it raises Missing)."""
        out = []
        for key in keys:
            if not self.declares(key):
                continue
            try:
                out.append(judge_one(key))
            except Missing as why:
                out.append(self.not_judged(key, str(why), **why.figures))
        return out
