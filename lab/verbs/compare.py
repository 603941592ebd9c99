"""lab compare: the same workloads against every model, side by side.

Each model runs in its own fresh server container per repeat, alone on the
engine (the previous model's containers are removed first, so their CPU never
colours the next one's figures).  Against it the swarm runs each workload of
the table below in turn, each in a fresh swarm container that targets the
model by its service name.  Per workload the lab records the swarm's summary,
the server's CPU over the swarm's measured window (its cgroup's CPU time;
the warm-up left out), its processes, threads and memory under load, and the
swarm's own CPU (every reading through lab/measure.py).  Everything goes into
one results.json (schema iolab.compare/1, lab/report/SCHEMA.md), from which
the report is rendered: report.html, report.md, results.csv and plots/
(`lab report` renders it again).

Workloads (--scenario NAME[,NAME...] picks some; default: every one marked
default):

    classic    the classic experiment: 3 clients, a message every 50 ms;
               its request/reply pairs draw the timeline
    pingpong   closed loop: 50 connections, one 64-byte request in flight each
    pipelined  closed loop: 50 connections, 8 requests in flight each
    rate       open loop: 50 connections, 1,000 requests/s in all, latency
               measured from each request's intended send time
    c10k       not a default (about 25 s per model): scenarios/c10k.yaml as
               `lab run c10k` runs it, on a server of its own with the
               scenario's server flags: 10,000 connections, 100 of them busy;
               connections kept, latency, memory per connection at the peak

Exit status: 0 every model and workload was measured; 1 some measurement
failed (the report says which, and shows the rest); 2 bad input or no
usable engine; 130 interrupted (what the run started is removed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any

import docker.errors
from docker.models.containers import Container

from .. import checks, compose, config, measure, models, scenarios
from ..checks import judges
from ..console import out, say
from ..context import engine
from ..engine import Engine, RunResources
from ..errors import EXIT_FAILED, LabError, UsageError
from ..events import EventStream, TraceTimeout
from ..live import LiveRun
from ..probe import Bench, Probe, Target
from ..report import results
from ..report.terminal import Progress, one_line, print_summary
from . import _args
from .up import swarm_command

SCHEMA = results.SCHEMA


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
    (--duration replaces it, except for a scenario's).
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
             {"clients": 50, "pattern": "pingpong", "pipeline": 1, "size": 64}, measure=1.5),
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
               "prefork", "threads", "threadpool", "asyncio")
SERVER_TRACE = "conn"  # connection events only: per-message events would cost what they measure
READY_TIMEOUT = 60.0  # seconds for a server's start event
NO_HEALTHCHECK = {"test": ["NONE"]}
START_TIMEOUT = 30.0  # seconds for a swarm's start event to appear
PROBE_AT = 0.5  # how far into the measured time the processes-and-memory snapshot is taken
START_FIELDS = ("python", "backlog", "somaxconn", "nofile", "nofile_hard", "workers", "trace", "pid")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="run the same workloads against each model and report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, metavar="A,B,...",
                   help="models to compare (default: every model)")
    p.add_argument("--scenario", default=None, metavar="NAME[,NAME...]",
                   help=f"workloads to run: {', '.join(w.name for w in WORKLOADS)} "
                        f"(default: {', '.join(w.name for w in WORKLOADS if w.default)})")
    p.add_argument("--repeat", type=_args.number(int, 1, 100), default=3,
                   help="fresh server containers per model (default 3)")
    p.add_argument("--duration", type=_args.number(float, 0.2, 3600.0, " seconds"), default=None,
                   help="measured seconds of each workload, after its warm-up (default: each "
                        "workload's own, 1.5 s; c10k keeps its scenario's)")
    p.set_defaults(func=run)


def pick_models(text: str | None, known: list[str]) -> list[str]:
    if not text:
        return sorted(known, key=order_key)
    wanted = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in known]
    if unknown or not wanted:
        raise UsageError(f"unknown model '{(unknown or [text])[0]}'; the models are: {', '.join(known)}")
    return list(dict.fromkeys(wanted))


def pick_workloads(text: str | None) -> list[Workload]:
    if not text:
        return [w for w in WORKLOADS if w.default]
    by_name = {w.name: w for w in WORKLOADS}
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    for name in wanted or [text]:
        if name not in by_name:
            raise UsageError(f"unknown scenario '{name}'; the scenarios are: {', '.join(by_name)}")
    return [from_scenario(by_name[n]) for n in dict.fromkeys(wanted)]


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


# -- one model, one repeat ---------------------------------------------------------

@dataclass
class Plan:
    models: list[str]
    workloads: list[Workload]
    repeat: int
    duration: float | None
    server_commands: dict[str, list[str]] = field(default_factory=dict)

    def measure(self, w: Workload) -> float:
        return self.duration if self.duration is not None and not w.scenario else w.measure

    def seconds(self, w: Workload) -> float:
        """About how long one run of ``w`` takes, for the progress bars."""
        if w.scenario:  # connecting the clients, then the swarm's --duration, then its results
            return float(w.flags.get("clients", 0)) / float(w.flags.get("ramp") or 1e9) + w.warmup \
                + w.measure + 3.0
        return w.warmup + self.measure(w) + 1.0


def _discard(live: LiveRun, container: Container | None, log_name: str) -> None:
    """Keep the container's log in the run directory, then remove it."""
    if container is None:
        return
    try:
        live.dir.write_log(log_name, container.logs(stdout=True, stderr=True))
    except docker.errors.APIError:
        pass
    for service, c in list(live.containers.items()):
        if c.id == container.id:
            del live.containers[service]
    live.engine.remove(RunResources(live.id, containers=[container]))


