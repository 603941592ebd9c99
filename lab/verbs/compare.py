"""lab compare: the same workloads against every model, side by side.

Each model runs in its own fresh server container per repeat, alone on the
engine (the previous model's containers are removed first, so their CPU never
colours the next one's figures).  Against it the swarm runs each workload of
the table below in turn, each in a fresh swarm container that targets the
model by its service name.  Per workload the lab records the swarm's summary,
the server's CPU over the swarm's measured window (its cgroup's CPU time;
the warm-up left out), its processes, threads and memory under load (PSS and
USS from /proc/<pid>/smaps_rollup, RSS where that cannot be read), and the
swarm's own CPU.  Everything goes into one results.json (schema
iolab.compare/1, lab/report/SCHEMA.md), from which the report is rendered:
report.html, report.md, results.csv and plots/ (`lab report` renders it
again).

Workloads (--scenario NAME[,NAME...] picks some; default: every one marked
default):

    classic    the classic experiment: 3 clients, a message every 50 ms;
               its request/reply pairs draw the timeline
    pingpong   closed loop: 50 connections, one 64-byte request in flight each
    pipelined  closed loop: 50 connections, 8 requests in flight each
    rate       open loop: 50 connections, 1,000 requests/s in all, latency
               measured from each request's intended send time

Exit status: 0 every model and workload was measured; 1 some measurement
failed (the report says which, and shows the rest); 2 bad input or no
usable engine; 130 interrupted (what the run started is removed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import docker.errors
from docker.models.containers import Container
from rich.markup import escape
from rich.measure import Measurement

from .. import __version__, compose, config, models
from ..console import err, out, say
from ..context import engine
from ..engine import Engine, RunResources
from ..errors import EXIT_FAILED, LabError, UsageError
from ..events import EventStream, TraceTimeout
from ..live import LiveRun
from ..runs import git_commit, host_environment
from . import _args
from .up import swarm_command

SCHEMA = "iolab.compare/1"


# -- the workloads: one row each; a new scenario is one more row ---------------
#
# To add one (say c10k): append a Workload with its name, the kind of report
# section it feeds, and the swarm flags that make it (clients, pattern, ...);
# give it default=False if it is too long for every `lab compare`, and a
# larger wait_extra if connecting its clients takes a while.  `--scenario
# c10k` then runs it, and the report shows it by its kind, in the tables,
# the resource figures and results.csv.

@dataclass(frozen=True)
class Workload:
    """One swarm run against each model.

    kind says which parts of the report use it: ``timeline`` (the Gantt
    chart of who was served when), ``closed`` (closed-loop throughput and
    latency), ``open`` (open-loop latency at a fixed rate); any workload
    appears in the tables and the resource figures.  ``flags`` are the
    swarm's flags (swarm.py --help), ``warmup`` is left out of every figure,
    ``measure`` is the measured time after it (--duration replaces it).
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
)

# The order the lab's essay introduces the models in; others follow, by name.
MODEL_ORDER = ("blocking", "busypoll", "select", "poll", "epoll", "epoll-edge", "forking",
               "prefork", "threads", "threadpool", "asyncio")
SERVER_TRACE = "conn"  # connection events only: per-message events would cost what they measure
READY_TIMEOUT = 60.0  # seconds for a server's start event
NO_HEALTHCHECK = {"test": ["NONE"]}
START_TIMEOUT = 30.0  # seconds for a swarm's start event to appear
PROBE_AT = 0.5  # how far into the measured time the processes-and-memory snapshot is taken


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
                        "workload's own, 1.5 s)")
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
    return [by_name[n] for n in dict.fromkeys(wanted)]


def order_key(name: str) -> tuple[int, str]:
    return (MODEL_ORDER.index(name) if name in MODEL_ORDER else len(MODEL_ORDER), name)


# -- measuring: CPU, processes, memory -------------------------------------------

Sample = tuple[float, int]  # (monotonic seconds, cumulative CPU nanoseconds)


