"""lab compare: the same workloads against every model, side by side.

Each model runs in its own fresh server container per repeat, alone on the
engine (the previous model's containers are removed first, so their CPU never
colours the next one's figures).  Against it the swarm runs each workload of
the table below in turn, each in a fresh swarm container that targets the
model by its service name.  Per workload the lab records the swarm's summary,
the server's CPU over the swarm's measured window (its cgroup's CPU time;
the warm-up left out), its processes, threads and memory under load, the
swarm's own CPU and the whole host's over the same window (what limited the
figure: the swarm, the host or the server), every reading through
lab/measure/.  Everything goes into one results.json (schema
iolab.compare/2, lab/report/SCHEMA.md), from which the report is rendered:
report.html, report.md, results.csv and plots/ (`lab report` renders it
again).

The native reference (services/native, model.yaml `kind: reference`) runs
first when it is there, as the ceiling row: what this host and this load
generator can do at all.  It echoes lines, which is all these workloads
ask; a scenario workload (c10k) is judged against model.yaml, so it is
skipped, and the report says so, for any target whose model.yaml makes no
promise for it to judge.  --no-native leaves the reference out.

Real servers (kind: server: Apache, nginx, PostgreSQL, redis, memcached)
run beside them with --targets real, or when named in --models: the same
workloads in each server's own protocol (its default request), ready once something listens and a first
request is answered (they write none of the lab's trace).  Each real
server is also classified (`lab classify`'s probes, on a fresh server of
its own) and the report shows the inferred class beside the declared one;
--classify does it for every target.

Workloads (--scenario NAME[,NAME...] picks some; default: every one marked
default):

    classic    the classic experiment: 3 clients, a message every 50 ms;
               its request/reply pairs draw the timeline
    pingpong   closed loop: 50 connections, one 64-byte request in flight each
               (with --client wrk: also wrk, HTTP GET over 50 connections)
    pipelined  closed loop: 50 connections, 8 requests in flight each
    rate       open loop: 50 connections, 1,000 requests/s in all, latency
               measured from each request's intended send time
    c10k       not a default (about 25 s per model): scenarios/c10k.yaml as
               `lab run c10k` runs it, on a server of its own with the
               scenario's server flags: 10,000 connections, 100 of them busy;
               connections kept, latency, memory per connection at the peak

--checks then runs the behaviour checks (`lab check`'s code) against the
same models, in the same run, into checks.json beside results.json, so the
report's verdict column and checks section have them.

Exit status: 0 every measurement was made and every verdict held; 1 a
measurement failed or a verdict failed (the report says which, and shows the
rest); 2 bad input or no usable engine; 3 a verdict could not be judged
(none failed); 130 interrupted (what the run started is removed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ioschema import DEFAULT_PORT

from .. import checks, config
from ..console import out, say
from ..engine import NO_HEALTHCHECK, Engine, EngineError, EngineTimeout, RunResources, Unit
from ..errors import EXIT_FAILED, EXIT_NOT_JUDGED, LabError, UsageError
from ..measure import merge, reach
from ..measure.cgroup import Cgroup, server_cpu
from ..measure.environment import engine_cpu_model, environment
from ..measure.procs import resources
from ..measure.sampler import Sampler, scheduled
from ..measure.events import EventStream, TraceTimeout
from ..plan import compose, models, scenarios
from ..report import results
from ..report.terminal import Progress, one_line, print_summary
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench, Probe, Target
from . import _args, _clients, check
from ._clients import CpuOnly, HostCpu, window_cores, wrk_available


# -- the workloads: one row each; a new scenario is one more row ---------------
#
# A swarm workload is its name, the kind of report section it feeds and the
# swarm flags that make it; default=False keeps it out of a plain `lab
# compare`.  A workload with `scenario=` takes its flags, server flags and
# timing from that file in scenarios/ instead (the single source, shared with
# `lab check` and `lab run`), and is measured the way the checks measure it.

@dataclass(frozen=True)
class Workload:
    """One swarm run against each model.

    kind says which parts of the report use it: ``timeline`` (the Gantt
    chart of who was served when), ``closed`` (closed-loop throughput and
    latency), ``open`` (open-loop latency at a fixed rate), ``c10k`` (its own
    section).  ``flags`` are the swarm's flags (swarm.py --help), ``warmup``
    is left out of every figure, ``measure`` is the measured time after it
    (--duration replaces it, except for a scenario's).  ``wrk``: with
    --client wrk, wrk runs its HTTP twin (keep-alive GETs, one in flight per
    connection) on the same server.
    """

    name: str
    title: str
    kind: str
    about: str
    flags: dict[str, Any]
    warmup: float = 0.5
    measure: float = 1.5
    default: bool = True
    wait_extra: float = 30.0  # seconds past the planned end before the swarm counts as stuck
    scenario: str | None = None  # defined by scenarios/<scenario>.yaml (its probe `main`)
    wrk: bool = False


OPEN_RATE = 1000  # requests/s: well below the slowest concurrent model's closed-loop capacity

WORKLOADS: tuple[Workload, ...] = (
    Workload("classic", "classic: 3 clients, a message every 50 ms", "timeline",
             "The article's experiment: three clients, each sending a short message every 50 ms "
             "(open loop). Its request/reply pairs draw the timeline.",
             {"clients": 3, "pattern": "interval", "interval": 50}),
    Workload("pingpong", "pingpong: 50 connections, 1 in flight", "closed",
             "Closed loop: 50 connections, each with one 64-byte request in flight; a reply buys "
             "the next request. Throughput is what the server sustains; latency hides stalls "
             "(nobody sends while waiting).",
             {"clients": 50, "pattern": "pingpong", "pipeline": 1, "size": 64}, measure=1.5, wrk=True),
    Workload("pipelined", "pipelined: 50 connections, 8 in flight", "closed",
             "Closed loop with pipelining: 50 connections, 8 requests in flight on each.",
             {"clients": 50, "pattern": "pingpong", "pipeline": 8, "size": 64}, measure=1.5),
    Workload("rate", f"rate: 50 connections, {OPEN_RATE:,} requests/s", "open",
             f"Open loop: {OPEN_RATE:,} requests/s spread over 50 connections whatever the replies "
             "do; latency counts from each request's intended send time, so stalls show "
             "(coordinated omission corrected).",
             {"clients": 50, "pattern": "rate", "rate": OPEN_RATE, "size": 64}, measure=1.5),
    Workload("c10k", "c10k: 10,000 connections, 100 of them busy", "c10k", "", {}, default=False,
             scenario="c10k"),
)

# The order the lab's essay introduces the models in; others follow, by name.
MODEL_ORDER = ("blocking", "busypoll", "select", "poll", "epoll", "epoll-edge", "forking",
               "prefork", "threads", "threadpool", "asyncio", "coroutines", "gevent", "uvloop")
SERVER_TRACE = "conn"  # connection events only: per-message events would cost what they measure
READY_TIMEOUT = 60.0  # seconds for a server's start event
START_TIMEOUT = 30.0  # seconds for a swarm's start event to appear
PROBE_AT = 0.5  # how far into the measured time the processes-and-memory snapshot is taken
START_FIELDS = ("python", "backlog", "somaxconn", "nofile", "nofile_hard", "workers", "trace", "pid")
CLIENTS = ("swarm", "wrk")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="run the same workloads against each model and report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, metavar="A,B,...",
                   help="targets to compare (default: the Python models and the native ceiling; real servers by name or with --targets real)")
    p.add_argument("--scenario", default=None, metavar="NAME[,NAME...]",
                   help=f"workloads to run: {', '.join(w.name for w in WORKLOADS)} "
                        f"(default: {', '.join(w.name for w in WORKLOADS if w.default)})")
    p.add_argument("--repeat", type=_args.number(int, 1, 100), default=3,
                   help="fresh server containers per model (default 3)")
    p.add_argument("--duration", type=_args.number(float, 0.2, 3600.0, " seconds"), default=None,
                   help="measured seconds of each workload, after its warm-up (default: each "
                        "workload's own, 1.5 s; c10k keeps its scenario's)")
    p.add_argument("--checks", action="store_true",
                   help="then run the behaviour checks against the same models into this run (checks.json)")
    p.add_argument("--client", default="swarm", metavar="swarm[,wrk]",
                   help="load generators: swarm (always), wrk (HTTP workloads from a tools container too)")
    p.add_argument("--no-native", action="store_true",
                   help="leave out the native reference (the ceiling row), if there is one")
    p.add_argument("--targets", choices=("python", "real"), default="python",
                   help="python: the Python models and the native ceiling (default); real: and the real "
                        "servers (Apache, nginx, PostgreSQL, redis, memcached), each also classified")
    p.add_argument("--classify", action="store_true",
                   help="classify every target (`lab classify`'s probes), not only the real servers")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)


def kind_of(model: models.Model) -> str:
    return str(getattr(model, "kind", None) or model.spec.get("kind") or "model")


def comparable(catalogue: dict[str, models.Model], real: bool = True) -> dict[str, models.Model]:
    """What compare can drive: the models and references, and with ``real``
    the real servers (each in its own protocol)."""
    return {n: m for n, m in catalogue.items() if kind_of(m) in ("model", "reference")
            or (real and kind_of(m) == "server")}


def pick_models(text: str | None, known: list[str], references: list[str] | None = None,
                with_references: bool = True) -> list[str]:
    """The models named (default: every one), the references (the ceiling)
    first unless ``with_references`` is false; a reference named in
    ``text`` runs whatever the flag says."""
    refs = references or []
    first = refs if with_references else []
    if not text:
        return first + sorted((k for k in known if k not in refs), key=order_key)
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in known]
    if unknown or not wanted:
        raise UsageError(f"unknown model '{(unknown or [text])[0]}'; the models are: {', '.join(known)}")
    return list(dict.fromkeys([r for r in first if r not in wanted] + wanted))


def pick_workloads(text: str | None) -> list[Workload]:
    if not text:
        return [w for w in WORKLOADS if w.default]
    by_name = {w.name: w for w in WORKLOADS}
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    for name in wanted or [text]:
        if name not in by_name:
            raise UsageError(f"unknown scenario '{name}'; the scenarios are: {', '.join(by_name)}")
    return [from_scenario(by_name[n]) for n in dict.fromkeys(wanted)]


def pick_clients(text: str) -> list[str]:
    wanted = list(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))
    for c in wanted or [text]:
        if c not in CLIENTS:
            raise UsageError(f"unknown client '{c}'; the clients are: {', '.join(CLIENTS)}")
    return ["swarm"] + [c for c in wanted if c != "swarm"]


def from_scenario(w: Workload) -> Workload:
    """A scenario's workload with its flags, warm-up and length from the
    scenario file (the swarm gets ProbeSpec.flags(workers) at run time)."""
    if not w.scenario:
        return w
    scenario = scenarios.get(w.scenario)
    probe = scenario.probes["main"]
    warmup = float(probe.number("warmup", 0, 0))
    return replace(w, about=scenario.claim, warmup=warmup,
                   measure=float(probe.number("duration", 0)) - warmup,
                   flags={k: v for k, v in probe.values.items() if k not in scenarios.OPTIONS})


def order_key(name: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER), name)


# -- commands: every flag once -------------------------------------------------------

def program(base: list[str]) -> list[str]:
    """The part of a command before its first --flag (python3 /srv/swarm/swarm.py)."""
    cut = next((i for i, a in enumerate(base) if a.startswith("--")), len(base))
    return list(base[:cut])


def with_flags(base: list[str], **flags: Any) -> list[str]:
    """``base`` with each of ``flags`` set exactly once (--name=value, in the
    order given), replacing the same flag in ``base`` in either spelling
    (``--name=value`` or ``--name value``); a None value drops the flag."""
    names = {f"--{k.replace('_', '-')}" for k in flags}
    kept: list[str] = []
    skip = False
    for a in base:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True  # its value is the next word
            continue
        if a.split("=", 1)[0] in names:
            continue
        kept.append(a)
    return kept + [f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if v is not None]


def swarm_command(base: list[str], **flags: Any) -> list[str]:
    """The swarm's argv for one workload: compose.yaml's program and these
    flags only (compose.yaml's classic-experiment defaults would otherwise
    ride along: --interval on a pingpong run, a second --duration)."""
    return with_flags(program(base), **flags)


def duplicated(argv: list[str]) -> list[str]:
    """Flags that appear more than once in ``argv`` (none, in a command the lab shows)."""
    seen: dict[str, int] = {}
    for a in argv:
        if a.startswith("--"):
            seen[a.split("=", 1)[0]] = seen.get(a.split("=", 1)[0], 0) + 1
    return [k for k, n in seen.items() if n > 1]


# -- one model, one repeat ---------------------------------------------------------

@dataclass
class Plan:
    models: list[str]
    workloads: list[Workload]
    repeat: int
    duration: float | None
    server_commands: dict[str, list[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # model -> model | reference
    declares: dict[str, set[str]] = field(default_factory=dict)  # model -> its model.yaml expect keys
    ports: dict[str, int] = field(default_factory=dict)
    protocols: dict[str, str] = field(default_factory=dict)  # model -> what its clients speak
    wrk: bool = False
    replicas: int = 1  # client swarm replicas (Swarm mode)

    def measure(self, w: Workload) -> float:
        return self.duration if self.duration is not None and not w.scenario else w.measure

    def seconds(self, w: Workload) -> float:
        """About how long one run of ``w`` takes, for the progress bars."""
        if w.scenario:  # connecting the clients, then the swarm's --duration, then its results
            return float(w.flags.get("clients", 0)) / float(w.flags.get("ramp") or 1e9) + w.warmup \
                + w.measure + 3.0
        return w.warmup + self.measure(w) + 1.0 + (self.wrk_seconds(w) if self.wrk and w.wrk else 0.0)

    def wrk_seconds(self, w: Workload) -> int:
        return max(1, round(self.measure(w)))  # wrk takes whole seconds

    def skipped(self, model: str, w: Workload) -> str | None:
        """Why ``model`` does not run ``w``: a scenario's workload is its
        check, judged against a model.yaml key the model must declare."""
        if w.scenario and model in self.declares:
            key = scenarios.get(w.scenario).expect
            if key not in self.declares[model]:
                return f"its model.yaml makes no `{key}:` promise for the check to judge"
        return None

    def target(self, model: str) -> str:
        return f"{model}:{self.ports.get(model, DEFAULT_PORT)}"

    def flags(self, model: str, w: Workload) -> dict[str, Any]:
        """``w``'s swarm flags in ``model``'s protocol."""
        return reach.workload_flags(self.protocols.get(model, "line"), w.flags)


def _discard(live: LiveRun, unit: Unit | None, log_name: str) -> None:
    """Keep the unit's log in the run directory, then remove it."""
    if unit is None:
        return
    try:
        live.dir.write_log(log_name, unit.logs(stdout=True, stderr=True))
    except EngineError:
        pass
    for service, c in list(live.containers.items()):
        if c.id == unit.id:
            del live.containers[service]
    live.engine.remove(RunResources(live.id, units=[unit]))


def run_workload(live: LiveRun, plan: Plan, model: str, rep: int, server: Unit,
                 w: Workload, env: dict[str, Any]) -> dict[str, Any]:
    measured = plan.measure(w)
    tag = f"{model}-r{rep}-{w.name}"
    command = swarm_command(live.topology.service("swarm").spec["command"], **plan.flags(model, w),
                            target=plan.target(model),
                            warmup=w.warmup, duration=round(w.warmup + measured, 3), trace=SERVER_TRACE,
                            out=f"/results/{tag}")
    record: dict[str, Any] = {"swarm_command": command, "error": None}
    cgroup = Cgroup(server)
    sampler = Sampler(cgroup) if cgroup.local else None
    host = CpuOnly(HostCpu()) if cgroup.local else None  # type: ignore[arg-type]
    if host:
        host.start()
    swarm = live.start("swarm", command=command, replicas=plan.replicas)
    swarm_sampler = None
    bound = START_TIMEOUT + w.warmup + measured + w.wait_extra
    first = last = None
    try:
        if sampler:
            swarm_cgroup = Cgroup(swarm) if swarm.replicas == 1 else None
            swarm_sampler = CpuOnly(swarm_cgroup) if swarm_cgroup and swarm_cgroup.local else None
            for s in (sampler, swarm_sampler):
                if s:
                    s.start()
            try:
                record["swarm_exit_code"] = _wait(swarm, bound, tag)
            finally:
                for s in (sampler, swarm_sampler):
                    if s:
                        s.stop()
        else:
            first, last, record["load"] = scheduled(cgroup, server, swarm, f"swarm ({tag})", w.warmup,
                                                            measured, PROBE_AT, START_TIMEOUT)
            record["swarm_exit_code"] = _wait(swarm, bound, tag)
    finally:
        if host:
            host.stop()
    docs = live.results(swarm, f"/results/{tag}/results.json")
    limit = (swarm.limits().nano_cpus or 0) * swarm.replicas
    _discard(live, swarm, f"swarm.{tag}")
    if not docs:
        raise LabError(f"the swarm for {tag} exited ({record.get('swarm_exit_code')}) without results.json")
    doc = merge.replicas(docs, swarm.replicas) if len(docs) > 1 or swarm.replicas > 1 or docs[0].clock.offset_s \
        else json.loads(docs[0].data)
    record["swarm"] = results.trim_swarm(doc, keep_timeline=w.kind == "timeline")
    record["replies_per_client"] = results.replies_per_client(doc)
    summary = doc.get("summary") or {}
    rps = float(summary.get("replies_per_s") or 0.0) if summary.get("replies_measured") else 0.0
    t0 = (doc.get("started") or {}).get("monotonic")
    start_t = end_t = None
    if sampler and t0 is not None:  # the swarm's measured window, on its clock (and ours: local)
        start_t = t0 + float(doc.get("warmup_s") or 0.0)
        end_t = float((doc.get("ended") or {}).get("monotonic") or start_t)
        spans, record["load"], resolution = sampler.window(start_t, end_t, PROBE_AT, t0)
    else:
        spans, resolution = ([(first, last)] if first and last else []), None
    record["server_cpu"] = server_cpu(spans, rps, cgroup.source, t0 if sampler else None)
    if resolution is not None:
        record["server_cpu"]["resolution_s"] = resolution
    swarm_cores = window_cores(swarm_sampler, start_t or 0, end_t or 0)
    record["limit_inputs"] = results.limit_inputs(
        record["server_cpu"]["cores"], swarm_cores if swarm_cores is not None else (doc.get("cpu") or {}).get("per_s"),
        "cgroup" if swarm_cores is not None else "self-reported", summary.get("workers"),
        round(limit / 1e9, 3) if limit else None, env["engine"].get("cpus"),
        window_cores(host, start_t or 0, end_t or 0))
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
    began = time.monotonic()
    # No health check: the engine would run it in the server's cgroup every
    # 250 ms, and its CPU would be counted as the model's.  The server's own
    # start event (after listen()) says it is ready.
    server = live.start(model, command=plan.server_commands[model], healthcheck=NO_HEALTHCHECK)
    try:
        if plan.kinds.get(model) == "server":  # no trace of the lab's: listening, then a first reply
            start: dict[str, Any] = {}
            ready_real_server(live, plan, model, server)
        else:
            trace = EventStream(server, name=model)
            try:
                start = trace.wait_for(lambda e: e["ev"] == "start", timeout=READY_TIMEOUT, what="start events")
            finally:
                trace.close()
        record["ready_after_s"] = round(time.monotonic() - began, 3)
        record["server_start"] = {k: start.get(k) for k in START_FIELDS}
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = engine_cpu_model(server)
        record["idle"] = resources(server, Cgroup(server).procs_dir)
        for w in workloads:
            with ui.step(f"{model} {rep}/{plan.repeat} {w.name}", plan.seconds(w)):
                try:
                    got = run_workload(live, plan, model, rep, server, w, env)
                except (LabError, TraceTimeout) as exc:
                    got = {"error": str(getattr(exc, "explanation", None) or exc)}
                    live.containers.pop("swarm", None)
                    for c in live.resources().units:  # a stuck swarm goes now, not at the end
                        if c.name.endswith("-swarm"):
                            _discard(live, c, f"swarm.{model}-r{rep}-{w.name}")
                if plan.wrk and w.wrk and plan.kinds.get(model) != "reference" \
                        and plan.protocols.get(model, "line") in ("line", "http"):
                    got["wrk"] = run_wrk(live, plan, model, w, server, env)
            record["workloads"][w.name] = got
            ui.note(one_line(model, rep, w.name, got))
    except (LabError, TraceTimeout) as exc:
        record["error"] = str(getattr(exc, "explanation", None) or exc)
        ui.note(f"{model} {rep}/{plan.repeat}: FAILED: {exc}")
    finally:
        _discard(live, server, f"{model}.r{rep}")


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


def classify_target(live: LiveRun, model: models.Model, ui: Progress, replicas: int) -> dict[str, Any]:
    """`lab classify`'s probes on a fresh server of its own: the inferred
    class beside the declared one (results.json's models.<m>.classification)."""
    from ..observe import classify, probes as observe
    bench = None
    try:
        with ui.step(f"{model.name} classify", 12.0):
            bench = Bench(live, saved_under="classify", replicas=replicas)
            seen, found = observe.classify_model(bench, model)
        cls, n = classify.declared(model)
        return {**found.as_dict(), "declared": {"class": cls, "n": n, "summary": classify.NAMES[cls].format(n=n or "N")}
                if cls else None,
                "agrees": classify.agrees(found, cls, n), "observed": seen.as_dict()}
    except LabError as exc:
        return {"error": str(getattr(exc, "explanation", None) or exc)}
    finally:
        if bench is not None:
            _discard(live, bench.swarm_container, f"swarm.{model.name}-classify")


def run_scenario(live: LiveRun, model: str, rep: int, w: Workload, env: dict[str, Any],
                 replicas: int = 1) -> dict[str, Any]:
    """A scenario's workload, measured as `lab check` measures it (the same
    code: lab.checks' probes and the scenario's judge): a fresh server with
    the scenario's server flags, the swarm by exec in an idle swarm
    container with the scenario's flags, the peak reading once the server
    has accepted every client.  The judge's figures are kept, and compare's
    own connection counters (results.c10k_counters) beside them."""
    scenario, spec = scenarios.get(str(w.scenario)), models.get(model)
    got: dict[str, Any] = {"error": None}
    bench = target = None
    # the scenario's own --trace wins; Bench.serve adds --trace itself, so it goes once
    trace = next((a.split("=", 1)[1] for a in scenario.server if a.startswith("--trace=")), SERVER_TRACE)
    args = [a for a in scenario.server if not a.startswith("--trace=")]
    try:
        bench = Bench(live, saved_under=f"probes/r{rep}", replicas=replicas)
        target = bench.serve(spec, args=args, trace=trace, timeout=READY_TIMEOUT)
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = engine_cpu_model(target.container)
        ctx = checks.Context(spec, scenario, target, checks.tolerances(spec))
        verdict = checks.check(bench, ctx)[0]
        if "main" not in ctx.probes:
            raise LabError(verdict.observed)
        probe, reading = ctx.probes["main"], ctx.readings.get("main", {})
        counters = results.c10k_counters(ctx.events(probe), probe.results, reading.get("peak_t"),
                                         verdict.figures.get("kept_to_the_end"))
        got.update(results.scenario_record(probe, reading, verdict, _server(target),
                                           _cpu(probe, reading, target), counters))
    except Exception as exc:  # a probe or judge that breaks is a failed measurement, not a lost run
        got["error"] = str(getattr(exc, "explanation", None) or exc) or type(exc).__name__
    finally:
        if target is not None:
            target.close()
        _discard(live, target.container if target else live.containers.get(model), f"{model}.r{rep}.{w.name}")
        _discard(live, bench.swarm_container if bench else live.containers.get("swarm"),
                 f"swarm.{model}-r{rep}-{w.name}")
    return got


def _server(target: Target) -> dict[str, Any]:
    start = next((e for e in target.events.events if e["ev"] == "start"), {})
    return {"command": target.container.command(), "ready_after_s": round(target.healthy_after, 3),
            "start": {k: start.get(k) for k in START_FIELDS}}


def _cpu(probe: Probe, reading: dict[str, Any], target: Target) -> dict[str, Any]:
    """The server's CPU between the check's readings just before the swarm
    started and after it ended (the ramp included, so no CPU per reply)."""
    spans = [(reading["cpu_before"], reading["cpu_after"])] if "cpu_after" in reading else []
    return server_cpu(spans, 0.0, target.cgroup.source, (probe.results.get("started") or {}).get("monotonic"))


# -- wrk, beside the swarm -----------------------------------------------------------

def wrk_command(plan: Plan, model: str, w: Workload, threads: int) -> list[str]:
    """wrk's HTTP twin of ``w``: as many keep-alive connections, one request
    in flight on each (wrk's closed loop), a path as long as the swarm's line."""
    return _clients.wrk_command(plan.target(model), int(w.flags.get("clients", 50)), plan.wrk_seconds(w), threads)


def run_wrk(live: LiveRun, plan: Plan, model: str, w: Workload, server: Unit,
            env: dict[str, Any]) -> dict[str, Any]:
    threads = int(env["engine"].get("cpus") or 2)
    return _clients.run_wrk(live, wrk_command(plan, model, w, threads), plan.wrk_seconds(w), threads, server,
                            env["engine"].get("cpus"))


# -- the behaviour checks, into this run -------------------------------------------

def run_checks(live: LiveRun, chosen: list[models.Model], ui: Progress, replicas: int = 1) -> dict[str, Any]:
    """`lab check`'s code against ``chosen``, in this run: checks.json."""
    began = time.monotonic()
    scenario_list = scenarios.chosen(None)
    verdicts: list[checks.Verdict] = []
    bench = Bench(live, saved_under="checks", replicas=replicas)

    def progress(model: str, scenario: str, found: list[checks.Verdict] | None) -> None:
        if found is not None:
            words = {True: "held", False: "FAILED", None: "not judged"}
            ui.note(f"check {model} {scenario}: " + "; ".join(f"{words[v.ok]}" + ("" if v.ok else f" ({v.observed})")
                                                             for v in found))
    try:
        for model in chosen:
            verdicts += checks.run_model(bench, model, scenario_list, progress)
    finally:
        _discard(live, bench.swarm_container, "swarm.checks")
    skips = [s for m in chosen for s in scenarios.skipped(m, scenario_list)]
    meta = {"run": live.id, "models": [m.name for m in chosen],
            "scenarios": {s.name: str(s.file) for s in scenario_list},
            "duration_s": round(time.monotonic() - began, 1), "by": "lab compare --checks"}
    return checks.as_json(verdicts, meta, skips) if skips else checks.as_json(verdicts, meta)


# -- the verb ---------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    _args.replicas_need_swarm(args)
    catalogue = comparable(models.all_models())
    topology = compose.load_topology(config.compose_file())
    refs = [n for n, m in catalogue.items() if kind_of(m) == "reference" and n in topology.services]
    servers = [n for n, m in catalogue.items() if kind_of(m) == "server"]
    usual = [n for n in catalogue if n not in servers]  # by default: the Python models and the ceiling
    chosen = pick_models(args.models, list(catalogue), refs, with_references=not args.no_native) if args.models \
        else pick_models(None, usual, refs, with_references=not args.no_native)
    if args.targets == "real":
        chosen += [n for n in servers if n not in chosen]
    workloads = pick_workloads(args.scenario)
    clients = pick_clients(args.client)
    if "wrk" in clients and (why := wrk_available()):
        raise UsageError(why)
    plan = Plan(chosen, workloads, args.repeat, args.duration, wrk="wrk" in clients, replicas=args.swarm_replicas)
    for name in chosen:
        if name not in topology.services:
            raise UsageError(f"{name} has a model.yaml but no service in {topology.file}")
        plan.server_commands[name] = with_flags(topology.service(name).spec["command"], trace=SERVER_TRACE)
        plan.kinds[name] = kind_of(catalogue[name])
        plan.declares[name] = set(catalogue[name].expect)
        plan.ports[name] = int(getattr(catalogue[name], "port", DEFAULT_PORT))
        plan.protocols[name] = str(getattr(catalogue[name], "protocol", "line"))
    params = {"models": chosen, "targets": args.targets, "scenarios": [w.name for w in workloads],
              "repeat": args.repeat,
              "duration": args.duration, "clients": clients, "checks": bool(args.checks),
              "reference": next((m for m in chosen if plan.kinds[m] == "reference"), None),
              "orchestrator": args.orchestrator or None, "swarm_replicas": args.swarm_replicas}
    planned = sum((plan.seconds(w) + 0.3) * args.repeat for m in chosen for w in workloads
                  if not plan.skipped(m, w)) + 1.5 * len(chosen) * args.repeat
    eng = engine(args.orchestrator)
    kept = [m.name for m in check.usable(eng, [catalogue[n] for n in chosen], explicit=bool(args.models))]
    chosen[:] = kept  # the plan and params hold this list
    params["orchestrator"] = eng.kind
    say(f"comparing {_n(len(chosen), 'model')} x {_n(args.repeat, 'repeat')} x "
        f"{_n(len(workloads), 'workload')} ({', '.join(w.name for w in workloads)}): "
        f"about {planned / 60:.1f} min" + (", then the behaviour checks" if args.checks else ""))
    what = chosen[0] if len(chosen) == 1 else f"{len(chosen)}-models"
    steps = sum(args.repeat for m in chosen for w in workloads if not plan.skipped(m, w)) \
        + sum(1 for m in chosen if args.classify or plan.kinds[m] == "server")  # a classification each
    with LiveRun(eng, "compare", what, say=say, params=params, topology=topology) as live:
        image = live.ensure_image()
        doc = results.new(live.id, {**params, "argv": ["lab", *sys.argv[1:]], "server_trace": SERVER_TRACE,
                                   "server_commands": plan.server_commands,
                                   "swarm_base_command": program(topology.service("swarm").spec["command"])},
                         environment(eng), [workload_doc(w, plan) for w in workloads])
        doc["environment"]["containers"]["image"] = image
        began = time.monotonic()
        with Progress(steps) as ui:
            for name in chosen:
                entry = doc["models"][name] = {
                    "kind": plan.kinds[name], "summary": catalogue[name].summary,
                    "expect": catalogue[name].expect, "server_command": plan.server_commands[name],
                    "skipped": skipped_doc(plan, name), "repeats": []}
                for rep in range(1, args.repeat + 1):
                    entry["repeats"].append(measure_model(live, plan, name, rep, ui, doc["environment"]))
                    results.note_repeat(doc, name, entry["repeats"][-1])
                if args.classify or plan.kinds[name] == "server":
                    entry["classification"] = classify_target(live, catalogue[name], ui, args.swarm_replicas)
            doc["run"]["measured_s"] = round(time.monotonic() - began, 1)
            live.dir.write_json("results.json", doc)  # the figures are safe before the checks begin
            report = None
            if args.checks:
                report = run_checks(live, [catalogue[m] for m in chosen], ui, args.swarm_replicas)
                live.dir.write_json("checks.json", report)
        doc["run"]["ended_wall"] = round(time.time(), 3)
        live.dir.write_json("results.json", doc)
        from ..report import render_run
        for rel, content in render_run(live.dir.path).items():
            live.dir.write_bytes(rel, content)
    print_summary(out, live.dir.path, doc["run"]["measured_s"])
    for line in doc["errors"]:
        say(f"problem: {line}")
    return exit_status(doc, report)


def exit_status(doc: dict[str, Any], report: dict[str, Any] | None) -> int:
    """1 if a measurement or a verdict failed; 3 if a verdict was not judged; else 0."""
    oks = [c.get("ok") for c in (report or {}).get("checks", [])]
    oks += [(rec.get("check") or {}).get("ok") for m in doc["models"].values() for rep in m["repeats"]
            for rec in rep["workloads"].values() if rec.get("check")]
    if any(ok is False for ok in oks):
        say(f"{sum(1 for ok in oks if ok is False)} expectation(s) did not hold: see the report's verdicts")
    elif any(ok is None for ok in oks):
        say(f"{sum(1 for ok in oks if ok is None)} expectation(s) could not be judged: see the report's verdicts")
    if doc["errors"] or any(ok is False for ok in oks):
        return EXIT_FAILED
    return EXIT_NOT_JUDGED if any(ok is None for ok in oks) else 0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def skipped_doc(plan: Plan, model: str) -> dict[str, str]:
    """{workload: why} for what ``model`` does not run (``workload/wrk``: wrk's part)."""
    found = {w.name: why for w in plan.workloads if (why := plan.skipped(model, w))}
    if plan.wrk and plan.kinds.get(model) == "reference":
        found.update({f"{w.name}/wrk": "wrk speaks HTTP; the reference answers the line protocol only"
                      for w in plan.workloads if w.wrk})
    return found


def workload_doc(w: Workload, plan: Plan) -> dict[str, Any]:
    doc = {"name": w.name, "title": w.title, "kind": w.kind, "about": w.about, "flags": w.flags,
           "warmup_s": w.warmup, "measure_s": plan.measure(w)}
    if w.scenario:  # where its flags came from, and the server flags it ran with
        doc.update(scenario=w.scenario, server_flags=scenarios.get(w.scenario).server)
    if plan.wrk and w.wrk:
        doc["wrk_seconds"] = plan.wrk_seconds(w)
    return doc
