"""Readings over a swarm's run: in the background, or at set points.

    sampler = Sampler(cgroup); sampler.start(); ...; sampler.stop()
    sampler.window(start, end, snapshot_at, origin)   # the measured window, after the fact
    scheduled(cgroup, server, swarm, ...)             # a remote engine: readings at set points

Local engines: Sampler reads in the background (CPU every 50 ms, the
processes every 0.25 s) and answers afterwards for the swarm's own measured
window, interpolated.  Remote engines: scheduled() reads at set points on
the lab's own clock, from the swarm's start event on.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..engine import Unit
from ..errors import LabError
from .cgroup import Cgroup, Cpu
from .events import EventStream, TraceTimeout
from .procs import local_resources, resources


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
