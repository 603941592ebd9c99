"""The model's processes: their memory and threads, the process table, the listen queue.

    snap = resources(unit, cgroup.procs_dir)     # PSS, USS, RSS, processes, threads
    table = top(unit)                            # `docker top -eLf`: threads per process
    queue = listen_queue(unit, cgroup.procs_dir) # the listen queue's overflow counters

The model's processes are the descendants of the container's init
(docker-init, pid 1 inside): neither the init nor anything the engine
`exec`s (a probe, a health check, whose parent is outside the container) is
ever counted as the model's.  Each figure is read from this machine's /proc
when the engine is local, else through the engine.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..engine import EngineError, Unit


KIB = 1024


# One exec: every process's status and smaps_rollup, with file names, so the
# probe itself (sh and grep, whose parent is outside the container: PPid 0)
# can be left out.  grep -s: a process that ends meanwhile is silently skipped.
MEMORY_PROBE = ["sh", "-c", "exec grep -s -H -e '^Name:' -e '^PPid:' -e '^Threads:' -e '^VmRSS:' "
                "-e '^Rss:' -e '^Pss:' -e '^Private_Clean:' -e '^Private_Dirty:' "
                "/proc/[0-9]*/status /proc/[0-9]*/smaps_rollup"]


def path_lines(text: str, depth: int) -> Iterator[tuple[list[str], str, str]]:
    """(the path's parts, key, value) of each ``PATH:Key: value`` line (grep -H's)
    whose path has ``depth`` parts and a number before its file name: the
    process's (/proc/<pid>/status) or the task's (/proc/<pid>/task/<tid>/status)."""
    for line in text.splitlines():
        path, _, rest = line.partition(":")
        key, _, value = rest.partition(":")
        parts = path.split("/")
        if len(parts) == depth and parts[depth - 2].isdigit():
            yield parts, key.strip(), value.strip()


def parse_memory_probe(text: str) -> dict[int, dict[str, Any]]:
    """{pid: {"name", "ppid", "threads", "rss_kib", "pss_kib", "uss_kib", "smaps"}}
    from /proc/<pid>/status and smaps_rollup lines prefixed by their path."""
    procs: dict[int, dict[str, Any]] = {}
    for parts, key, value in path_lines(text, 4):
        p = procs.setdefault(int(parts[2]), {"smaps": False, "uss_kib": 0})
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


def proc_files(procs_dir: str, names: tuple[str, ...]) -> str | None:
    """``/proc/<pid>/<name>:<line>`` for each of the cgroup's processes and
    each of ``names`` (what parse_memory_probe reads); None if this machine
    cannot read the cgroup's process list.  A process that ended meanwhile
    is left out."""
    lines: list[str] = []
    try:
        with open(os.path.join(procs_dir, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            for name in names:
                try:
                    with open(f"/proc/{pid}/{name}") as f:
                        lines += [f"/proc/{pid}/{name}:{line}" for line in f.read().splitlines()]
                except FileNotFoundError:
                    break  # it ended meanwhile
    except (OSError, ValueError):
        return None
    return "\n".join(lines)


def local_resources(procs_dir: str) -> dict[str, Any] | None:
    """Processes, threads and memory from this machine's own view of the
    container (the engine is local): its cgroup's process list and each
    process's /proc files.  A few milliseconds, nothing run in the
    container, and no waiting on the engine, which on a machine saturated
    by the server can take longer than a measured window.  None if this
    machine may not read them (smaps_rollup needs the right to trace the
    process: root, or the same user)."""
    text = proc_files(procs_dir, ("status", "smaps_rollup"))
    if text is None:
        return None
    procs = parse_memory_probe(text)
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


def task_files(pids: list[str], names: tuple[str, ...], prefix: str = "/proc") -> Iterator[tuple[str, list[str]]]:
    """(``<prefix>/<pid>/task/<tid>``, the text of each of ``names`` there) for
    every task of ``pids``; a task or process that ended meanwhile is left out."""
    for pid in pids:
        try:
            tids = os.listdir(f"{prefix}/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            base = f"{prefix}/{pid}/task/{tid}"
            try:
                texts = []
                for name in names:
                    with open(f"{base}/{name}") as f:
                        texts.append(f.read())
            except OSError:
                continue
            yield base, texts


def local_tasks(procs_dir: str) -> Sample | None:
    """The model's processes and threads from this machine's /proc (the
    engine is local): each process's status file only, a millisecond, with
    nothing run in the container or asked of the engine.  None if this
    machine cannot read them."""
    text = proc_files(procs_dir, ("status",))
    if text is None:
        return None
    procs = parse_memory_probe(text)
    init = {pid for pid, p in procs.items() if p.get("name") == "docker-init"}
    mine = model_processes(procs, init) if init else procs
    per_process = {pid: int(p.get("threads", 0)) for pid, p in sorted(mine.items())}
    main = min(per_process) if per_process else 0
    return Sample(time.monotonic(), len(per_process), per_process.get(main, 0), per_process)


def tasks(unit: Unit, procs_dir: str | None = None) -> Sample:
    """The model's processes and threads now: this machine's /proc when the
    engine is local (``procs_dir``: Cgroup.procs_dir), else `top`."""
    if procs_dir:
        found = local_tasks(procs_dir)
        if found is not None:
            return found
    return top(unit)


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
