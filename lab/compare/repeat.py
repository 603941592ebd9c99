"""One model, one repeat: a fresh server, each swarm workload against it, its figures.

Each workload runs in a fresh swarm unit that targets the model by its
service name.  Per workload the lab records the swarm's summary, the
server's CPU over the swarm's measured window (its cgroup's CPU time; the
warm-up left out), its processes, threads and memory under load, the
swarm's own CPU and the whole host's over the same window (what limited the
figure: the swarm, the host or the server).
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from ..engine import NO_HEALTHCHECK, Engine, EngineError, EngineTimeout, Unit
from ..errors import LabError
from ..measure import evidence, merge, reach
from ..measure.cgroup import Cgroup, Cpu, server_cpu
from ..measure.environment import engine_cpu_model
from ..measure.events import EventStream, TraceTimeout
from ..measure.host import CpuOnly, HostCpu, window_cores
from ..measure.procs import resources
from ..measure.sampler import Sampler, scheduled
from ..plan.commands import program, with_flags
from ..report import results
from ..report.terminal import Progress, one_line
from ..run.live import LiveRun
from .plan import READY_TIMEOUT, SERVER_TRACE, START_FIELDS, Plan
from .scenario import run_scenario
from .workloads import Workload
from .wrk import run_wrk

START_TIMEOUT = 30.0  # seconds for a swarm's start event to appear
PROBE_AT = 0.5  # how far into the measured time the processes-and-memory snapshot is taken


def swarm_command(base: list[str], **flags: Any) -> list[str]:
    """The swarm's argv for one workload: compose.yaml's program and these
    flags only (compose.yaml's classic-experiment defaults would otherwise
    ride along: --interval on a pingpong run, a second --duration)."""
    return with_flags(program(base), **flags)


def measure_model(live: LiveRun, plan: Plan, model: str, rep: int, ui: Progress,
                  env: dict[str, Any]) -> dict[str, Any]:
    """One repeat: the swarm workloads on one fresh server, then each
    scenario's workload on a fresh server of its own (its server flags differ)."""
    record: dict[str, Any] = {"repeat": rep, "error": None, "workloads": {}}
    runnable = [w for w in plan.workloads if not plan.skipped(model, w)]
    swarm_workloads = [w for w in runnable if not w.scenario]
    if swarm_workloads:
        measure_workloads(live, plan, model, rep, ui, env, swarm_workloads, record)
    for w in runnable:
        if w.scenario:
            with ui.step(f"{model} {rep}/{plan.repeat} {w.name}", plan.seconds(w)):
                got = run_scenario(live, model, rep, w, env, plan.replicas)
            record["workloads"][w.name] = got
            ui.note(one_line(model, rep, w.name, got))
    return record


def measure_workloads(live: LiveRun, plan: Plan, model: str, rep: int, ui: Progress, env: dict[str, Any],
                      workloads: list[Workload], record: dict[str, Any]) -> None:
    """The swarm workloads against one fresh server of ``model``, into ``record``."""
    began = time.monotonic()
    # No health check: the engine would run it in the server's cgroup every
    # 250 ms, and its CPU would be counted as the model's.  The server's own
    # start event (after listen()) says it is ready.
    server = live.start(model, command=plan.server_commands[model], healthcheck=NO_HEALTHCHECK)
    try:
        start = ready(live, plan, model, server)
        record["ready_after_s"] = round(time.monotonic() - began, 3)
        record["server_start"] = {k: start.get(k) for k in START_FIELDS}
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = engine_cpu_model(server)
        record["idle"] = resources(server, Cgroup(server).procs_dir)
        for w in workloads:
            with ui.step(f"{model} {rep}/{plan.repeat} {w.name}", plan.seconds(w)):
                got = one_workload(live, plan, model, rep, server, w, env)
            record["workloads"][w.name] = got
            ui.note(one_line(model, rep, w.name, got))
    except (LabError, TraceTimeout) as exc:
        record["error"] = str(getattr(exc, "explanation", None) or exc)
        ui.note(f"{model} {rep}/{plan.repeat}: FAILED: {exc}")
    finally:
        live.discard(server, f"{model}.r{rep}")


