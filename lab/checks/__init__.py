"""Behaviour checks: scenarios run against live models, judged against model.yaml.

For each model, the checks whose expectations the model declares run in
scenario order on one server container (a fresh one when a scenario asks,
or when the last one died).  Each scenario's probes run the swarm against
it; the judge named by the scenario turns what was recorded into verdicts.

A verdict is green only on positive evidence: each judge states what it
needs (lab/checks/registry.py), and without it the verdict is "not judged:
<what was missing>" (ok None), never a pass and never a failure.  A judge
that depends on free CPU is told what the host could give during its probe
(lab/measure/host.py); when the host was too busy for the claim, the check
runs again (at most TRIES in all, each retry after a bounded wait for the
host to quieten), and if the host is still busy it is not judged.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import yaml

from ioschema import CHECKS_SCHEMA

from .. import config
from ..errors import ExpectationFailed, NotJudged, UsageError
from ..measure import analysis, reach
from ..measure.cgroup import Cpu
from ..measure.events import Event
from ..measure.host import HostLoad, wait_quiet
from ..measure.procs import Sample
from ..measure.sampler import Sampler
from ..plan.models import Model, check_expect
from ..run.probe import Bench, Probe, Target
from . import registry

if TYPE_CHECKING:
    from ..plan.scenarios import Scenario

TOLERANCES = config.SERVICES / "tolerances.yaml"
SETTLE_S = 10.0  # bound on waiting for the server to log the swarm's closes
TRIES = 3  # runs of a check that found the host too busy, before it is left not judged
QUIET_S = 20.0  # bound on waiting, before a retry, for the host to have the free cores again
NOT_JUDGED = "not judged: "


@dataclass
class Verdict:
    model: str
    check: str  # scenario name, or scenario:key when a scenario judges several keys
    expect: str  # the model.yaml key
    claim: str
    expected: str
    observed: str
    ok: bool | None  # None: not judged (evidence missing, or the host too busy)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def judged(self) -> bool:
        return self.ok is not None

    @property
    def outcome(self) -> str:
        return {True: "held", False: "failed", None: "not judged"}[self.ok]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "judged": self.judged, "outcome": self.outcome}


class Missing(Exception):
    """Evidence a judge needs is missing: its verdict is "not judged: <why>"."""

    def __init__(self, why: str, **figures: Any) -> None:
        super().__init__(why)
        self.figures = figures


def need(evidence: Any, why: str) -> None:
    """Go on only with ``evidence``; else the verdict is not judged, saying why."""
    if not evidence:
        raise Missing(why)


def connected_clients(ctx: "Context") -> tuple[Any, Any]:
    """The main probe and the clients of it that connected: none asked, or
    none connected, is missing evidence."""
    probe = ctx.probe()
    conns = analysis.conns_of(probe.results)
    need(ctx.asked() > 0, "the scenario asked for no clients")
    need(conns, f"none of the {ctx.asked()} clients asked for connected")
    return probe, conns


def threads_while_serving(ctx: "Context", key: str, served: dict[int, tuple[float, float]]) -> Verdict:
    """thread_count: the most threads any server process had in a sample
    taken while clients (``served``: client -> (first, last) answer) were served."""
    samples = ctx.samples.get("main") or []
    need(samples, "no process-table samples")
    need(served, "no client was answered, so no sample was taken while serving")
    start, end = min(s for s, _ in served.values()), max(e for _, e in served.values())
    during = [s for s in samples if start <= s.t <= end and s.per_process]
    need(during, f"none of the {len(samples)} samples of the server's threads was taken while clients were served")
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
    scenario: "Scenario"
    target: Target
    tol: dict[str, Any]
    probes: dict[str, Probe] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    readings: dict[str, dict[str, Any]] = field(default_factory=dict)  # memory etc. per probe
    cpu: dict[str, Any] = field(default_factory=dict)  # a Sampler per probe (option cpu)
    idle: list[Cpu] = field(default_factory=list)  # two readings around the idle window
    host: dict[str, Any] = field(default_factory=dict)  # host.HostLoad per probe ("idle": the idle window)

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


def judged_keys(model: Model, scenario: "Scenario") -> list[str]:
    """The keys of ``scenario`` that ``model`` declares: what a check of it judges."""
    return [k for k in scenario.judges if k in model.expect]


def applicable(model: Model, scenarios: list["Scenario"]) -> list["Scenario"]:
    return [s for s in scenarios if judged_keys(model, s)]


def skipped(model: Model, scenarios: list["Scenario"]) -> list[dict[str, str]]:
    """Each check a target does not declare, and so is not run: one record each."""
    out = []
    for s in scenarios:
        for key in s.judges:
            if key not in model.expect:
                name = s.name if key == s.expect else f"{s.name}:{key}"
                out.append({"model": model.name, "check": name, "expect": key,
                            "why": f"{model.name} ({model.kind}) does not declare '{key}'"})
    return out


Progress = Callable[[str, str, "list[Verdict] | None"], None]


def run_model(bench: Bench, model: Model, scenarios: list["Scenario"], progress: Progress) -> list[Verdict]:
    """Every applicable scenario against ``model``; verdicts in order.  A
    check that found the host too busy runs again, after a bounded wait for
    the host to quieten, before it is left not judged."""
    verdicts: list[Verdict] = []
    target: Target | None = None
    args: list[str] = []
    tol = tolerances(model)
    try:
        for scenario in applicable(model, scenarios):
            progress(model.name, scenario.name, None)
            found: list[Verdict] = []
            because: list[str] = []
            waited: list[dict[str, Any]] = []
            for attempt in range(1, TRIES + 1):
                # A retry (the host was busy) keeps a live server: only a
                # memory reading needs one that never held the first try's clients.
                if target is None or scenario.fresh or scenario.server != args or not target.alive() \
                        or (attempt > 1 and _reads_memory(scenario)):
                    if target is not None:
                        target.close()  # serve() removes the old container
                    args = scenario.server
                    target = bench.serve(model, args=args)
                if attempt > 1:
                    waited.append(quieten(bench, target, max(v.figures.get("free_cores_needed", 0.0)
                                                             for v in found if _busy(v))))
                found = judge(bench, Context(model, scenario, target, tol))
                if attempt > 1:
                    for v in found:
                        v.figures["retried"] = {"because": list(because), "waited": waited}
                busy = [v.observed for v in found if _busy(v)]
                if not busy:
                    break
                because += busy
            verdicts += found
            progress(model.name, scenario.name, found)
    finally:
        if target is not None:
            target.close()
            bench.remove(target)
    return verdicts


def quieten(bench: Bench, target: Target, wanted: float) -> dict[str, Any]:
    """Wait (at most QUIET_S) for the host to give ``wanted`` free cores again."""
    free, waited = wait_quiet(lambda: HostLoad.around(target.cgroup, bench.swarm_container, bench.load_cgroups),
                              wanted, QUIET_S)
    return {"s": round(waited, 1), "free_cores": None if free is None else round(free, 2)}


def _reads_memory(scenario: "Scenario") -> bool:
    return any(spec.values.get("memory") for spec in scenario.probes.values())


def _busy(v: Verdict) -> bool:
    return bool(v.figures.get("host_busy")) and v.ok is None


def judge(bench: Bench, ctx: Context) -> list[Verdict]:
    """The scenario's probes, then its judge: a probe or judge that breaks
    leaves each key it judges not judged, saying why (never a lost run)."""
    try:
        run_probes(bench, ctx)
        return registry.load()[ctx.scenario.judge].fn(ctx)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        return [ctx.not_judged(k, why) for k in judged_keys(ctx.model, ctx.scenario)]


def run_probes(bench: Bench, ctx: Context) -> None:
    """The scenario's idle window and probes, recording what the judge reads."""
    target, scenario = ctx.target, ctx.scenario
    workers = ctx.model.workers or 0
    watch_host = registry.load()[scenario.judge].host_cpu
    if scenario.idle:
        with _host_load(bench, ctx, "idle", watch_host):
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
        sampler = Sampler(target.cgroup) if spec.values.get("cpu") else None
        if sampler is not None:
            sampler.start()
            ctx.cpu[name] = sampler
        try:
            with _host_load(bench, ctx, name, watch_host), \
                    target.sampling() if spec.values.get("sample") else _nothing() as taken:
                if spec.values.get("memory"):
                    ctx.probes[name] = _with_peak_reading(bench, ctx, name, label, spec.flags(workers),
                                                          spec.number("clients", workers))
                else:
                    ctx.probes[name] = bench.swarm(target, label, spec.flags(workers))
        finally:
            if sampler is not None:
                sampler.stop()
        if taken is not None:
            ctx.samples[name] = taken
        if spec.values.get("after"):
            ctx.settle(dict.fromkeys(_conns(ctx.probes[name])))
            ctx.stats[f"{name}:after"] = target.stats_request()