def run_workload(live: LiveRun, plan: Plan, model: str, rep: int, server: Container,
                 w: Workload) -> dict[str, Any]:
    measured = plan.measure(w)
    tag = f"{model}-r{rep}-{w.name}"
    flags = dict(w.flags, target=f"{model}:12345", warmup=w.warmup, duration=round(w.warmup + measured, 3),
                 trace=SERVER_TRACE, out=f"/results/{tag}")
    command = swarm_command(live.topology.service("swarm").spec["command"], **flags)
    record: dict[str, Any] = {"swarm_command": command, "error": None}
    cgroup = measure.Cgroup(server)
    sampler = measure.Sampler(cgroup) if cgroup.local else None
    swarm = live.start("swarm", command=command)
    bound = START_TIMEOUT + w.warmup + measured + w.wait_extra
    first = last = None
    if sampler:
        sampler.start()
        try:
            record["swarm_exit_code"] = _wait(swarm, bound, tag)
        finally:
            sampler.stop()
    else:
        first, last, record["load"] = measure.scheduled(cgroup, server, swarm, f"swarm ({tag})", w.warmup,
                                                        measured, PROBE_AT, START_TIMEOUT)
        record["swarm_exit_code"] = _wait(swarm, bound, tag)
    raw = live.read_file("swarm", f"/results/{tag}/results.json")
    _discard(live, swarm, f"swarm.{tag}")
    if raw is None:
        raise LabError(f"the swarm for {tag} exited ({record.get('swarm_exit_code')}) without results.json")
    doc = json.loads(raw)
    record["swarm"] = results.trim_swarm(doc, keep_timeline=w.kind == "timeline")
    record["replies_per_client"] = results.replies_per_client(doc)
    summary = doc.get("summary") or {}
    rps = float(summary.get("replies_per_s") or 0.0) if summary.get("replies_measured") else 0.0
    t0 = (doc.get("started") or {}).get("monotonic")
    if sampler and t0 is not None:  # the swarm's measured window, on its clock (and ours: local)
        start_t = t0 + float(doc.get("warmup_s") or 0.0)
        end_t = float((doc.get("ended") or {}).get("monotonic") or start_t)
        spans, record["load"], resolution = sampler.window(start_t, end_t, PROBE_AT, t0)
    else:
        spans, resolution = ([(first, last)] if first and last else []), None
    record["server_cpu"] = measure.server_cpu(spans, rps, cgroup.source, t0 if sampler else None)
    if resolution is not None:
        record["server_cpu"]["resolution_s"] = resolution
    if not doc.get("ok", False):
        record["error"] = "; ".join(doc.get("failures") or ["the swarm reported a failure"])
    return record