def ready(live: LiveRun, plan: Plan, model: str, server: Unit) -> dict[str, Any]:
    """Wait until the server is ready; its start event ({} for a real server,
    which writes none: listening, then a first reply)."""
    if plan.kinds.get(model) == "server":
        ready_real_server(live, plan, model, server)
        return {}
    trace = EventStream(server, name=model)
    try:
        return trace.wait_for(lambda e: e["ev"] == "start", timeout=READY_TIMEOUT, what="start events")
    finally:
        trace.close()


def one_workload(live: LiveRun, plan: Plan, model: str, rep: int, server: Unit, w: Workload,
                 env: dict[str, Any]) -> dict[str, Any]:
    """``w`` against the server, and wrk's twin of it beside where asked: a
    swarm that fails is this workload's error, and goes at once."""
    try:
        got = run_workload(live, plan, model, rep, server, w, env)
    except (LabError, TraceTimeout) as exc:
        got = {"error": str(getattr(exc, "explanation", None) or exc)}
        live.containers.pop("swarm", None)
        for c in live.resources().units:  # a stuck swarm goes now, not at the end
            if c.name.endswith("-swarm"):
                live.discard(c, f"swarm.{model}-r{rep}-{w.name}")
    if plan.wrk and w.wrk and plan.kinds.get(model) != "reference" \
            and plan.protocols.get(model, "line") in ("line", "http"):
        got["wrk"] = run_wrk(live, plan, model, w, server, env)
    return got


class Watch:
    """What is read while one workload runs.  Local engine: the server's
    cgroup (CPU, and processes and memory), the swarm's CPU and the whole
    host's, in the background, asked afterwards about the swarm's own
    window.  Remote: the server's cgroup at set points on the lab's clock
    (measure/sampler.py's scheduled())."""

    def __init__(self, server: Unit) -> None:
        self.server, self.cgroup = server, Cgroup(server)
        self.sampler = Sampler(self.cgroup) if self.cgroup.local else None
        self.host = CpuOnly(HostCpu()) if self.cgroup.local else None  # type: ignore[arg-type]
        self.swarm: CpuOnly | None = None
        self.first: Cpu | None = None
        self.last: Cpu | None = None
        self.load: dict[str, Any] | None = None
        self.loaded = False  # a processes-and-memory reading under load was tried (results.json's `load`)

    def during(self, swarm: Unit, tag: str, w: Workload, measured: float,
               wait: Callable[[], int | None]) -> int | None:
        """``wait()`` (for the swarm to end), read around as this engine allows."""
        if self.sampler is None:
            self.first, self.last, self.load = scheduled(self.cgroup, self.server, swarm, f"swarm ({tag})",
                                                         w.warmup, measured, PROBE_AT, START_TIMEOUT)
            self.loaded = True
            return wait()
        swarm_cgroup = Cgroup(swarm) if swarm.replicas == 1 else None
        self.swarm = CpuOnly(swarm_cgroup) if swarm_cgroup and swarm_cgroup.local else None
        samplers = [s for s in (self.sampler, self.swarm) if s]
        for s in samplers:
            s.start()
        try:
            return wait()
        finally:
            for s in samplers:
                s.stop()

    def server_cpu(self, doc: dict[str, Any], rps: float) -> tuple[dict[str, Any], tuple[float, float]]:
        """The server's CPU over the swarm's measured window (local: on its
        clock, which is ours; remote: between the set points), and that window."""
        t0 = (doc.get("started") or {}).get("monotonic")
        if self.sampler is None or t0 is None:
            spans = [(self.first, self.last)] if self.first and self.last else []
            return server_cpu(spans, rps, self.cgroup.source, t0 if self.sampler else None), (0.0, 0.0)
        start = t0 + float(doc.get("warmup_s") or 0.0)
        end = float((doc.get("ended") or {}).get("monotonic") or start)
        spans, self.load, resolution = self.sampler.window(start, end, PROBE_AT, t0)
        self.loaded = True
        cpu = server_cpu(spans, rps, self.cgroup.source, t0)
        if resolution is not None:
            cpu["resolution_s"] = resolution
        return cpu, (start, end)