class CpuMeter:
    """A container's cumulative cgroup CPU time, read the best way available:

    host     its own cgroup file, when this machine can see it (the engine is
             local: the container's id is in the path, so it cannot be another
             machine's).  Exact and free for the container, and on the same
             clock as the swarm's timestamps: a sampler thread reads it every
             50 ms and the CPU over the swarm's own measured window is
             interpolated from the readings, however late the lab itself is
             scheduled on a busy machine (on this 2-core VM, under a forking
             server, the lab's threads can miss a second).  Another thread
             takes a process-and-memory snapshot every 0.25 s from the same
             cgroup (local_resources).
    exec     `cat` of the cgroup file inside the container, for a remote
             engine: two readings on the lab's clock, each about 0.1 s, whose
             own few ms of CPU are counted.
    stats    the engine's stats API, if neither works: free for the
             container, but a reading can take a second.
    """

    HOST_PATHS = ("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage",
                  "/sys/fs/cgroup/cpu,cpuacct/docker/{id}/cpuacct.usage",
                  "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat",
                  "/sys/fs/cgroup/docker/{id}/cpu.stat")
    EXEC = ["sh", "-c", "cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null || "
                        "cat /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage 2>/dev/null || "
                        "grep '^usage_usec' /sys/fs/cgroup/cpu.stat"]
    PERIOD = 0.05
    SNAPSHOT_PERIOD = 0.25  # seconds between process-and-memory snapshots

    def __init__(self, container: Container) -> None:
        self.container = container
        self.path = next((p for p in (t.format(id=container.id) for t in self.HOST_PATHS)
                          if os.access(p, os.R_OK)), None)
        self.source = "host" if self.path else "exec"
        self.samples: list[Sample] = []
        self.snapshots: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def local(self) -> bool:
        return self.source == "host"

    @property
    def cgroup(self) -> str | None:
        """The container's cgroup directory on this machine, if it is local."""
        return os.path.dirname(self.path) if self.path else None

    @staticmethod
    def _ns(text: str) -> int | None:
        text = text.strip()
        if text.isdigit():
            return int(text)  # cgroup v1 cpuacct.usage: nanoseconds
        for line in text.splitlines():  # cgroup v2 cpu.stat: usage_usec N
            key, _, value = line.partition(" ")
            if key == "usage_usec" and value.strip().isdigit():
                return int(value) * 1000
        return None

    def sample(self) -> Sample:
        if self.path:
            with open(self.path) as f:
                ns = self._ns(f.read())
            if ns is not None:
                return time.monotonic(), ns
            raise LabError(f"cannot parse {self.path}")
        if self.source == "exec":
            before = time.monotonic()
            try:
                done = self.container.exec_run(self.EXEC, stdout=True, stderr=False)
                ns = self._ns(done.output.decode(errors="replace")) if done.exit_code == 0 else None
            except docker.errors.APIError:
                ns = None
            if ns is not None:
                return (before + time.monotonic()) / 2, ns
            self.source = "stats"
        began = time.monotonic()
        try:
            stats = self.container.stats(stream=False, one_shot=True)
        except docker.errors.InvalidVersion:  # an engine before API 1.41 takes two readings, a second apart
            stats = self.container.stats(stream=False)
        usage = (stats.get("cpu_stats") or {}).get("cpu_usage", {}).get("total_usage", 0)
        return (began + time.monotonic()) / 2, int(usage)

    # -- local: a reading every PERIOD, interpolated afterwards --------------------
    def record(self) -> None:
        """Local only: from now until stop(), CPU every PERIOD and the
        processes and memory every SNAPSHOT_PERIOD, each stamped with its
        time, so what happened when is known however late the lab itself
        runs on a machine the server saturates.  Two threads: reading a
        process's smaps_rollup waits for its memory map lock, which a
        forking server holds while it forks, and the CPU readings must not
        wait with it."""
        self.samples = [self.sample()]
        self.snapshots = []

        def cpu() -> None:  # periodic samplers: nothing waits on them
            while not self._stop.wait(self.PERIOD):
                try:
                    self.samples.append(self.sample())
                except (OSError, LabError):
                    return  # the container is gone

        def memory() -> None:
            while not self._stop.wait(self.SNAPSHOT_PERIOD) and self.cgroup:
                began = time.monotonic()
                snap = local_resources(self.cgroup)
                if snap is not None:
                    self.snapshots.append({**snap, "t": began, "took_s": round(time.monotonic() - began, 3)})

        self._threads = [threading.Thread(target=f, daemon=True, name=f"sampler-{f.__name__}")
                         for f in (cpu, memory)]
        for thread in self._threads:
            thread.start()

    def snapshot_near(self, t: float, within: tuple[float, float]) -> dict[str, Any] | None:
        """The snapshot taken nearest to ``t`` inside the window ``within``."""
        inside = [x for x in self.snapshots if within[0] <= x["t"] and x["t"] + x["took_s"] <= within[1]]
        return min(inside, key=lambda x: abs(x["t"] - t), default=None)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        try:
            self.samples.append(self.sample())
        except (OSError, LabError):
            pass

    def gap_at(self, t: float) -> float | None:
        """How far apart the two readings around t are: the precision of at(t)."""
        for (t0, _), (t1, _) in zip(self.samples, self.samples[1:]):
            if t0 <= t <= t1:
                return t1 - t0
        return None

    def at(self, t: float) -> float | None:
        """Cumulative CPU ns at time t, linear between the readings around it."""
        for (t0, c0), (t1, c1) in zip(self.samples, self.samples[1:]):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return None


