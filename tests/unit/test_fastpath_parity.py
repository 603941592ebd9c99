"""The C fast path (services/swarm/fastpath.c) and the Python reply step
(book.py, transfer.py, worker.py) keep the same books, byte for byte.

Two workers, one with C and one without, each with a real epoll and real
loopback TCP connections, and one scripted clock (the worker's injected
clock, which C reads through its fp_set_clock seam): the same peers answer
both with the same bytes at the same times, so every count, error kind, end
reason, latency and histogram bucket must come out equal.  The script:
pipelining depths 1, 3 and 8 over four connections; each batch of replies
whole, cut in two at every place, byte by byte and a line at a time; turns
before and after the warm-up's end; and the ends: EOF in the middle of a
reply, EOF between replies, a reset (RST: SO_LINGER 0 on the peer), a
connection left open.  A wrong figure in either path fails it (checked by
breaking fastpath.c's latency by 1 us, and its EOF into a reset).
Built with the host's gcc as test_swarm_fastpath.py builds it; without gcc
these tests skip, saying so."""

from __future__ import annotations

import os
import select
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from iorun import Trace
from swarm import fastpath, patterns
from swarm.conn import OPEN, Share
from swarm.worker import Worker

from .swarm_rig import FakeClock
from .test_swarm_fastpath import built, needs_gcc  # noqa: F401 (the fixture that compiles fastpath.c)

T0 = 2048.0
WARMUP = 0.05  # the warm-up ends among the rounds
CLIENTS = 4  # three end (EOF mid-reply, EOF between replies, RST), one stays open
REPLY = b"ok\n"


class NoWait:
    """The real epoll, asked only what is ready now: a scripted clock does not
    pass while epoll waits (what fastpath.c does while its clock is scripted)."""

    def __init__(self) -> None:
        self.epoll = select.epoll()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.epoll, name)

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        return self.epoll.poll(0, maxevents)


@dataclass
class Bench:
    """One worker on loopback TCP, its clock, and the peer of each client."""

    worker: Worker
    clock: FakeClock
    peers: dict[int, socket.socket] = field(default_factory=dict)

    def turn(self, now: float, client: int) -> None:
        """One turn at ``now``, once the client's socket is ready."""
        c = self.worker.connection(client)
        if c is not None and c.state == OPEN:
            select.select([c.fd], [], [], 2.0)
        self.clock.now = now
        self.worker.turn()

    def drain(self, client: int) -> None:
        """The peer reads what it was sent (so its window never closes)."""
        try:
            while self.peers[client].recv(65536, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass


def bench(depth: int, native: bool, listener: socket.socket, devnull: int) -> Bench:
    clock = FakeClock(T0)
    share = Share(worker=0, clients=list(range(1, CLIENTS + 1)), active=CLIENTS, pattern=patterns.PingPong(depth),
                  message=lambda i: patterns.message("x" * 20, i, None), addr=listener.getsockname(),
                  family=socket.AF_INET, t0=T0, warm_end=T0 + WARMUP, t_end=T0 + 100, count=None, ramp=None,
                  connect_timeout=1.0, max_connecting=CLIENTS, timeline_per_conn=1000, fast_path=native)
    worker = Worker(share, Trace("swarm", "off", fd=devnull), clock=clock, poller=None if native else NoWait())
    assert (worker.native is not None) == native
    worker.start()
    ports = {}
    for _ in range(CLIENTS):
        peer, (_, port) = listener.accept()
        peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each chunk leaves at once (no Nagle wait)
        ports[port] = peer
    b = Bench(worker, clock)
    for client in range(1, CLIENTS + 1):
        c = worker.connection(client)
        assert c is not None and c.sock is not None
        b.peers[client] = ports[c.sock.getsockname()[1]]
    return b


def cuts(depth: int) -> Iterator[list[bytes]]:
    """A batch of replies as the peer sends it: whole, cut in two at every
    place, byte by byte, a line at a time."""
    batch = REPLY * depth
    yield [batch]
    for i in range(1, len(batch)):
        yield [batch[:i], batch[i:]]
    yield [batch[i:i + 1] for i in range(len(batch))]
    yield [REPLY] * depth
    yield from [[batch]] * 3  # the first lines the batch up again (one send time), C books the next


def script(b: Bench, depth: int) -> None:
    """The same bytes at the same times, whichever path reads them."""
    now = T0 + 0.001
    b.turn(now, 1)  # the connects complete: each client sends its first batch
    for round_, chunks in enumerate(cuts(depth)):
        now = T0 + 0.002 + round_ * (2 * WARMUP / (3 * depth + 2))  # the warm-up ends mid-script
        for client in range(1, CLIENTS + 1):
            b.drain(client)
            for k, chunk in enumerate(chunks):
                b.peers[client].sendall(chunk)
                b.turn(now + 0.0001 * (client + k) + 0.00037 * round_, client)
    now += 0.01
    ends: list[Callable[[socket.socket], None]] = [
        lambda p: (p.sendall(REPLY[:1] + REPLY * (depth - 1)), p.shutdown(socket.SHUT_WR)),  # EOF mid-reply
        lambda p: p.shutdown(socket.SHUT_WR),  # EOF between replies: read by C, on its own connection
        lambda p: (p.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)), p.close()),  # RST
    ]
    for client, end in enumerate(ends, 1):
        b.drain(client)
        end(b.peers[client])
        b.turn(now + 0.001 * client, client)
        b.turn(now + 0.001 * client + 0.0005, client)  # what is left of it, if anything


def books(depth: int, native: bool, built_lib: Path) -> dict[str, Any]:
    """The worker's report after the script, less what may differ (its CPU, pid)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    listener = socket.create_server(("127.0.0.1", 0), backlog=CLIENTS)
    b = None
    try:
        b = bench(depth, native, listener, devnull)
        script(b, depth)
        if native:
            assert b.worker.native is not None and b.worker.native.histogram().total > 0, "C booked no reply"
        b.clock.now += 0.1
        report = b.worker.finish().to_json()
    finally:
        for peer in (b.peers.values() if b else []):
            peer.close()
        listener.close()
        os.close(devnull)
    for key in ("cpu", "pid", "fast_path"):
        report.pop(key)
    for one in report["records"] + report["timeline"]:
        one.pop("conn")  # its local port: another each run
    report["records"].sort(key=lambda r: r["client"])
    return report


@needs_gcc
@pytest.mark.parametrize("depth", [1, 3, 8])
def test_c_and_python_keep_the_same_books(built: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                          depth: int) -> None:
    monkeypatch.setattr(fastpath, "LIBRARY", built)
    c, python = books(depth, True, built), books(depth, False, built)
    assert c["records"] == python["records"]
    for key in ("totals", "errors", "closed_by", "end_reason", "latency", "timeline", "clients_connected"):
        assert c[key] == python[key], key
    assert c == python
    errors = python["errors"]
    assert errors.get("eof") == 2 and errors.get("reset") == 1, errors  # every end was booked
    assert 0 < python["latency"]["count"] < python["totals"]["replies"]  # the warm-up's replies left out
