"""Driving the live view: events in, a screen out, several times a second.

    watcher = Watcher(Board("threads"))
    watcher.follow_units(units)             # `lab watch`: the engine's log streams, as `lab logs -f`
    watcher.follow_stream(target.events)    # the tour: a probed server's EventStream
    watcher.read(unit)                      # its processes, threads and CPU, four times a second
    with watcher.shown(console):            # rich.live until the block ends
        ...

    watch_run(run_id, console)              # `lab watch` and `lab up --watch`: until Ctrl-C

Events are read by background threads from the engine's log stream (never
from the containers themselves, so a slow screen cannot hold a server up)
and fed to the Board under one lock; the screen is drawn from the Board at
the moment of each refresh.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from typing import Any, Iterator

from rich.console import Console
from rich.live import Live

from ..engine import ROLE, SERVICE, EngineError, Unit
from ..errors import LabError, UsageError
from ..measure.cgroup import Cgroup
from ..measure.events import EventStream
from ..measure.procs import tasks
from ..run import runs
from ..run.context import inventory
from .render import render
from .state import Board

REFRESH_PER_S = 8  # screen refreshes a second
READ_EVERY_S = 0.25  # the process table and the cgroup's CPU, read this often (locally: a millisecond)
POLL_S = 0.1  # an EventStream's new events, looked at this often


class Watcher:
    def __init__(self, board: Board) -> None:
        self.board = board
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reading: Unit | None = None

    # -- sources -------------------------------------------------------------------
    def _spawn(self, fn: Any, *args: Any, name: str) -> None:
        thread = threading.Thread(target=fn, args=args, daemon=True, name=name)
        thread.start()
        self._threads.append(thread)

    def follow_units(self, units: list[Unit]) -> None:
        """Every unit's log, as `lab logs -f` reads it (lab/run/runs.follow)."""
        self._spawn(self._pump_lines, units, name="watch-logs")

    def _pump_lines(self, units: list[Unit]) -> None:
        roles = {u.labels.get(SERVICE, u.name): u.labels.get(ROLE, "") for u in units}
        try:
            for service, line, offset in runs.follow(units):
                if self._stop.is_set():
                    return
                event = parse(line, offset)
                if event is not None:
                    with self.lock:
                        self.board.feed(event, "swarm" if roles.get(service) == "swarm" else "server")
        except (EngineError, OSError):
            return  # the run went away: the screen stays as it was last seen

    def follow_stream(self, stream: EventStream) -> None:
        """A server's EventStream (the tour's probed server): its events as they come."""
        self._spawn(self._pump_stream, stream, name=f"watch-{stream.name}")

    def _pump_stream(self, stream: EventStream) -> None:
        seen = 0
        while not self._stop.is_set() and not (stream.ended and seen >= len(stream.events)):
            new = stream.events[seen:]  # the list only grows: a slice is a consistent view
            seen += len(new)
            if new:
                with self.lock:
                    self.board.feed_all(new, "server")
            self._stop.wait(POLL_S)

    def read(self, unit: Unit) -> None:
        """The unit's processes, threads and CPU, read in the background."""
        self._reading = unit
        self._spawn(self._read, unit, name="watch-read")

    def _read(self, unit: Unit) -> None:
        try:
            cgroup = Cgroup(unit)
        except (EngineError, LabError, OSError):
            return
        last = None
        while not self._stop.is_set() and self._reading is unit:
            try:
                sample = tasks(unit, cgroup.procs_dir)
                now = cgroup.read()
            except (EngineError, LabError, OSError, KeyError, ValueError):
                return  # the server is gone (a crash, the end of a step)
            cores = (now.cpu_s - last.cpu_s) / (now.t - last.t) if last is not None and now.t > last.t else None
            with self.lock:
                self.board.tasks(sample.processes, [sample.per_process[p] for p in sorted(sample.per_process)])
                if cores is not None:
                    self.board.cpu(max(0.0, cores))
            last = now
            self._stop.wait(READ_EVERY_S)

    # -- showing -------------------------------------------------------------------
    def frame(self, max_lanes: int = 12) -> Any:
        with self.lock:
            screen = self.board.screen(time.monotonic())
        return render(screen, max_lanes)

    @contextlib.contextmanager
    def shown(self, console: Console) -> Iterator["Watcher"]:
        """The screen, redrawn REFRESH_PER_S times a second while the block runs."""
        lanes = max(4, console.size.height - 16)
        with Live(get_renderable=lambda: self.frame(lanes), console=console, refresh_per_second=REFRESH_PER_S,
                  transient=False, redirect_stdout=False, redirect_stderr=False):
            yield self

    def stop(self) -> None:
        self._stop.set()


def parse(line: bytes, offset: float = 0.0) -> dict[str, Any] | None:
    """One log line as an event on this machine's clock, or None if it is none."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("t"), (int, float)) or "ev" not in event:
        return None
    event["t"] = float(event["t"]) - offset
    return event


def watch_run(wanted: str | None, console: Console, stop_after: bool = False) -> str:
    """`lab watch`: the run named (default the newest `lab up` left), live, until
    Ctrl-C; the topology is left as it is unless ``stop_after``.  The run's id."""
    if not console.is_terminal:
        raise UsageError("lab watch draws a live screen and needs a terminal; without one, read the same "
                         "events with `lab logs -f`")
    res = runs.pick(inventory(), wanted)
    units = runs.units_of(res, None)
    server = next((u for u in units if u.labels.get(ROLE) == "server"), None)
    if server is None:
        raise UsageError(f"run {res.run} has no server to watch; `lab status` lists the runs")
    watcher = Watcher(Board(f"lab watch · {server.labels.get(SERVICE, server.name)} · run {res.run} "
                            "· Ctrl-C to leave (the topology stays up)"))
    watcher.follow_units(units)
    watcher.read(server)
    try:
        with watcher.shown(console):
            while True:
                time.sleep(3600)  # the screen refreshes itself; this thread only waits for Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
    if stop_after:
        runs.remove(inventory(), [res.run], every=False, images=False, said=lambda line: console.print(line))
    return res.run