def server_cpu(spans: list[tuple[Sample, Sample]], rps: float, source: str,
               origin: float | None) -> dict[str, Any]:
    """CPU over the measured spans (pairs of readings): seconds, cores, µs per reply."""
    spans = [(a, b) for a, b in spans if b[0] > a[0]]
    if not spans:
        return {"cpu_s": None, "window_s": None, "cores": None, "us_per_reply": None, "source": source,
                "from_s": None, "to_s": None, "excluded_s": None}
    window = sum(b[0] - a[0] for a, b in spans)
    cpu_s = sum(b[1] - a[1] for a, b in spans) / 1e9
    cores = cpu_s / window
    rel = (lambda t: round(t - origin, 3)) if origin is not None else (lambda t: None)
    return {"cpu_s": round(cpu_s, 4), "window_s": round(window, 4), "cores": round(cores, 4),
            "us_per_reply": round(cores / rps * 1e6, 2) if rps > 0 else None, "source": source,
            "from_s": rel(spans[0][0][0]), "to_s": rel(spans[-1][1][0]),
            "excluded_s": round(spans[-1][1][0] - spans[0][0][0] - window, 3)}


# One exec: every process's status and smaps_rollup, with file names, so the
# probe itself (sh and grep, whose parent is outside the container: PPid 0) can
# be left out.  grep -s: a process that ends meanwhile is silently skipped.
MEMORY_PROBE = ["sh", "-c", "exec grep -s -H -e '^Name:' -e '^PPid:' -e '^Threads:' -e '^VmRSS:' "
                "-e '^Rss:' -e '^Pss:' -e '^Private_Clean:' -e '^Private_Dirty:' "
                "/proc/[0-9]*/status /proc/[0-9]*/smaps_rollup"]


def parse_memory_probe(text: str) -> dict[int, dict[str, Any]]:
    """{pid: {"name", "ppid", "threads", "rss_kib", "pss_kib", "uss_kib", "smaps"}}."""
    procs: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        path, _, rest = line.partition(":")
        key, _, value = rest.partition(":")
        parts = path.split("/")
        if len(parts) != 4 or not parts[2].isdigit():
            continue
        p = procs.setdefault(int(parts[2]), {"smaps": False, "uss_kib": 0})
        value = value.strip()
        number = int(value.split()[0]) if value.split() and value.split()[0].isdigit() else None
        if parts[3] == "status":
            if key == "Name":
                p["name"] = value
            elif key == "PPid" and number is not None:
                p["ppid"] = number
            elif key == "Threads" and number is not None:
                p["threads"] = number
            elif key == "VmRSS" and number is not None:
                p["status_rss_kib"] = number
        elif number is not None:
            p["smaps"] = True
            if key == "Rss":
                p["rss_kib"] = number
            elif key == "Pss":
                p["pss_kib"] = number
            elif key in ("Private_Clean", "Private_Dirty"):
                p["uss_kib"] += number
    return procs