def _wait(swarm: Container, bound: float, tag: str) -> int | None:
    """The swarm's exit status, waiting at most ``bound`` seconds."""
    try:
        return swarm.wait(timeout=bound).get("StatusCode")
    except Exception:  # requests' ReadTimeout/ConnectionError: the bounded wait ran out
        raise LabError(f"the swarm for {tag} was still running after {bound:g} s; last lines: "
                       f"{Engine.tail(swarm, 3)}") from None


def measure_model(live: LiveRun, plan: Plan, model: str, rep: int, ui: Progress,
                  env: dict[str, Any]) -> dict[str, Any]:
    """One repeat: the swarm workloads on one fresh server, then each
    scenario's workload on a fresh server of its own (its server flags differ)."""
    record: dict[str, Any] = {"repeat": rep, "error": None, "workloads": {}}
    swarm_workloads = [w for w in plan.workloads if not w.scenario]
    if swarm_workloads:
        measure_workloads(live, plan, model, rep, ui, env, swarm_workloads, record)
    for w in plan.workloads:
        if w.scenario:
            with ui.step(f"{model} {rep}/{plan.repeat} {w.name}", plan.seconds(w)):
                got = run_scenario(live, model, rep, w, env)
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
        trace = EventStream(server, name=model)
        try:
            start = trace.wait_for(lambda e: e["ev"] == "start", timeout=READY_TIMEOUT, what="start events")
        finally:
            trace.close()
        record["ready_after_s"] = round(time.monotonic() - began, 3)
        record["server_start"] = {k: start.get(k) for k in START_FIELDS}
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = measure.engine_cpu_model(server)
        record["idle"] = measure.resources(server, measure.Cgroup(server).procs_dir)
        for w in workloads:
            with ui.step(f"{model} {rep}/{plan.repeat} {w.name}", plan.seconds(w)):
                try:
                    got = run_workload(live, plan, model, rep, server, w)
                except (LabError, TraceTimeout, docker.errors.APIError) as exc:
                    got = {"error": str(getattr(exc, "explanation", None) or exc)}
                    live.containers.pop("swarm", None)
                    for c in live.resources().containers:  # a stuck swarm goes now, not at the end
                        if c.name.endswith("-swarm"):
                            _discard(live, c, f"swarm.{model}-r{rep}-{w.name}")
            record["workloads"][w.name] = got
            ui.note(one_line(model, rep, w.name, got))
    except (LabError, TraceTimeout, docker.errors.APIError) as exc:
        record["error"] = str(getattr(exc, "explanation", None) or exc)
        ui.note(f"{model} {rep}/{plan.repeat}: FAILED: {exc}")
    finally:
        _discard(live, server, f"{model}.r{rep}")


def run_scenario(live: LiveRun, model: str, rep: int, w: Workload, env: dict[str, Any]) -> dict[str, Any]:
    """A scenario's workload, measured as `lab check` measures it (the same
    code: lab.checks.run_probes and the scenario's judge): a fresh server
    with the scenario's server flags, the swarm by exec in an idle swarm
    container with the scenario's flags, the peak reading once the server
    has accepted every client.  The judge's figures are kept."""
    scenario, spec = scenarios.get(str(w.scenario)), models.get(model)
    got: dict[str, Any] = {"error": None}
    bench = target = None
    try:
        bench = Bench(live, saved_under=f"probes/r{rep}")
        target = bench.serve(spec, args=scenario.server, trace=SERVER_TRACE, timeout=READY_TIMEOUT)
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = measure.engine_cpu_model(target.container)
        ctx = checks.Context(spec, scenario, target, checks.tolerances(spec))
        checks.run_probes(bench, ctx)
        verdict = judges.JUDGES[scenario.judge](ctx)[0]
        probe, reading = ctx.probes["main"], ctx.readings.get("main", {})
        got.update(results.scenario_record(probe, reading, verdict, _server(target), _cpu(probe, reading, target)))
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
    return {"command": target.container.attrs["Config"]["Cmd"], "ready_after_s": round(target.healthy_after, 3),
            "start": {k: start.get(k) for k in START_FIELDS}}


