"""What the host could give a probe: its free cores, from /proc/stat.

A judge that depends on free CPU (idle CPU, the GIL, stalls, C10K latency)
must not blame a model for what other work on the machine did.  So, around
such a probe, the host's CPU time is read from /proc/stat (its first line:
every CPU's time since boot, by kind), together with the CPU time of the
server's and the swarm's cgroups and of this lab process.  Over any window:

    other load = host busy - (server + swarm + lab)      (in cores)
    free cores = CPUs - other load

Busy is everything but idle and iowait; steal counts as busy (the
hypervisor gave those cycles to another machine).  What the server and the
swarm used is theirs to use, so it is not load; whatever else ran is.

Local engines: this machine's /proc/stat, read with the cgroups every
50 ms, so any window inside the probe can be asked about afterwards.  A
client swarm that runs as a unit of its own per probe (Swarm mode) is
counted from the moment it appears (``extra``): what each cgroup gained
between two readings is added up, so one that comes or goes changes
nothing else.
Remote engines: /proc/stat is not namespaced, so `cat /proc/stat` by exec
in a lab container reads the engine's host, once at the start and once at
the end of the probe (an exec every 50 ms would be load of its own).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import LabError
from .cgroup import Cgroup, Cpu
from .sampler import Sampler
from .ticker import Ticker

PERIOD = 0.05
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat counts in these


@dataclass(frozen=True)
class Reading:
    t: float  # CLOCK_MONOTONIC
    busy_s: float  # host-wide busy CPU seconds since boot
    ours_s: float  # CPU seconds of the server's and swarm's cgroups and this lab, so far
    cpus: int


def parse_proc_stat(text: str) -> tuple[float, int]:
    """(busy CPU seconds since boot, CPUs) from /proc/stat."""
    busy, cpus = None, 0
    for line in text.splitlines():
        name, *values = line.split()
        if name == "cpu":
            v = [int(x) for x in values] + [0] * 8
            user, nice, system, _idle, _iowait, irq, softirq, steal = v[:8]
            busy = (user + nice + system + irq + softirq + steal) / TICK  # guest time is inside user
        elif name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
    if busy is None or cpus == 0:
        raise ValueError("no cpu lines in /proc/stat")
    return busy, cpus


def _key(cgroup: Any) -> Any:
    unit = getattr(cgroup, "unit", None)
    return getattr(unit, "id", None) or id(cgroup)


def local_proc_stat() -> str:
    with open("/proc/stat") as f:
        return f.read()


def exec_proc_stat(unit: Any) -> Callable[[], str]:
    """/proc/stat of a remote engine's host, by exec in one of the lab's units."""
    def read() -> str:
        code, output = unit.exec(["cat", "/proc/stat"])
        if code != 0:
            raise LabError(f"cat /proc/stat in {unit.name} exited {code}")
        return output.decode(errors="replace")
    return read


class HostLoad:
    """From start() to stop(): the host's CPU and ours, so that free_cores()
    can answer for any window between them.  `every` None: two readings only."""

    def __init__(self, proc_stat: Callable[[], str], cgroups: list[Cgroup], own: bool,
                 every: float | None = PERIOD, extra: Callable[[], list[Cgroup]] | None = None) -> None:
        self.proc_stat, self.cgroups, self.own, self.every = proc_stat, cgroups, own, every
        self.extra = extra  # cgroups of ours that come and go (a probe's swarm unit)
        self._last: dict[Any, float] = {}  # each cgroup's CPU seconds at the last reading
        self._ours = 0.0
        self.readings: list[Reading] = []
        self.error: str | None = None
        self._ticker: Ticker | None = None

    @classmethod
    def around(cls, server: Cgroup, swarm: Any, extra: Callable[[], list[Cgroup]] | None = None) -> "HostLoad":
        """The right way for this engine: local (the server's cgroup files
        are on this machine) or remote (through the swarm container, or the
        server's own when the swarm has none that lasts)."""
        cgroups = [server] + ([Cgroup(swarm)] if swarm is not None else [])
        if server.local:
            return cls(local_proc_stat, cgroups, own=True, extra=extra)
        return cls(exec_proc_stat(swarm if swarm is not None else server.unit), cgroups, own=False,
                   every=None, extra=extra)

    def read(self) -> Reading:
        busy, cpus = parse_proc_stat(self.proc_stat())
        t = time.monotonic()
        now = {_key(c): c.read().cpu_s for c in self.cgroups}  # one of these gone: no more readings
        for c in self.extra() if self.extra else []:
            try:
                now[_key(c)] = c.read().cpu_s
            except (OSError, LabError):
                pass  # a probe's swarm that has just ended
        if self.own:
            now["lab"] = time.process_time()
        self._ours += sum(v - self._last.get(k, 0.0) for k, v in now.items())
        self._last.update(now)
        return Reading(t, busy, self._ours, cpus)

    def _take(self) -> bool:
        try:
            self.readings.append(self.read())
            return True
        except (OSError, ValueError, LabError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"  # a container gone (a CRASH): no more readings
            return False

    def start(self) -> None:
        self.readings, self.error, self._last, self._ours = [], None, {}, 0.0
        if self.every is None:  # two readings only: one now, one at stop()
            self._take()
        else:
            self._ticker = Ticker(self._take, self.every, "host-load")
            self._ticker.start()

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self.error is None:
            self._take()

    @property
    def cpus(self) -> int | None:
        return self.readings[0].cpus if self.readings else None

    def _other_at(self, t: float) -> float | None:
        """Cumulative other load (CPU seconds) at t, linear between readings."""
        for a, b in zip(self.readings, self.readings[1:]):
            if a.t <= t <= b.t:
                f = (t - a.t) / (b.t - a.t) if b.t > a.t else 0.0
                before, after = a.busy_s - a.ours_s, b.busy_s - b.ours_s
                return before + (after - before) * f
        return None

    def free_cores(self, start: float | None = None, end: float | None = None) -> float | None:
        """Cores the host could give between start and end (default: the
        whole probe); None without readings around both ends."""
        if len(self.readings) < 2:
            return None
        start = self.readings[0].t if start is None else max(start, self.readings[0].t)
        end = self.readings[-1].t if end is None else min(end, self.readings[-1].t)
        a, b = self._other_at(start), self._other_at(end)
        if a is None or b is None or end - start < PERIOD:
            return None
        cpus = self.readings[0].cpus
        return min(max(cpus - (b - a) / (end - start), 0.0), float(cpus))


class HostCpu:
    """This machine's busy CPU time from /proc/stat, read like a cgroup so a
    Sampler can follow it: everything that ran, the other work on the host
    too (the engine is local: this is its machine)."""

    procs_dir = None  # no processes to snapshot: a Sampler reads CPU only

    def read(self) -> Cpu:
        busy, _ = parse_proc_stat(local_proc_stat())
        return Cpu(time.monotonic(), busy, None, "host")


class CpuOnly(Sampler):
    """A sampler of CPU alone (the swarm's, the host's): no process snapshots."""

    SNAPSHOT_PERIOD = 3600.0


def window_cores(sampler: Sampler | None, start: float, end: float) -> float | None:
    """Cores busy between two moments, interpolated between the sampler's readings."""
    if sampler is None or end <= start:
        return None
    a, b = sampler.at(start), sampler.at(end)
    return None if a is None or b is None else round((b - a) / (end - start), 4)


def wait_quiet(load_for: Callable[[], HostLoad], wanted: float, bound: float,
               window: float = 1.0) -> tuple[float | None, float]:
    """Before a retry: wait, at most ``bound`` seconds, until the host has
    given ``wanted`` free cores over one whole ``window`` (other work on a
    shared machine comes in bursts).  (the last free-core figure, seconds
    waited); the caller retries either way, and the retry is judged on its
    own readings."""
    began = time.monotonic()
    free: float | None = None
    while True:
        load = load_for()
        load.start()
        threading.Event().wait(window)  # the measurement window itself
        load.stop()
        free = load.free_cores()
        waited = time.monotonic() - began
        if (free is not None and free >= wanted) or waited + window > bound:
            return free, waited