def model_processes(procs: dict[int, dict[str, Any]], roots: set[int] | None = None) -> dict[int, dict[str, Any]]:
    """The model's own processes: descendants of the container's init
    (``roots``; in the container's own pid namespace, pid 1: docker-init),
    which is left out, as is anything `docker exec` started (its parent is
    outside the container)."""
    keep: dict[int, dict[str, Any]] = {}
    frontier = roots if roots is not None else {1}
    while frontier:
        children = {pid for pid, p in procs.items() if p.get("ppid") in frontier and pid not in keep}
        for pid in children:
            keep[pid] = procs[pid]
        frontier = children
    return keep


def model_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """`docker top -eLf` rows (one per thread) of the model's own processes:
    descendants of the container's init, docker-init.  Left out: the init,
    and whatever the engine runs with `exec` (a health check, a probe),
    whose parent is outside the container."""
    parent = {r["PID"]: r["PPID"] for r in rows}
    init = {r["PID"] for r in rows if "docker-init" in r.get("CMD", "").split(" ")[0]}
    if not init:
        return rows

    def under_init(pid: str) -> bool:
        seen = set()
        while pid in parent and pid not in seen:
            seen.add(pid)
            pid = parent[pid]
            if pid in init:
                return True
        return False

    return [r for r in rows if r["PID"] not in init and under_init(r["PID"])]


