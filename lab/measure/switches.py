"""Context switches of a server's tasks, from /proc, without tracing.

    sampler = SwitchSampler(unit, cgroup.procs_dir); sampler.start(); ...; sampler.stop()
    sampler.window(start, end)    # voluntary and involuntary switches between two moments

Each task (thread) of each process has /proc/<pid>/task/<tid>/status with
voluntary_ctxt_switches (it blocked: waited for a read, a lock, a timer)
and nonvoluntary_ctxt_switches (the scheduler took the CPU away); reading
them needs no capability.  A task that exits takes its counters with it,
and a thread- or process-per-connection server ends its tasks when their
clients leave, so the counters are sampled while the swarm runs (every
PERIOD) and each task counts from its first sample in the window to its
last: the window is the swarm's measured one, over kept connections.  On a
local engine the files are read on this machine (the cgroup's process
list); elsewhere by one exec of grep in the container.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from ..engine import EngineError, Unit
from ..errors import LabError
from .procs import path_lines, task_files
from .ticker import Ticker

Counters = dict[int, tuple[int, int]]  # tid -> (voluntary, involuntary)
PROBE = ["sh", "-c", "exec grep -s -H -e '^Name:' -e 'ctxt_switches:' /proc/[0-9]*/task/[0-9]*/status"]
INIT = "docker-init"  # the container's init: not the server's


def parse_status(text: str) -> Counters:
    """Counters by task from `/proc/<pid>/task/<tid>/status:<line>` lines;
    the init's tasks, and a task with only one of its two counters, are left out."""
    found: dict[int, dict[str, object]] = {}
    for parts, key, value in path_lines(text, 6):
        found.setdefault(int(parts[4]), {})[key] = value
    out: Counters = {}
    for tid, task in found.items():
        vol, invol = str(task.get("voluntary_ctxt_switches", "")), str(task.get("nonvoluntary_ctxt_switches", ""))
        if task.get("Name") != INIT and vol.isdigit() and invol.isdigit():
            out[tid] = (int(vol), int(invol))
    return out


def local_text(procs_dir: str) -> str | None:
    """The status lines of every task of the cgroup's processes, read here; None if not readable."""
    try:
        with open(os.path.join(procs_dir, "cgroup.procs")) as f:
            pids = f.read().split()
    except OSError:
        return None
    return "\n".join(f"{base}/status:{line}" for base, (text,) in task_files(pids, ("status",))
                     for line in text.splitlines())


def read(unit: Unit, procs_dir: str | None) -> Counters:
    """Every server task's counters now (here when local, else by exec)."""
    text = local_text(procs_dir) if procs_dir else None
    if text is None:
        done = unit.exec(PROBE, stderr=False)
        text = done.output.decode(errors="replace")
    return parse_status(text)


@dataclass
class Window:
    """Switches between two samples, summed over the tasks seen in both ends' span."""

    voluntary: int
    involuntary: int
    seconds: float  # between the first and the last sample used
    tasks: int  # tasks that counted
    samples: int


def in_window(samples: list[tuple[float, Counters]], start: float, end: float) -> Window | None:
    """Each task's switches from its first sample in [start, end] to its last; None with fewer than two samples."""
    used = [(t, c) for t, c in samples if start <= t <= end]
    if len(used) < 2:
        return None
    first: Counters = {}
    last: Counters = {}
    for _, counters in used:
        for tid, pair in counters.items():
            first.setdefault(tid, pair)
            last[tid] = pair
    vol = sum(last[t][0] - first[t][0] for t in last)
    invol = sum(last[t][1] - first[t][1] for t in last)
    return Window(vol, invol, used[-1][0] - used[0][0], len(last), len(used))


@dataclass
class SwitchSampler:
    """From start() to stop(): every task's counters every PERIOD, stamped."""

    unit: Unit
    procs_dir: str | None
    samples: list[tuple[float, Counters]] = field(default_factory=list)
    PERIOD = 0.1

    def __post_init__(self) -> None:
        self._ticker = Ticker(self._take, self.PERIOD, "switches", join_s=10)

    def _take(self) -> bool:
        try:
            self.samples.append((time.monotonic(), read(self.unit, self.procs_dir)))
            return True
        except (OSError, LabError, EngineError):
            return False  # the server is gone

    def start(self) -> None:
        self._ticker.start()

    def stop(self) -> None:
        self._ticker.stop()

    def window(self, start: float, end: float) -> Window | None:
        return in_window(self.samples, start, end)
