"""What a worker's parts (connect.py, transfer.py) may ask of the worker that
owns them.  worker.py has all of it; naming it here lets the parts be read,
and typed, without importing the loop that drives them."""

from __future__ import annotations

from typing import Protocol

from iorun import Trace

from swarm import fastpath
from swarm.book import Tally
from swarm.conn import Conn, Share
from swarm.table import Table
from swarm.timers import Timers


class Writer(Protocol):
    """The transfer part, as the connect part uses it."""

    def go_slow(self, c: Conn) -> None: ...
    def write(self, c: Conn, data: bytes, now: float) -> None: ...


class Greeter(Protocol):
    """The connect part, as the transfer part uses it: a handshake's end."""

    def ready(self, c: Conn, now: float) -> None: ...


class Owner(Protocol):
    share: Share
    trace: Trace
    warm_end: float
    timers: Timers
    tally: Tally
    table: Table
    native: fastpath.FastLoop | None
    warnings: list[str]
    stopping: bool  # the run is over: nothing starts again
    io: Writer
    connector: Greeter

    def stop(self, reason: str) -> None: ...
    def lost(self, c: Conn, kind: str, detail: str, now: float) -> None: ...
    def broke(self, c: Conn, err: int | None, now: float) -> None: ...
    def close(self, c: Conn, reason: str, now: float) -> None: ...
    def finalize(self, c: Conn) -> None: ...