def _memory(snap: dict[str, Any], procs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Add the memory sums of ``procs`` to a snapshot."""
    read = {pid: p for pid, p in procs.items() if p["smaps"] and "pss_kib" in p}
    if read:  # a process that ended between its two files is left out (and counted)
        snap["memory_source"] = "smaps_rollup"
        snap["pss_kib"] = sum(p["pss_kib"] for p in read.values())
        snap["uss_kib"] = sum(p["uss_kib"] for p in read.values())
        snap["rss_kib"] = sum(p.get("rss_kib", 0) for p in read.values())
    elif procs:
        snap["memory_source"] = "status"
        snap["pss_kib"] = snap["uss_kib"] = None
        snap["rss_kib"] = sum(p.get("status_rss_kib", 0) for p in procs.values())
    if procs:
        snap["proc_processes"] = len(procs)
        snap["proc_threads"] = sum(p.get("threads", 0) for p in procs.values())
        snap["memory_unread"] = len(procs) - len(read) if read else 0
    return snap


def local_resources(cgroup: str) -> dict[str, Any] | None:
    """Processes, threads and memory from this machine's own view of the
    container (the engine is local): its cgroup's process list and each
    process's /proc files.  A few milliseconds, nothing run in the
    container, and no waiting on the engine, which on a machine saturated
    by the server can take longer than a measured window.  None if this
    machine cannot read them (the probe then goes through the engine)."""
    lines: list[str] = []
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            for name in ("status", "smaps_rollup"):
                try:
                    with open(f"/proc/{pid}/{name}") as f:
                        lines += [f"/proc/{pid}/{name}:{line}" for line in f.read().splitlines()]
                except FileNotFoundError:
                    break  # it ended meanwhile
    except (OSError, ValueError):
        return None
    procs = parse_memory_probe("\n".join(lines))
    init = {pid for pid, p in procs.items() if p.get("name") == "docker-init"}
    mine = model_processes(procs, init) if init else procs
    snap = {"processes": len(mine), "threads": sum(p.get("threads", 0) for p in mine.values()),
            "read_by": "host"}
    return _memory(snap, mine)


def resources(container: Container, cgroup: str | None = None) -> dict[str, Any]:
    """Processes, threads and memory (PSS and USS from smaps_rollup; RSS
    from status where that cannot be read): from this machine's /proc when
    the engine is local (``cgroup``: the container's cgroup directory here),
    else through the engine: `docker top -eLf` (one line per thread) and one
    exec of grep over /proc in the container."""
    if cgroup:
        snap = local_resources(cgroup)
        if snap is not None:
            return snap
    snap = {"read_by": "engine"}
    try:
        top = container.top(ps_args="-eLf")
        titles = top.get("Titles") or []
        mine = model_rows([dict(zip(titles, row)) for row in top.get("Processes") or []])
        snap["processes"] = len({r["PID"] for r in mine})
        snap["threads"] = len(mine)
    except (docker.errors.APIError, KeyError) as exc:
        snap["top_error"] = str(exc)
    try:
        done = container.exec_run(MEMORY_PROBE, stdout=True, stderr=False)
        procs = model_processes(parse_memory_probe(done.output.decode(errors="replace")))
    except docker.errors.APIError as exc:
        procs, snap["memory_error"] = {}, str(getattr(exc, "explanation", exc))
    return _memory(snap, procs)


def engine_cpu_model(container: Container) -> str | None:
    """The CPU of the machine the engine runs on (which need not be this one)."""
    try:
        done = container.exec_run(["grep", "-m1", "^model name", "/proc/cpuinfo"])
        return done.output.decode(errors="replace").partition(":")[2].strip() or None
    except docker.errors.APIError:
        return None


def _host_cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def environment(eng: Engine) -> dict[str, Any]:
    version = eng.client.version()
    info = eng.client.info()
    host = host_environment()
    return {
        "host": {"python": host["python"], "platform": host["platform"], "machine": host["machine"],
                 "cpus": host["cpus"], "cpu_model": _host_cpu_model()},
        "engine": {"version": version.get("Version"), "api_version": version.get("ApiVersion"),
                   "client_api_version": eng.client.api.api_version,
                   "kernel": version.get("KernelVersion"), "os": info.get("OperatingSystem"),
                   "arch": version.get("Arch"), "cpus": info.get("NCPU"),
                   "memory_bytes": info.get("MemTotal"), "cgroup_version": info.get("CgroupVersion"),
                   "cpu_model": None},
        "containers": {"python": {}, "swarm_python": None, "image": None, "base_image": config.base_image()},
        "lab_version": __version__,
        "git_commit": git_commit(),
    }


# -- the terminal: progress bars on a TTY, one line per step elsewhere -----------

class Progress:
    def __init__(self, total: int) -> None:
        self.tty = err.is_terminal
        self.total = total
        self.done = 0
        self._bars: Any = None
        if self.tty:
            from rich.progress import (BarColumn, Progress as Bars, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
            self._bars = Bars(TextColumn("{task.description:<34}"), BarColumn(bar_width=30),
                              TextColumn("{task.fields[detail]:>11}"), TimeElapsedColumn(),
                              TimeRemainingColumn(), console=err, transient=False)
            self._all = self._bars.add_task("all models", total=total, detail=f"0/{total}")
            self._step = self._bars.add_task("", total=1.0, visible=False, detail="")

    def __enter__(self) -> "Progress":
        if self._bars:
            self._bars.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bars:
            self._bars.__exit__(*exc)

    def note(self, text: str) -> None:
        if self._bars:
            self._bars.console.print(f"[dim]lab:[/] {escape(text)}", highlight=False)
        else:
            say(text)

    @contextmanager
    def step(self, label: str, seconds: float) -> Iterator[None]:
        """A step of known length: its own bar follows the clock (a UI
        refresh; nothing waits on it)."""
        if not self._bars:
            yield
            self.done += 1
            return
        began = time.monotonic()
        self._bars.reset(self._step, total=seconds, description=f"  {label}", visible=True,
                         detail=f"0.0/{seconds:.1f} s")
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(0.1):
                now = min(seconds, time.monotonic() - began)
                self._bars.update(self._step, completed=now, detail=f"{now:.1f}/{seconds:.1f} s")

        ticker = threading.Thread(target=tick, daemon=True, name="progress")
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            self._bars.update(self._step, visible=False)
        self.done += 1
        self._bars.update(self._all, completed=self.done, detail=f"{self.done}/{self.total}")


# -- one model, one repeat ---------------------------------------------------------

@dataclass
class Plan:
    models: list[str]
    workloads: list[Workload]
    repeat: int
    duration: float | None
    server_commands: dict[str, list[str]] = field(default_factory=dict)

    def measure(self, w: Workload) -> float:
        return self.duration if self.duration is not None else w.measure


def _hold(events: EventStream, seconds: float) -> bool:
    """Let the measured window run for ``seconds`` (the schedule of the
    measurement, not a wait for something to happen); returns True early
    if the swarm finished or its output ended meanwhile."""
    if seconds <= 0:
        return bool(events.matching(lambda e: e["ev"] == "done")) or events.ended
    try:
        events.wait_for(lambda e: e["ev"] == "done", timeout=seconds, what="done events")
        return True
    except TraceTimeout:
        return events.ended


def _discard(live: LiveRun, container: Container, log_name: str) -> None:
    """Keep the container's log in the run directory, then remove it."""
    try:
        live.dir.write_log(log_name, container.logs(stdout=True, stderr=True))
    except docker.errors.APIError:
        pass
    for service, c in list(live.containers.items()):
        if c.id == container.id:
            del live.containers[service]
    live.engine.remove(RunResources(live.id, containers=[container]))


def _trim_swarm(doc: dict[str, Any], keep_timeline: bool) -> dict[str, Any]:
    """What the report needs of the swarm's results.json (iolab.swarm/1)."""
    kept = {k: doc.get(k) for k in ("schema", "ok", "exit_code", "failures", "warnings", "config",
                                    "started", "ended", "duration_s", "warmup_s", "measure_window_s",
                                    "summary", "cpu")}
    env = doc.get("environment") or {}
    kept["environment"] = {k: env.get(k) for k in ("python", "implementation", "cpu_count", "cpu_affinity")}
    if keep_timeline:
        kept["timeline"] = doc.get("timeline")
    return kept


def replies_per_client(doc: dict[str, Any]) -> list[int]:
    per: dict[int, int] = {}
    for rec in doc.get("connections") or []:
        per[rec["client"]] = per.get(rec["client"], 0) + int(rec.get("replies") or 0)
    return [per[c] for c in sorted(per)]


def run_workload(live: LiveRun, plan: Plan, model: str, rep: int, server: Container,
                 w: Workload) -> dict[str, Any]:
    measure = plan.measure(w)
    tag = f"{model}-r{rep}-{w.name}"
    flags = dict(w.flags, target=f"{model}:12345", warmup=w.warmup, duration=round(w.warmup + measure, 3),
                 trace=SERVER_TRACE, out=f"/results/{tag}")
    command = swarm_command(live.topology.service("swarm").spec["command"], **flags)
    record: dict[str, Any] = {"swarm_command": command, "error": None}
    meter = CpuMeter(server)
    swarm = live.start("swarm", command=command)
    bound = START_TIMEOUT + w.warmup + measure + w.wait_extra
    if meter.local:
        meter.record()
        try:
            record["swarm_exit_code"] = _wait(swarm, bound, tag)
        finally:
            meter.stop()
    else:
        first, last, record["load"] = _scheduled(meter, swarm, server, w, measure, tag)
        record["swarm_exit_code"] = _wait(swarm, bound, tag)
    raw = live.read_file("swarm", f"/results/{tag}/results.json")
    _discard(live, swarm, f"swarm.{tag}")
    if raw is None:
        raise LabError(f"the swarm for {tag} exited ({record.get('swarm_exit_code')}) without results.json")
    doc = json.loads(raw)
    record["swarm"] = _trim_swarm(doc, keep_timeline=w.kind == "timeline")
    record["replies_per_client"] = replies_per_client(doc)
    summary = doc.get("summary") or {}
    rps = float(summary.get("replies_per_s") or 0.0) if summary.get("replies_measured") else 0.0
    t0 = (doc.get("started") or {}).get("monotonic")
    if meter.local and t0 is not None:
        # the swarm's own measured window, on its own clock (the engine's
        # host is this machine): CPU interpolated at its ends, and the
        # snapshot nearest its middle
        start_t = t0 + float(doc.get("warmup_s") or 0.0)
        end_t = float((doc.get("ended") or {}).get("monotonic") or start_t)
        a, b = meter.at(start_t), meter.at(end_t)
        spans = [((start_t, int(a)), (end_t, int(b)))] if a is not None and b is not None else []
        snap = meter.snapshot_near(start_t + (end_t - start_t) * PROBE_AT, (start_t, end_t))
        if snap is not None:
            snap = {**{k: v for k, v in snap.items() if k != "t"}, "at_s": round(snap["t"] - t0, 3),
                    "late": False}
        record["load"] = snap
    else:
        spans = [(first, last)] if first and last else []
    record["server_cpu"] = server_cpu(spans, rps, meter.source, t0 if meter.local else None)
    if meter.local and spans:
        gaps = [meter.gap_at(t) for t in (spans[0][0][0], spans[-1][1][0])]
        # readings are 50 ms apart, unless the lab itself was kept off the CPU
        record["server_cpu"]["resolution_s"] = round(max(g for g in gaps if g is not None), 3)
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


def _scheduled(meter: CpuMeter, swarm: Container, server: Container, w: Workload, measure: float,
               tag: str) -> tuple[Sample | None, Sample | None, dict[str, Any] | None]:
    """For a remote engine: readings on the lab's own clock, from the moment
    the swarm's start event arrives: CPU at the end of the warm-up and half-way
    through the measured time, then the processes and memory (whose exec
    would otherwise be counted).  Returns (first, last, snapshot)."""
    events = EventStream(swarm, name=f"swarm ({tag})")
    try:
        events.wait_for(lambda e: e["ev"] == "start", timeout=START_TIMEOUT, what="start events")
        began = time.monotonic()
        ended = _hold(events, began + w.warmup - time.monotonic())
        first = meter.sample()
        ended = _hold(events, began + w.warmup + measure * PROBE_AT - time.monotonic()) or ended
        last = meter.sample()
        if ended:
            return first, last, None
        probe = time.monotonic()
        snap = resources(server)
        snap.update(at_s=round(probe - began, 3), took_s=round(time.monotonic() - probe, 3),
                    # the lab can run late: a snapshot that ends after the clients did is not under load
                    late=bool(events.matching(lambda e: e["ev"] == "done")) or events.ended)
        return first, last, snap
    finally:
        events.close()


def measure_model(live: LiveRun, plan: Plan, model: str, rep: int, ui: Progress,
                  env: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"repeat": rep, "error": None, "workloads": {}}
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
        record["server_start"] = {k: start.get(k) for k in ("python", "backlog", "somaxconn", "nofile",
                                                              "nofile_hard", "workers", "trace", "pid")}
        if env["engine"]["cpu_model"] is None:
            env["engine"]["cpu_model"] = engine_cpu_model(server)
        record["idle"] = resources(server, CpuMeter(server).cgroup)
        for w in plan.workloads:
            with ui.step(f"{model} {rep}/{plan.repeat} {w.name}", w.warmup + plan.measure(w) + 1.0):
                try:
                    got = run_workload(live, plan, model, rep, server, w)
                except (LabError, TraceTimeout, docker.errors.APIError) as exc:
                    got = {"error": str(getattr(exc, "explanation", None) or exc)}
                    live.containers.pop("swarm", None)
                    for c in live.resources().containers:  # a stuck swarm goes now, not at the end
                        if c.name.endswith("-swarm"):
                            _discard(live, c, f"swarm.{model}-r{rep}-{w.name}")
            record["workloads"][w.name] = got
            ui.note(one_line(model, rep, w, got))
    except (LabError, TraceTimeout, docker.errors.APIError) as exc:
        record["error"] = str(getattr(exc, "explanation", None) or exc)
        ui.note(f"{model} {rep}/{plan.repeat}: FAILED: {exc}")
    finally:
        _discard(live, server, f"{model}.r{rep}")
    return record


def one_line(model: str, rep: int, w: Workload, got: dict[str, Any]) -> str:
    head = f"{model} {rep} {w.name}:"
    if got.get("swarm") is None:
        return f"{head} FAILED: {got.get('error')}"
    s = got["swarm"]["summary"]
    lat = s["latency"]
    cpu = got["server_cpu"]
    text = f"{head} {s['replies_per_s']:,.0f} replies/s"
    if lat["count"]:
        text += f", p50 {lat['p50_us'] / 1000:.2f} ms, p99 {lat['p99_us'] / 1000:.2f} ms"
    if s["unanswered"]:
        text += f", {s['unanswered']:,} unanswered"
    if cpu["cores"] is not None:
        text += f", server {cpu['cores']:.2f} cores"
    text += f", swarm {got['swarm']['cpu']['per_s']:.2f} cores"
    if got.get("error"):
        text += f"; FAILED: {got['error']}"
    return text


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
    planned = (sum(w.warmup + plan.measure(w) + 1.3 for w in workloads) + 1.5) * len(chosen) * args.repeat
    eng = engine()
    say(f"comparing {_n(len(chosen), 'model')} x {_n(args.repeat, 'repeat')} x "
        f"{_n(len(workloads), 'workload')} ({', '.join(w.name for w in workloads)}): "
        f"about {planned / 60:.1f} min")
    what = chosen[0] if len(chosen) == 1 else f"{len(chosen)}-models"
    with LiveRun(eng, "compare", what, say=say, params=params, topology=topology) as live:
        image = live.ensure_image()
        doc = new_results(live, eng, plan, params, topology)
        doc["environment"]["containers"]["image"] = image
        began = time.monotonic()
        with Progress(len(chosen) * args.repeat * len(workloads)) as ui:
            for name in chosen:
                entry = doc["models"][name] = {
                    "summary": catalogue[name].summary, "expect": catalogue[name].expect,
                    "server_command": plan.server_commands[name], "repeats": []}
                for rep in range(1, args.repeat + 1):
                    entry["repeats"].append(measure_model(live, plan, name, rep, ui, doc["environment"]))
                    note_repeat(doc, name, entry["repeats"][-1])
        doc["run"]["measured_s"] = round(time.monotonic() - began, 1)
        doc["run"]["ended_wall"] = round(time.time(), 3)
        live.dir.write_json("results.json", doc)
        from ..report import render_run
        for rel, content in render_run(live.dir.path).items():
            live.dir.write_bytes(rel, content)
    print_summary(live.dir.path, doc["run"]["measured_s"])
    for line in doc["errors"]:
        say(f"problem: {line}")
    return EXIT_FAILED if doc["errors"] else 0


def new_results(live: LiveRun, eng: Engine, plan: Plan, params: dict[str, Any],
                topology: compose.Topology) -> dict[str, Any]:
    """results.json before anything is measured (lab/report/SCHEMA.md)."""
    return {
        "schema": SCHEMA,
        "run": {"id": live.id, "started_wall": round(time.time(), 3)},
        "params": {**params, "argv": ["lab", *sys.argv[1:]], "server_trace": SERVER_TRACE,
                   "server_commands": plan.server_commands,
                   "swarm_base_command": list(topology.service("swarm").spec["command"])},
        "environment": environment(eng),
        "workloads": [workload_doc(w, plan) for w in plan.workloads],
        "models": {},
        "errors": [],
    }


def note_repeat(doc: dict[str, Any], model: str, got: dict[str, Any]) -> None:
    """Collect a repeat's Python versions and its problems into the results."""
    containers = doc["environment"]["containers"]
    if got.get("server_start"):
        containers["python"][model] = got["server_start"].get("python")
    for wname, w in got["workloads"].items():
        if w.get("swarm"):
            containers["swarm_python"] = w["swarm"]["environment"].get("python")
        if w.get("error"):
            doc["errors"].append(f"{model} repeat {got['repeat']} {wname}: {w['error']}")
    if got.get("error"):
        doc["errors"].append(f"{model} repeat {got['repeat']}: {got['error']}")


def print_summary(run_dir: Any, seconds: float) -> None:
    from ..report import load, tables

    summary = tables.rich_table(tables.summary(load(run_dir)))
    narrow = out.width
    if not out.is_terminal:  # a pipe or a file counts as 80 columns: never squeeze the table there
        out.width = max(narrow, Measurement.get(out, out.options.update(width=1000), summary).maximum)
    try:
        out.print(summary)
    finally:
        out.width = narrow
    out.print(f"report: {run_dir / 'report.html'} (also report.md, results.json, results.csv) "
              f"after {seconds:.0f} s")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def workload_doc(w: Workload, plan: Plan) -> dict[str, Any]:
    return {"name": w.name, "title": w.title, "kind": w.kind, "about": w.about, "flags": w.flags,
            "warmup_s": w.warmup, "measure_s": plan.measure(w)}