def _cpu(probe: Probe, reading: dict[str, Any], target: Target) -> dict[str, Any]:
    """The server's CPU between the check's readings just before the swarm
    started and after it ended (the ramp included, so no CPU per reply)."""
    spans = [(reading["cpu_before"], reading["cpu_after"])] if "cpu_after" in reading else []
    return measure.server_cpu(spans, 0.0, target.cgroup.source, (probe.results.get("started") or {}).get("monotonic"))


# -- the verb ---------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    catalogue = models.all_models()
    chosen = pick_models(args.models, list(catalogue))
    workloads = pick_workloads(args.scenario)
    topology = compose.load_topology(config.compose_file())
    plan = Plan(chosen, workloads, args.repeat, args.duration)
    for name in chosen:
        if name not in topology.services:
            raise UsageError(f"{name} has a model.yaml but no service in {topology.file}")
        plan.server_commands[name] = [*topology.service(name).spec["command"], f"--trace={SERVER_TRACE}"]
    params = {"models": chosen, "scenarios": [w.name for w in workloads], "repeat": args.repeat,
              "duration": args.duration}
    planned = (sum(plan.seconds(w) + 0.3 for w in workloads) + 1.5) * len(chosen) * args.repeat
    eng = engine()
    say(f"comparing {_n(len(chosen), 'model')} x {_n(args.repeat, 'repeat')} x "
        f"{_n(len(workloads), 'workload')} ({', '.join(w.name for w in workloads)}): "
        f"about {planned / 60:.1f} min")
    what = chosen[0] if len(chosen) == 1 else f"{len(chosen)}-models"
    with LiveRun(eng, "compare", what, say=say, params=params, topology=topology) as live:
        image = live.ensure_image()
        doc = results.new(live.id, {**params, "argv": ["lab", *sys.argv[1:]], "server_trace": SERVER_TRACE,
                                   "server_commands": plan.server_commands,
                                   "swarm_base_command": list(topology.service("swarm").spec["command"])},
                         measure.environment(eng), [workload_doc(w, plan) for w in workloads])
        doc["environment"]["containers"]["image"] = image
        began = time.monotonic()
        with Progress(len(chosen) * args.repeat * len(workloads)) as ui:
            for name in chosen:
                entry = doc["models"][name] = {
                    "summary": catalogue[name].summary, "expect": catalogue[name].expect,
                    "server_command": plan.server_commands[name], "repeats": []}
                for rep in range(1, args.repeat + 1):
                    entry["repeats"].append(measure_model(live, plan, name, rep, ui, doc["environment"]))
                    results.note_repeat(doc, name, entry["repeats"][-1])
        doc["run"]["measured_s"] = round(time.monotonic() - began, 1)
        doc["run"]["ended_wall"] = round(time.time(), 3)
        live.dir.write_json("results.json", doc)
        from ..report import render_run
        for rel, content in render_run(live.dir.path).items():
            live.dir.write_bytes(rel, content)
    print_summary(out, live.dir.path, doc["run"]["measured_s"])
    for line in doc["errors"]:
        say(f"problem: {line}")
    return EXIT_FAILED if doc["errors"] else 0


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def workload_doc(w: Workload, plan: Plan) -> dict[str, Any]:
    doc = {"name": w.name, "title": w.title, "kind": w.kind, "about": w.about, "flags": w.flags,
           "warmup_s": w.warmup, "measure_s": plan.measure(w)}
    if w.scenario:  # where its flags came from, and the server flags it ran with
        doc.update(scenario=w.scenario, server_flags=scenarios.get(w.scenario).server)
    return doc
