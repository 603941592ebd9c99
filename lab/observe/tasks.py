"""A server's tasks (its processes' threads), read while classify holds connections.

    source = tasks.of_unit(unit) or tasks.of_pid(pid)   # where to read, or None
    with tasks.Sampler(source) as taken:                 # every EVERY seconds, stamped
        ...                                              # the hold probe runs
    table = taken[-1].tasks                              # {(pid, tid): Task}

Three places to read from, the best the engine allows:

    a container on this machine   its cgroup's process list, then /proc here
                                  (a few milliseconds, nothing runs inside it)
    a container elsewhere         one exec of sh over /proc inside it
    a process on this host        /proc of the pid and its descendants

Each Task carries its CPU ticks and its voluntary context switches: a thread
blocked in a read that is woken by bytes, reads them and blocks again gains
one.  So the tasks whose count grew while the probe sent half a request on
every held connection are the ones that READ those connections: a thread or
process per connection, a pool's busy workers, or an event loop's one thread.
A container's own init (docker-init) and what an exec started are never the
server's (see own_tasks).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..engine import EngineError, Unit
from ..measure import procs
from ..measure.cgroup import Cgroup

EVERY = 0.05  # seconds between readings: several inside each of the hold probe's 0.25 s pauses
Key = tuple[int, int]  # (pid, tid)


@dataclass(frozen=True)
class Task:
    name: str
    ppid: int
    ticks: int  # CPU time so far, user + system, in clock ticks
    woken: int  # voluntary context switches so far (-1: not readable)


@dataclass(frozen=True)
class Reading:
    t: float  # CLOCK_MONOTONIC when it was taken
    tasks: dict[Key, Task]

    @property
    def processes(self) -> int:
        return len({pid for pid, _ in self.tasks})

    @property
    def threads(self) -> int:
        return len(self.tasks)


Source = Callable[[], dict[Key, Task]]


def woke(first: Reading, then: Reading) -> set[Key]:
    """Tasks that blocked and were woken between two readings (and still exist)."""
    return {key for key, t in then.tasks.items() if key in first.tasks and t.woken > first.tasks[key].woken >= 0}


def parse(text: str) -> dict[Key, Task]:
    """`/proc/<pid>/task/<tid> <voluntary switches or -1> <stat line>` lines
    (what every source below produces) into tasks; lines it cannot read are
    skipped."""
    found: dict[Key, Task] = {}
    for line in text.splitlines():
        path, _, rest = line.partition(" ")
        woken, _, stat = rest.partition(" ")
        parts = path.split("/")
        if len(parts) != 5 or not parts[2].isdigit() or not parts[4].isdigit() or ")" not in stat:
            continue
        name, _, after = stat.rpartition(")")
        fields = after.split()
        try:
            found[(int(parts[2]), int(parts[4]))] = Task(name[name.find("(") + 1:], int(fields[1]),
                                                         int(fields[11]) + int(fields[12]), int(woken))
        except (IndexError, ValueError):
            continue
    return found


def own_tasks(tasks: dict[Key, Task]) -> dict[Key, Task]:
    """The server's own tasks: descendants of the container's init
    (docker-init), never the init itself nor what an exec started (its
    parent is outside the container: 0 in its pid namespace).  Without an
    init, the processes whose parent is outside, and theirs."""
    parent = {pid: t.ppid for (pid, _), t in tasks.items()}
    init = {pid for (pid, _), t in tasks.items() if t.name == "docker-init"}
    roots = init or {pid for pid, ppid in parent.items() if ppid not in parent and (ppid != 0 or pid == 1)}

    def mine(pid: int) -> bool:
        seen: set[int] = set()
        while pid not in seen:
            if pid in roots:
                return pid not in init or bool(seen)  # under the init, or a root itself without one
            seen.add(pid)
            if pid not in parent:
                return False
            pid = parent[pid]
        return False

    return {k: t for k, t in tasks.items() if mine(k[0])}


def _read_proc(pids: list[str], prefix: str = "/proc") -> str:
    """The lines parse() reads, for ``pids``, from this machine's /proc."""
    lines = []
    for base, (stat, status) in procs.task_files(pids, ("stat", "status"), prefix):
        woken = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("voluntary_ctxt_switches")),
                     "-1")
        lines.append(f"{base} {woken} {stat.strip()}")
    return "\n".join(lines)


def of_cgroup(procs_dir: str) -> Source:
    def read() -> dict[Key, Task]:
        with open(os.path.join(procs_dir, "cgroup.procs")) as f:
            return own_tasks(parse(_read_proc(f.read().split())))
    return read


EXEC_SCRIPT = ("for t in /proc/[0-9]*/task/[0-9]*; do "
               "s=$(cat $t/stat 2>/dev/null) || continue; "
               "w=$(sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' $t/status 2>/dev/null); "
               "echo \"$t ${w:--1} $s\"; done")


def of_exec(unit: Unit) -> Source:
    def read() -> dict[Key, Task]:
        done = unit.exec(["sh", "-c", EXEC_SCRIPT], stderr=False)
        return own_tasks(parse(done.output.decode(errors="replace")))
    return read


def descendants(root: int, prefix: str = "/proc") -> list[int]:
    """``root`` and every process below it, from this machine's /proc."""
    children: dict[int, list[int]] = {}
    for name in os.listdir(prefix):
        if not name.isdigit():
            continue
        try:
            with open(f"{prefix}/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def of_pid(pid: int) -> Source:
    def read() -> dict[Key, Task]:
        return parse(_read_proc([str(p) for p in descendants(pid)]))
    return read


def of_unit(unit: Unit) -> tuple[Source, str]:
    """How to read a unit's tasks, and in words where from."""
    procs_dir = Cgroup(unit).procs_dir
    if procs_dir:
        return of_cgroup(procs_dir), "its cgroup and /proc on this machine"
    return of_exec(unit), "/proc inside it, by exec"


class Sampler:
    """``source`` read every EVERY seconds in the background, each reading stamped."""

    def __init__(self, source: Source | None) -> None:
        self.source, self.errors = source, 0
        self.taken: list[Reading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> list[Reading]:
        if self.source is not None:
            self._take()
            self._thread = threading.Thread(target=self._run, daemon=True, name="classify-tasks")
            self._thread.start()
        return self.taken

    def _take(self) -> None:
        assert self.source is not None
        try:
            tasks = self.source()
        except (EngineError, OSError, ValueError):
            self.errors += 1
            return
        self.taken.append(Reading(time.monotonic(), tasks))

    def _run(self) -> None:
        while not self._stop.wait(EVERY):
            self._take()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._take()
