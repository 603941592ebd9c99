"""A swarm worker on a test bench: its clock, its poller and its sockets are fakes.

The test says what time it is, which sockets are ready for what, and what
the far end of each connection answers; the worker runs its real loop
through its public face (``start``, ``turn``, ``finish``, ``connection``):
the ramp, connects, timers, the reply step, writes and back-pressure, the
patterns, the codecs and the bookkeeping are all the ones a worker process
runs.  Only the C fast path is off (it needs a real epoll and clock; see
test_swarm_fastpath.py for it).
"""

from __future__ import annotations

import errno
import json
import os
import select
import socket
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from iorun import Trace
from swarm import patterns, wire
from swarm.conn import OPEN, Conn, Share
from swarm.worker import Worker

T0 = 1024.0
IN, OUT = select.EPOLLIN, select.EPOLLOUT


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakePoller:
    """epoll's interface: what is watched, and what the test says is ready."""

    def __init__(self) -> None:
        self.watched: dict[int, int] = {}
        self.ready: list[tuple[int, int]] = []
        self.closed = False

    def register(self, fd: int, mask: int) -> None:
        assert fd not in self.watched, f"fd {fd} registered twice"
        self.watched[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        if fd not in self.watched:
            raise FileNotFoundError(errno.ENOENT, "not watched")
        self.watched[fd] = mask

    def unregister(self, fd: int) -> None:
        if self.watched.pop(fd, None) is None:
            raise FileNotFoundError(errno.ENOENT, "not watched")

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        ready, self.ready = self.ready, []
        return ready

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        self.closed = True


class FakeSocket:
    """A non-blocking stream socket, and the far end behind it."""

    def __init__(self, fd: int, connect: int = errno.EINPROGRESS) -> None:
        self.fd = fd
        self.connect_result = connect  # what connect_ex returns
        self.so_error = 0  # the connect's outcome, read once EPOLLOUT says it is known
        self.wire = bytearray()  # every byte the worker wrote, in order
        self.room: int | None = None  # None: the socket takes everything
        self.answers = bytearray()  # what the far end sends, read by the worker
        self.eof = False  # the far end closed: recv returns 0 once the answers are read
        self.closed = False

    def setblocking(self, flag: bool) -> None:
        assert flag is False

    def setsockopt(self, *_: Any) -> None:
        pass

    def connect_ex(self, addr: Any) -> int:
        return self.connect_result

    def fileno(self) -> int:
        return self.fd

    def getsockopt(self, level: int, name: int) -> int:
        assert (level, name) == (socket.SOL_SOCKET, socket.SO_ERROR)
        return self.so_error

    def getsockname(self) -> tuple[str, int]:
        return ("10.0.0.2", 40000 + self.fd)

    def send(self, data: bytes) -> int:
        if self.room is None:
            take = len(data)
        else:
            take = min(len(data), self.room)
            self.room -= take
            if not take:
                raise BlockingIOError
        self.wire += bytes(data[:take])
        return take

    def recv_into(self, buf: bytearray) -> int:
        if not self.answers:
            if self.eof:
                return 0
            raise BlockingIOError
        n = min(len(buf), len(self.answers))
        buf[:n] = self.answers[:n]
        del self.answers[:n]
        return n

    def close(self) -> None:
        self.closed = True


class Rig:
    """One worker on fakes, started at T0 (its clients are connecting)."""

    def __init__(self, tmp: Path, pattern: patterns.Pattern, *, protocol: str = "line",
                 message: str | Callable[[int], bytes] = "x" * 63, clients: int = 1, count: int | None = None,
                 warmup: float = 0.0, level: str = "conn", actions: list[patterns.Action] | None = None,
                 ramp: float | None = None, max_connecting: int | None = None, connect: int = errno.EINPROGRESS,
                 slow: tuple[int, patterns.Pattern] | None = None, **options: Any) -> None:
        codec = wire.codec_factory(protocol, **options)
        if callable(message):
            encode = message
        elif codec is None:
            encode = lambda i: patterns.message(message, i, None)  # noqa: E731
        else:
            made = codec().request
            encode = lambda i: made(message.format(i=i))  # noqa: E731
        share = Share(worker=0, clients=list(range(1, clients + 1)), active=clients, pattern=pattern,
                      message=encode, codec=codec, addr=("10.0.0.1", 9), family=socket.AF_INET, t0=T0,
                      warm_end=T0 + warmup, t_end=T0 + 100, count=count, ramp=ramp, connect_timeout=1.0,
                      max_connecting=max_connecting or clients, actions=list(actions or []),
                      timeline_per_conn=10_000)
        if slow is not None:  # --slow-clients K: clients 1..K slow beside the pattern
            share.slow_clients, share.slow = slow
        self.trace_path = tmp / "trace.jsonl"
        self.trace_fd = os.open(self.trace_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        self.clock = FakeClock(T0)
        self.poller = FakePoller()
        self.sockets: list[FakeSocket] = []
        self.connect_result = connect
        self.worker = Worker(share, Trace("swarm", level, fd=self.trace_fd), clock=self.clock,
                             poller=self.poller, sockets=self._socket)
        self.worker.start()

    def _socket(self, family: int) -> FakeSocket:
        s = FakeSocket(100 + len(self.sockets), self.connect_result)
        self.sockets.append(s)
        return s

    def turn(self, now: float, *ready: tuple[int, int]) -> None:
        """One turn of the loop at ``now``, with these (fd, events) ready."""
        self.clock.now = now
        self.poller.ready = list(ready)
        self.worker.turn()

    def far(self, c: Conn) -> FakeSocket:
        return next(s for s in self.sockets if s.fd == c.fd)

    def connect(self, client: int, now: float) -> tuple[Conn, FakeSocket]:
        """The client's connect completes at ``now``."""
        c = self.worker.connection(client)
        assert c is not None
        far = self.far(c)
        self.turn(now, (c.fd, OUT))
        return c, far

    def answer(self, c: Conn, data: bytes, now: float, *, bytewise: bool = False) -> None:
        """The far end sends ``data`` (one byte per turn if ``bytewise``)."""
        far = self.far(c)
        for i in range(len(data)) if bytewise else [0]:
            far.answers += data[i:i + 1] if bytewise else data
            if c.state == OPEN:  # the worker watches it
                self.turn(now, (c.fd, IN))

    def answer_all(self, c: Conn, now: float, reply: bytes = b"ok\n") -> None:
        """The far end answers every line written so far that it has not answered."""
        far = self.far(c)
        asked = far.wire.count(b"\n") - c.ledger.answered - far.answers.count(b"\n")
        self.answer(c, reply * asked, now)

    def close_far(self, c: Conn, now: float) -> None:
        self.far(c).eof = True
        self.turn(now, (c.fd, IN))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.trace_path.read_text().splitlines()]

    def record(self, client: int = 1) -> dict[str, Any]:
        return next(r for r in self.worker.tally.records if r["client"] == client)

    def close(self) -> None:
        os.close(self.trace_fd)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """Make rigs (Rig's arguments but the folder); each is closed at the end."""
    made: list[Rig] = []

    def make(*args: Any, **kwargs: Any) -> Rig:
        made.append(Rig(tmp_path, *args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()
