"""Reading a server container from the outside: CPU, memory, processes and threads.

Every figure the lab reports about a server (`lab check`, `lab run`, `lab
compare`) is read here, one way each, whoever asks:

    cgroup = Cgroup(unit)               # how this machine can reach its cgroup
    cpu = cgroup.read()                 # Cpu(t, cpu_s, memory): CPU time and memory so far
    snap = resources(unit, cgroup.procs_dir)   # the model's processes: PSS, USS, RSS, threads
    table = top(unit)                   # `docker top -eLf`: threads per process, the model's only
    queue = listen_queue(unit, cgroup.procs_dir)  # the listen queue's overflow counters

``unit`` is a lab.engine.Unit: a container, or a Swarm service's task.  This
module parses and does the arithmetic; the unit says where the figures are
(its cgroup on this machine, an exec inside it, the engine's stats and top).

Over a swarm's run: Sampler(cgroup) reads in the background (local engines:
CPU every 50 ms, the processes every 0.25 s) and answers afterwards for the
swarm's own measured window, interpolated; scheduled() reads a remote engine
at set points instead.  environment() describes the machines a run used.

Where a reading comes from, best first:

    host    the unit runs on this machine: its own cgroup files and its
            processes' /proc files, read here.  A few milliseconds,
            nothing runs in the container (so nothing is charged to it), and
            stamped on CLOCK_MONOTONIC, the clock the containers' events use.
    exec    another machine: one short `docker exec` (cat or grep, never a
            Python start-up) per reading; the exec's own processes are left
            out of every count, its few ms of CPU are not.
    stats   the engine's stats API, when neither works: free for the
            container, but a reading can take a second, so it is dated by
            the engine's own stamp.

The model's processes are the descendants of the container's init
(docker-init, pid 1 inside): neither the init nor anything the engine
`exec`s (a probe, a health check, whose parent is outside the container) is
ever counted as the model's.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import __version__, config
from ..engine import Engine, EngineError, Unit
from ..engine.base import CPU_FILES, MEMORY_FILES
from ..errors import LabError
from ..run.rundir import git_commit, host_environment
from .events import EventStream, TraceTimeout

KIB = 1024


# -- the cgroup: CPU time and memory ----------------------------------------------

@dataclass(frozen=True)
class Cpu:
    """One reading of a container's cgroup counters."""

    t: float  # CLOCK_MONOTONIC seconds when it was read (this machine's: the containers' when local)
    cpu_s: float  # CPU time the cgroup has used so far
    memory: int | None = None  # bytes charged to the cgroup: the processes' pages plus the
    #                            kernel's own for them (socket buffers, page cache)
    source: str = "host"  # host | exec | stats


# Inside the container its own cgroup is mounted at /sys/fs/cgroup: one grep
# prints every file that exists, each line prefixed by its path (-s: the
# others are silently skipped).
CGROUP_EXEC = ["grep", "-s", "-H", "", "/sys/fs/cgroup/cpuacct/cpuacct.usage",
               "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpu.stat",
               "/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory.current"]


def cgroup_values(files: dict[str, str]) -> tuple[int | None, int | None]:
    """(CPU nanoseconds, memory bytes) from cgroup files by name, v1 or v2."""
    cpu = memory = None
    for name, text in files.items():
        text = text.strip()
        if name == "cpuacct.usage" and text.isdigit():
            cpu = int(text)
        elif name == "cpu.stat":
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec" and value.strip().isdigit():
                    cpu = int(value) * 1000
        elif name in MEMORY_FILES and text.isdigit():
            memory = int(text)
    return cpu, memory


def grep_files(text: str) -> dict[str, str]:
    """`grep -H` output (path:line) back into {file name: its text}."""
    files: dict[str, list[str]] = {}
    for line in text.splitlines():
        path, _, rest = line.partition(":")
        files.setdefault(os.path.basename(path), []).append(rest)
    return {name: "\n".join(lines) for name, lines in files.items()}