@contextlib.contextmanager
def _host_load(bench: Bench, ctx: Context, name: str, watch: bool) -> Iterator[None]:
    """What the host could give meanwhile, for judges that depend on free CPU."""
    if not watch:
        yield
        return
    load = HostLoad.around(ctx.target.cgroup, bench.swarm_container, bench.load_cgroups)
    load.start()
    try:
        yield
    finally:
        load.stop()
        ctx.host[name] = load


def _with_peak_reading(bench: Bench, ctx: Context, name: str, label: str, flags: list[str],
                       clients: int) -> Probe:
    """Run the swarm in the background; once the server has accepted every
    client (or the swarm has ended, or the ramp's bound has passed), read the
    server's memory, listen-queue counters and process table at that peak."""
    done: dict[str, Any] = {}

    def run() -> None:
        try:
            done["probe"] = bench.swarm(ctx.target, label, flags)
        except BaseException as exc:  # reported below, in the probing thread
            done["error"] = exc

    swarm = threading.Thread(target=run, daemon=True, name=f"swarm-{label}")
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
    if "error" in done:
        exc = done["error"]
        raise RuntimeError(f"the swarm failed: {type(exc).__name__}: {exc}") from exc
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


def counts(verdicts: list[Verdict]) -> dict[str, int]:
    return {"held": sum(1 for v in verdicts if v.ok is True),
            "failed": sum(1 for v in verdicts if v.ok is False),
            "not_judged": sum(1 for v in verdicts if v.ok is None)}