def run_workload(live: LiveRun, plan: Plan, model: str, rep: int, server: Unit,
                 w: Workload, env: dict[str, Any]) -> dict[str, Any]:
    """One swarm workload against ``server``: results.json's workload record."""
    measured, tag = plan.measure(w), f"{model}-r{rep}-{w.name}"
    command = swarm_command(live.topology.service("swarm").spec["command"], **plan.flags(model, w),
                            target=plan.target(model), warmup=w.warmup, duration=round(w.warmup + measured, 3),
                            trace=SERVER_TRACE, out=f"/results/{tag}")
    record: dict[str, Any] = {"swarm_command": command, "error": None}
    watch = Watch(server)
    if watch.host:
        watch.host.start()
    try:
        swarm = live.start("swarm", command=command, replicas=plan.replicas)
        bound = START_TIMEOUT + w.warmup + measured + w.wait_extra
        record["swarm_exit_code"] = watch.during(swarm, tag, w, measured, lambda: _wait(swarm, bound, tag))
    finally:
        if watch.host:
            watch.host.stop()
    doc, limit = _swarm_results(live, swarm, tag, record.get("swarm_exit_code"))
    record["swarm"] = results.trim_swarm(doc, keep_timeline=w.kind == "timeline")
    record["replies_per_client"] = results.replies_per_client(doc)
    record.update(_cpu_record(watch, doc, limit, env))
    if not doc.get("ok", False):
        record["error"] = "; ".join(doc.get("failures") or ["the swarm reported a failure"])
    return record


def _wait(swarm: Unit, bound: float, tag: str) -> int | None:
    """The swarm's exit status, waiting at most ``bound`` seconds."""
    try:
        return swarm.wait(bound)
    except EngineTimeout:
        raise LabError(f"the swarm for {tag} was still running after {bound:g} s; last lines: "
                       f"{Engine.tail(swarm, 3)}") from None


def _swarm_results(live: LiveRun, swarm: Unit, tag: str, code: int | None) -> tuple[dict[str, Any], int]:
    """The swarm's results (its replicas' merged, on our clock) and its CPU
    limit in nano-CPUs, all replicas together; the unit is gone after."""
    docs = live.results(swarm, f"/results/{tag}/results.json")
    limit = (swarm.limits().nano_cpus or 0) * swarm.replicas
    live.discard(swarm, f"swarm.{tag}")
    if not docs:
        raise LabError(f"the swarm for {tag} exited ({code}) without results.json")
    if len(docs) > 1 or swarm.replicas > 1 or docs[0].clock.offset_s:
        return merge.replicas(docs, swarm.replicas), limit
    return evidence.check_results(json.loads(docs[0].data), f"/results/{tag}/results.json"), limit


def _cpu_record(watch: Watch, doc: dict[str, Any], limit: int, env: dict[str, Any]) -> dict[str, Any]:
    """The server's CPU over the measured window and what limited the figure
    (results.json's server_cpu, load and limit_inputs)."""
    summary = doc.get("summary") or {}
    rps = float(summary.get("replies_per_s") or 0.0) if summary.get("replies_measured") else 0.0
    cpu, (start, end) = watch.server_cpu(doc, rps)
    swarm_cores = window_cores(watch.swarm, start, end)
    found: dict[str, Any] = {"server_cpu": cpu, **({"load": watch.load} if watch.loaded else {})}
    found["limit_inputs"] = results.limit_inputs(
        cpu["cores"], swarm_cores if swarm_cores is not None else (doc.get("cpu") or {}).get("per_s"),
        "cgroup" if swarm_cores is not None else "self-reported", summary.get("workers"),
        round(limit / 1e9, 3) if limit else None, env["engine"].get("cpus"), window_cores(watch.host, start, end))
    return found


def ready_real_server(live: LiveRun, plan: Plan, model: str, server: Unit) -> None:
    """A real server is ready once it listens and answers one request in its
    protocol (lab/measure/reach.py), asked by a one-off swarm container."""
    n = [0]

    def exchange() -> str | None:
        n[0] += 1
        command = swarm_command(live.topology.service("swarm").spec["command"], target=plan.target(model),
                                protocol=plan.protocols[model], clients=1, pattern="pingpong", count=1,
                                duration=4, connect_timeout=5, trace="conn")  # trace conn: its `done` event
        spec = live.spec("swarm", command=command, name=f"{live.prefix}-ready-{n[0]}")
        try:
            done = live.engine.run_once(spec, START_TIMEOUT)
        except EngineError as exc:
            return str(exc)
        return reach.answered(reach.done_results(done.stdout))

    reach.wait_ready(server, plan.ports[model], Cgroup(server).procs_dir, exchange, READY_TIMEOUT, model)