class Cgroup:
    """A unit's cgroup, read the best way this machine can (see the module's
    docstring): its files here when the unit runs on this machine, else
    `grep` of them inside the unit, else the engine's stats."""

    def __init__(self, unit: Unit) -> None:
        self.unit = unit
        dirs = unit.host_cgroup()
        self.cpu_dir = dirs.cpu_dir if dirs else None
        self.memory_dir = dirs.memory_dir if dirs else None
        self.source = "host" if self.cpu_dir else "exec"

    @property
    def local(self) -> bool:
        return self.source == "host"

    @property
    def procs_dir(self) -> str | None:
        """The directory whose cgroup.procs lists the container's processes, if local."""
        return self.cpu_dir

    def read(self) -> Cpu:
        """The counters now.  Raises OSError or LabError if the container is gone."""
        if self.source == "host":
            return self._host()
        if self.source == "exec":
            reading = self._exec()
            if reading is not None:
                return reading
            self.source = "stats"  # no grep, or no cgroup mounted inside: do not try again
        return self._stats()

    def _host(self) -> Cpu:
        files = {}
        for folder, names in ((self.cpu_dir, CPU_FILES), (self.memory_dir, MEMORY_FILES)):
            for name in names if folder else ():
                path = os.path.join(folder, name)
                if os.path.exists(path):
                    with open(path) as f:
                        files[name] = f.read()
        t = time.monotonic()
        ns, memory = cgroup_values(files)
        if ns is None:
            raise LabError(f"cannot read the CPU time in {self.cpu_dir}")
        return Cpu(t, ns / 1e9, memory, "host")

    def _exec(self) -> Cpu | None:
        before = time.monotonic()
        try:
            done = self.unit.exec(CGROUP_EXEC, stderr=False)
        except EngineError:
            return None
        ns, memory = cgroup_values(grep_files(done.output.decode(errors="replace")))
        # the middle of the exec: the reading was made somewhere inside it
        return Cpu((before + time.monotonic()) / 2, ns / 1e9, memory, "exec") if ns is not None else None

    def _stats(self) -> Cpu:
        began = time.monotonic()
        stats = self.unit.stats()
        ended = time.monotonic()
        usage = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if not isinstance(usage, (int, float)):  # a missing figure is not zero CPU
            raise LabError(f"the engine's stats for {getattr(self.unit, 'name', 'a unit')} "
                           "have no CPU figure")
        return Cpu(engine_stamp(stats.get("read", ""), began, ended), usage / 1e9,
                   (stats.get("memory_stats") or {}).get("usage"), "stats")