def outcome(verdicts: list[Verdict]) -> str:
    """The worst outcome: failed, else not judged, else held."""
    n = counts(verdicts)
    return "failed" if n["failed"] else "not judged" if n["not_judged"] else "held"


def as_json(verdicts: list[Verdict], meta: dict[str, Any],
            skips: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"schema": CHECKS_SCHEMA, **meta, "passed": bool(verdicts) and all(v.ok for v in verdicts),
            "outcome": outcome(verdicts), **counts(verdicts), "skipped": skips or [],
            "checks": [v.as_dict() for v in verdicts]}


def parse_expect(texts: list[str]) -> dict[str, Any]:
    """`--expect KEY=VALUE` flags: VALUE is YAML, checked as model.yaml checks it."""
    found: dict[str, Any] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--expect {text}: write KEY=VALUE, e.g. --expect peak_served=1")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UsageError(f"--expect {text}: '{raw}' is not a YAML value") from None
        check_expect(key, value, f"--expect {text}")
        found[key] = value
    return found


def conclude(verdicts: list[Verdict], where: str) -> int:
    """The exit of a verb that judged: 0 every verdict held; 1 one did not
    (ExpectationFailed); 3 none failed but some were not judged (NotJudged)."""
    if not verdicts:
        raise UsageError("no check ran: none of the scenarios judges a key these models declare")
    n = counts(verdicts)
    if n["failed"]:
        raise ExpectationFailed(f"{n['failed']} expectation(s) did not hold"
                                + (f", {n['not_judged']} not judged" if n["not_judged"] else "") + f"; see {where}")
    if n["not_judged"]:
        busy = sum(1 for v in verdicts if v.ok is None and v.figures.get("host_busy"))
        raise NotJudged(f"{n['not_judged']} expectation(s) could not be judged"
                        + (f" ({busy} because the host was busy)" if busy else "") + f"; see {where}")
    return 0


def scenario_files(names: list[str] | None, root: Path | None = None) -> list["Scenario"]:
    from ..plan import scenarios
    found = scenarios.all_scenarios(root)
    if not names:
        return [s for s in found.values() if s.default]
    return [scenarios.get(n) for n in names]
