"""Running the checks: each applicable scenario against a model, its probes, then its judge.

For each model, the checks whose expectations the model declares run in
scenario order on one server container (a fresh one when a scenario asks,
or when the last one died).  A judge that depends on free CPU is told what
the host could give during its probe (lab/measure/host.py); when the host
was too busy for the claim, the check runs again (at most TRIES in all,
each retry after a bounded wait for the host to quieten), and if the host
is still busy it is not judged.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterator

from ..errors import UsageError
from ..measure.host import HostLoad, wait_quiet
from ..measure.sampler import Sampler
from ..measure.switches import SwitchSampler
from ..plan.models import Model
from ..plan.scenarios import Scenario, applicable, judged_keys
from ..run.probe import Bench, Probe, Target
from ..run.tracer import TraceRefused, tracing
from . import client_side, cost, judges  # noqa: F401  (their @judge decorators fill the registry)
from .context import Context, tolerances
from .registry import ENTRIES
from .verdict import Verdict


TRIES = 3  # runs of a check that found the host too busy, before it is left not judged
QUIET_S = 20.0  # bound on waiting, before a retry, for the host to have the free cores again


Progress = Callable[[str, str, "list[Verdict] | None"], None]


def run_model(bench: Bench, model: Model, scenarios: list[Scenario], progress: Progress) -> list[Verdict]:
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
                target, args = _server_for(bench, model, scenario, target, args, attempt)
                if attempt > 1:
                    waited.append(quieten(bench, target, max(v.figures.get("free_cores_needed", 0.0)
                                                             for v in found if _busy(v))))
                found = check(bench, Context(model, scenario, target, tol))
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


def _server_for(bench: Bench, model: Model, scenario: Scenario, target: Target | None, args: list[str],
                attempt: int) -> tuple[Target, list[str]]:
    """The server this try of ``scenario`` runs on, and its flags: the last
    one if it will do, else a fresh one.  A retry (the host was busy) keeps a
    live server: only a memory reading needs one that never held the first
    try's clients."""
    if target is None or scenario.fresh or scenario.server != args or not target.alive() \
            or (attempt > 1 and _reads_memory(scenario)):
        if target is not None:
            target.close()  # serve() removes the old container
        args = scenario.server
        target = bench.serve(model, args=args)
    return target, args


def quieten(bench: Bench, target: Target, wanted: float) -> dict[str, Any]:
    """Wait (at most QUIET_S) for the host to give ``wanted`` free cores again."""
    free, waited = wait_quiet(lambda: HostLoad.around(target.cgroup, bench.swarm_container, bench.load_cgroups),
                              wanted, QUIET_S)
    return {"s": round(waited, 1), "free_cores": None if free is None else round(free, 2)}


def _reads_memory(scenario: Scenario) -> bool:
    return any(spec.values.get("memory") for spec in scenario.probes.values())


def _busy(v: Verdict) -> bool:
    return bool(v.figures.get("host_busy")) and v.ok is None


def check(bench: Bench, ctx: Context) -> list[Verdict]:
    """The scenario's probes, then its judge: a probe or judge that breaks
    leaves each key it judges not judged, saying why (never a lost run).
    Bad input (the swarm refusing the scenario's flags) is the user's to
    fix: it ends the run, exit 2 in one line."""
    try:
        run_probes(bench, ctx)
        return ENTRIES[ctx.scenario.judge].fn(ctx)
    except UsageError:
        raise
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        return [ctx.not_judged(k, why) for k in judged_keys(ctx.model, ctx.scenario)]


def run_probes(bench: Bench, ctx: Context) -> None:
    """The scenario's idle window and probes, recording what the judge reads."""
    target, scenario = ctx.target, ctx.scenario
    workers = ctx.model.workers or 0
    watch_host = ENTRIES[scenario.judge].host_cpu
    if scenario.idle:
        with _host_load(bench, ctx, "idle", watch_host):
            first = target.cpu()
            threading.Event().wait(scenario.idle)  # the measurement window itself
            ctx.idle = [first, target.cpu()]
    for name, spec in scenario.probes.items():
        if not spec.runs_for(ctx.model.expect):
            continue  # it measures only what this model does not declare
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
            with _host_load(bench, ctx, name, watch_host), _switches(ctx, name, spec.values.get("switches")), \
                    _traced(bench, ctx, name, spec.values.get("strace")), \
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
def _switches(ctx: Context, name: str, wanted: bool) -> Iterator[None]:
    """The server's tasks' context switches, sampled from /proc while the probe runs."""
    if not wanted:
        yield
        return
    sampler = SwitchSampler(ctx.target.container, ctx.target.cgroup.procs_dir)
    ctx.switches[name] = sampler
    sampler.start()
    try:
        yield
    finally:
        sampler.stop()


@contextlib.contextmanager
def _traced(bench: Bench, ctx: Context, name: str, wanted: bool) -> Iterator[None]:
    """The tracing sidecar counting the server's system calls while the
    probe runs; a host that refuses ptrace leaves the reason instead."""
    if not wanted:
        yield
        return
    stack = contextlib.ExitStack()
    try:
        traced = stack.enter_context(tracing(bench.live, ctx.target.container,
                                                    f"tracer.{ctx.model.name}.{name}"))
    except TraceRefused as why:  # the probe still runs: its other readings stand
        ctx.traces[name] = str(why)
        yield
        return
    try:
        with stack:
            yield
    except TraceRefused as why:
        ctx.traces[name] = str(why)
        return
    ctx.traces[name] = traced


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _conns(probe: Probe) -> list[str]:
    return [c["conn"] for c in probe.results.get("connections", []) if c.get("conn")]
