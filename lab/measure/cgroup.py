"""A unit's cgroup: its CPU time and memory, read the best way this machine can.

    cgroup = Cgroup(unit)      # how this machine can reach the unit's cgroup
    cpu = cgroup.read()        # Cpu(t, cpu_s, memory): CPU time and memory so far
    server_cpu(spans, ...)     # CPU over measured spans: seconds, cores, µs per reply

Where a reading comes from, best first: the cgroup's files on this machine
(`host`), one `grep` of them inside the unit (`exec`), the engine's stats
(`stats`); see lab/measure/__init__.py.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..engine import EngineError, Unit
from ..engine.base import CPU_FILES, MEMORY_FILES
from ..errors import LabError


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