def engine_stamp(read: str, began: float, ended: float) -> float:
    """The engine's own stamp of a stats reading (RFC 3339, wall clock) on
    our monotonic clock, kept inside the call that fetched it: the reading
    was made then, whatever the two machines' clocks say."""
    try:
        wall = datetime.fromisoformat(read[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return (began + ended) / 2
    return min(max(wall - (time.time() - time.monotonic()), began), ended)


def server_cpu(spans: list[tuple[Cpu, Cpu]], rps: float, source: str,
               origin: float | None) -> dict[str, Any]:
    """CPU over measured spans (pairs of readings): seconds, cores, µs per
    reply, and the window in seconds after ``origin`` (the swarm's start)."""
    spans = [(a, b) for a, b in spans if b.t > a.t]
    if not spans:
        return {"cpu_s": None, "window_s": None, "cores": None, "us_per_reply": None, "source": source,
                "from_s": None, "to_s": None, "excluded_s": None}
    window = sum(b.t - a.t for a, b in spans)
    cpu_s = sum(b.cpu_s - a.cpu_s for a, b in spans)
    cores = cpu_s / window
    rel = (lambda t: round(t - origin, 3)) if origin is not None else (lambda t: None)
    return {"cpu_s": round(cpu_s, 4), "window_s": round(window, 4), "cores": round(cores, 4),
            "us_per_reply": round(cores / rps * 1e6, 2) if rps > 0 else None, "source": source,
            "from_s": rel(spans[0][0].t), "to_s": rel(spans[-1][1].t),
            "excluded_s": round(spans[-1][1].t - spans[0][0].t - window, 3)}


class Sampler:
    """Local engines only: from start() to stop(), the cgroup's CPU every
    PERIOD and the model's processes and memory every SNAPSHOT_PERIOD, each
    stamped with its time, so what happened when is known however late the
    lab itself runs on a machine the server saturates (on a 2-core machine,
    under a forking server, the lab's threads can miss a second).  Two
    threads: reading a process's smaps_rollup waits for its memory map lock,
    which a forking server holds while it forks, and the CPU readings must
    not wait with it."""

    PERIOD = 0.05
    SNAPSHOT_PERIOD = 0.25

    def __init__(self, cgroup: Cgroup) -> None:
        self.cgroup = cgroup
        self.readings: list[Cpu] = []
        self.snapshots: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.readings = [self.cgroup.read()]
        self.snapshots = []

        def cpu() -> None:
            while not self._stop.wait(self.PERIOD):
                try:
                    self.readings.append(self.cgroup.read())
                except (OSError, LabError):
                    return  # the container is gone

        def memory() -> None:
            while not self._stop.wait(self.SNAPSHOT_PERIOD) and self.cgroup.procs_dir:
                began = time.monotonic()
                snap = local_resources(self.cgroup.procs_dir)
                if snap is not None:
                    self.snapshots.append({**snap, "t": began, "took_s": round(time.monotonic() - began, 3)})

        self._threads = [threading.Thread(target=f, daemon=True, name=f"sampler-{f.__name__}")
                         for f in (cpu, memory)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        try:
            self.readings.append(self.cgroup.read())
        except (OSError, LabError):
            pass

    def at(self, t: float) -> float | None:
        """CPU seconds used by time t, linear between the readings around it."""
        for a, b in zip(self.readings, self.readings[1:]):
            if a.t <= t <= b.t:
                return a.cpu_s + (b.cpu_s - a.cpu_s) * ((t - a.t) / (b.t - a.t) if b.t > a.t else 0.0)
        return None

    def gap_at(self, t: float) -> float | None:
        """How far apart the two readings around t are: the precision of at(t)."""
        for a, b in zip(self.readings, self.readings[1:]):
            if a.t <= t <= b.t:
                return b.t - a.t
        return None

    def snapshot_near(self, t: float, within: tuple[float, float]) -> dict[str, Any] | None:
        """The snapshot taken nearest to ``t`` that lies wholly inside ``within``."""
        inside = [x for x in self.snapshots if within[0] <= x["t"] and x["t"] + x["took_s"] <= within[1]]
        return min(inside, key=lambda x: abs(x["t"] - t), default=None)

    def window(self, start: float, end: float, snapshot_at: float, origin: float) -> tuple[
            list[tuple[Cpu, Cpu]], dict[str, Any] | None, float | None]:
        """A measured window after the fact: the CPU interpolated at its
        ends (as one span), the snapshot nearest ``snapshot_at`` of the way
        through it (``at_s``: seconds after ``origin``), and how far apart
        the readings around its ends were (PERIOD, unless the lab itself
        was kept off the CPU)."""
        a, b = self.at(start), self.at(end)
        spans = [(Cpu(start, a), Cpu(end, b))] if a is not None and b is not None else []
        snap = self.snapshot_near(start + (end - start) * snapshot_at, (start, end))
        if snap is not None:
            snap = {**{k: v for k, v in snap.items() if k != "t"}, "at_s": round(snap["t"] - origin, 3),
                    "late": False}
        gaps = [g for g in (self.gap_at(start), self.gap_at(end)) if g is not None]
        return spans, snap, round(max(gaps), 3) if spans and gaps else None


def scheduled(cgroup: Cgroup, server: Unit, swarm: Unit, name: str, warmup: float,
              measured: float, snapshot_at: float, start_timeout: float) -> tuple[
                  Cpu | None, Cpu | None, dict[str, Any] | None]:
    """For a remote engine, where nothing can be read after the fact:
    readings on the lab's own clock, from the moment the swarm's start event
    arrives: CPU at the end of the warm-up and ``snapshot_at`` of the way
    through the measured time, then the processes and memory (after the
    second CPU reading, so their exec is not counted).  Returns (first,
    last, snapshot); the snapshot is None if the swarm ended first."""
    events = EventStream(swarm, name=name)
    try:
        events.wait_for(lambda e: e["ev"] == "start", timeout=start_timeout, what="start events")
        began = time.monotonic()
        ended = _hold(events, began + warmup - time.monotonic())
        first = cgroup.read()
        ended = _hold(events, began + warmup + measured * snapshot_at - time.monotonic()) or ended
        last = cgroup.read()
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


def _hold(events: EventStream, seconds: float) -> bool:
    """Let the measured window run for ``seconds`` (the schedule of the
    measurement, not a wait for something to happen); True early if the
    swarm finished or its output ended meanwhile."""
    if seconds <= 0:
        return bool(events.matching(lambda e: e["ev"] == "done")) or events.ended
    try:
        events.wait_for(lambda e: e["ev"] == "done", timeout=seconds, what="done events")
        return True
    except TraceTimeout:
        return events.ended


# -- the model's processes: memory and threads -------------------------------------

# One exec: every process's status and smaps_rollup, with file names, so the
# probe itself (sh and grep, whose parent is outside the container: PPid 0)
# can be left out.  grep -s: a process that ends meanwhile is silently skipped.
MEMORY_PROBE = ["sh", "-c", "exec grep -s -H -e '^Name:' -e '^PPid:' -e '^Threads:' -e '^VmRSS:' "
                "-e '^Rss:' -e '^Pss:' -e '^Private_Clean:' -e '^Private_Dirty:' "
                "/proc/[0-9]*/status /proc/[0-9]*/smaps_rollup"]


def parse_memory_probe(text: str) -> dict[int, dict[str, Any]]:
    """{pid: {"name", "ppid", "threads", "rss_kib", "pss_kib", "uss_kib", "smaps"}}
    from /proc/<pid>/status and smaps_rollup lines prefixed by their path."""
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
            elif number is not None and key in ("PPid", "Threads", "VmRSS"):
                p[{"PPid": "ppid", "Threads": "threads", "VmRSS": "status_rss_kib"}[key]] = number
        elif number is not None:
            p["smaps"] = True
            if key in ("Rss", "Pss"):
                p[f"{key.lower()}_kib"] = number
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


def summarise(snap: dict[str, Any], procs: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Add the memory sums and counts of ``procs`` (the model's) to a snapshot."""
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


def local_resources(procs_dir: str) -> dict[str, Any] | None:
    """Processes, threads and memory from this machine's own view of the
    container (the engine is local): its cgroup's process list and each
    process's /proc files.  A few milliseconds, nothing run in the
    container, and no waiting on the engine, which on a machine saturated
    by the server can take longer than a measured window.  None if this
    machine may not read them (smaps_rollup needs the right to trace the
    process: root, or the same user)."""
    lines: list[str] = []
    try:
        with open(os.path.join(procs_dir, "cgroup.procs")) as f:
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
    return summarise(snap, mine)


def resources(unit: Unit, procs_dir: str | None = None) -> dict[str, Any]:
    """The model's processes, threads and memory now (results.json's
    resource snapshot, lab/report/SCHEMA.md): read on this machine when the
    engine is local (``procs_dir``: Cgroup.procs_dir), else through the
    engine, `docker top -eLf` and one exec of grep over /proc."""
    if procs_dir:
        snap = local_resources(procs_dir)
        if snap is not None:
            return snap
    snap: dict[str, Any] = {"read_by": "engine"}
    try:
        table = top(unit)
        snap["processes"], snap["threads"] = table.processes, table.total_threads
    except (EngineError, KeyError, ValueError) as exc:
        snap["top_error"] = str(exc)
    try:
        done = unit.exec(MEMORY_PROBE, stderr=False)
        procs = model_processes(parse_memory_probe(done.output.decode(errors="replace")))
    except EngineError as exc:
        procs, snap["memory_error"] = {}, str(exc)
    return summarise(snap, procs)


def in_bytes(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot as the checks read it: PSS, USS and RSS in bytes, with the
    counts of processes and threads; {"error": why} without PSS."""
    if snap.get("pss_kib") is None:
        return {"error": snap.get("memory_error") or f"no smaps_rollup ({snap.get('memory_source')})"}
    return {"pss": snap["pss_kib"] * KIB, "uss": snap["uss_kib"] * KIB, "rss": snap["rss_kib"] * KIB,
            "processes": snap.get("proc_processes", snap.get("processes")),
            "threads": snap.get("proc_threads", snap.get("threads"))}


# -- the process table: `docker top -eLf` -------------------------------------------

@dataclass
class Sample:
    """The model's process table at one moment (`top`: fast, ~20 ms)."""

    t: float  # CLOCK_MONOTONIC when it was taken
    processes: int  # the model's processes (docker-init and execs excluded)
    threads: int  # threads of the main (oldest) process
    per_process: dict[int, int] = field(default_factory=dict)  # pid -> threads

    @property
    def total_threads(self) -> int:
        return sum(self.per_process.values())


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


def table_sample(titles: list[str], processes: list[list[str]], t: float) -> Sample:
    """A Sample from `top`'s answer: threads counted per process (the
    classic `ps huH p PID | wc -l`)."""
    per_process: dict[int, int] = {}
    for row in model_rows([dict(zip(titles, r)) for r in processes]):
        pid = int(row["PID"])
        per_process[pid] = per_process.get(pid, 0) + 1
    main = min(per_process) if per_process else 0
    return Sample(t, len(per_process), per_process.get(main, 0), per_process)


def top(unit: Unit) -> Sample:
    """The model's processes and threads now (ps -eLf on the unit's machine)."""
    answer = unit.top()
    return table_sample(answer.get("Titles") or [], answer.get("Processes") or [], time.monotonic())


# -- the listen queue ---------------------------------------------------------------

LISTEN_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPBacklogDrop")


def parse_netstat(text: str) -> dict[str, int]:
    """The listen queue's overflow counters from /proc/net/netstat."""
    lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    if len(lines) < 2:
        return {}
    table = dict(zip(lines[0][1:], lines[1][1:]))
    return {k: int(table[k]) for k in LISTEN_COUNTERS if k in table}


def listen_queue(unit: Unit, procs_dir: str | None = None) -> dict[str, int]:
    """The overflow counters of the server's network namespace: through a
    process of the unit on this machine when local, else by exec."""
    if procs_dir:
        try:
            with open(os.path.join(procs_dir, "cgroup.procs")) as f:
                pid = f.read().split()[0]
            with open(f"/proc/{pid}/net/netstat") as f:
                return parse_netstat(f.read())
        except (OSError, IndexError):
            pass
    code, output = unit.exec(["cat", "/proc/net/netstat"])
    return parse_netstat(output.decode(errors="replace")) if code == 0 else {}


# -- the environment a run was measured in -------------------------------------------

def engine_cpu_model(unit: Unit) -> str | None:
    """The CPU of the machine the unit runs on (which need not be this one)."""
    try:
        done = unit.exec(["grep", "-m1", "^model name", "/proc/cpuinfo"])
        return done.output.decode(errors="replace").partition(":")[2].strip() or None
    except EngineError:
        return None


def host_cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return None


def environment(eng: Engine) -> dict[str, Any]:
    """This machine, the engine and the lab (results.json's `environment`);
    the containers' part is filled in as they start."""
    host = host_environment()
    return {
        "host": {"python": host["python"], "platform": host["platform"], "machine": host["machine"],
                 "cpus": host["cpus"], "cpu_model": host_cpu_model()},
        "engine": eng.describe(),
        "containers": {"python": {}, "swarm_python": None, "image": None, "base_image": config.base_image()},
        "lab_version": __version__,
        "git_commit": git_commit(),
    }
