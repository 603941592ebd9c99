"""The swarm engine's scheduling and writing without sockets or a real clock.

A connection here is a stub: its send() appends to a bytearray (or takes
nothing, like a full socket buffer), its recv_into() hands over what the
test's "server" answered, and its descriptor is a pipe's, so epoll accepts
it.  The test says what time it is: the engine's timers, the open-loop
schedule, the writes and the replies all run as in a real worker.
"""

from __future__ import annotations

import os
import select
import socket
from typing import Iterator

import pytest

from iorun import Trace
from swarm import patterns
from swarm.book import Ledger
from swarm.conn import OPEN, Conn, Plan
from swarm.engine import OUT_CAP, Engine

T0 = 1024.0
TICK = 1 / 1024  # binary fractions of a second: the schedule's sums are exact
MSG = b"x" * 63 + b"\n"


class Stub:
    """One connection's far end: what was written, what the server answers."""

    def __init__(self) -> None:
        self.wire = bytearray()  # every byte the swarm wrote, in order
        self.room: int | None = None  # None: the socket takes everything
        self.answers = bytearray()  # written by the "server", read by the swarm

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
            raise BlockingIOError
        n = min(len(buf), len(self.answers))
        buf[:n] = self.answers[:n]
        del self.answers[:n]
        return n


@pytest.fixture
def pipes() -> Iterator[list[int]]:
    made: list[int] = []
    yield made
    for fd in made:
        os.close(fd)


def engine(pattern: patterns.Pattern, *, warmup: float = 0.0, count: int | None = None) -> Engine:
    plan = Plan(worker=0, clients=[1], active=1, pattern=pattern, message=lambda i: MSG,
                addr=("127.0.0.1", 9), family=socket.AF_INET, t0=T0, warm_end=T0 + warmup,
                t_end=T0 + 100, count=count, ramp=None, connect_timeout=1.0, max_connecting=1,
                timeline_per_conn=10_000)
    return Engine(plan, Trace("swarm", "off", fd=os.open(os.devnull, os.O_WRONLY)))


def connect(eng: Engine, pipes: list[int], now: float) -> tuple[Conn, Stub]:
    """An open connection, as _connect_done leaves it, with a stub socket."""
    r, w = os.pipe()
    pipes += [r, w]
    pattern = eng.pattern
    c = Conn(1, True, pattern, MSG, [MSG * n for n in range(3)], pattern.budget(eng.plan.count),
             now, now + 1, Ledger(eng.tally, eng.plan.timeline_per_conn))
    stub = Stub()
    c.state, c.fd, c.name, c.tcp_end, c.connect_end, c.ready = OPEN, w, "stub", now, now, True
    c.send, c.recv_into = stub.send, stub.recv_into
    eng.conns[w] = c
    eng.by_client[1] = c
    eng.ep.register(w, select.EPOLLIN)
    eng._settle(c)
    pattern.opened(eng, c, now)
    return c, stub


def answer_all(eng: Engine, c: Conn, stub: Stub, now: float) -> None:
    """The server answers every request written so far; the swarm reads at ``now``."""
    asked = stub.wire.count(b"\n") - stub.answers.count(b"\n")
    stub.answers += b"ok\n" * (asked - c.ledger.answered)
    eng._event(c.fd, select.EPOLLIN, now)


def test_a_late_swarm_counts_its_own_lateness_in_the_latency(pipes: list[int]) -> None:
    """Coordinated omission: at 100 requests/s the worker is held up for half
    a second (a pause, a busy core).  When it runs again it sends the 50
    overdue requests at once, and an instant server answers them 1 ms later.
    Timed from the actual send, every one took 1 ms, and the stall vanishes
    from the figures; timed from when each was due, as the swarm does, they
    took from 491 ms down to 1 ms.  This test fails if latency is measured
    from the write."""
    eng = engine(patterns.Rate(100.0, 1))
    c, stub = connect(eng, pipes, T0)
    answer_all(eng, c, stub, T0 + 0.001)  # request 0, on time
    late = T0 + 0.5  # the timer due at T0 + 0.01 runs only now
    eng._timers(late)
    assert stub.wire.count(b"\n") == 51  # the 50 overdue requests left together
    answer_all(eng, c, stub, late + 0.001)
    lat = eng.tally.latency.summary()
    assert lat["count"] == 51, lat
    assert lat["max_us"] >= 490_000, f"the stall is missing from the latency: {lat}"
    assert 240_000 <= lat["p50_us"] <= 260_000, lat  # half the requests waited over 250 ms
    assert abs(lat["min_us"] - 1000) <= 1  # the server's own time, for the one sent on time


def test_closed_loop_latency_runs_from_the_write(pipes: list[int]) -> None:
    eng = engine(patterns.PingPong(2))
    c, stub = connect(eng, pipes, T0)
    assert stub.wire == MSG * 2
    answer_all(eng, c, stub, T0 + 3 * TICK)
    assert stub.wire == MSG * 4  # each reply bought the next request
    assert eng.tally.latency.summary()["p50_us"] == int(3 * TICK * 1e6)


def test_an_unread_socket_keeps_bytes_then_owes_requests(pipes: list[int]) -> None:
    """Open loop against a peer that reads nothing: bytes queue up to OUT_CAP,
    then requests are owed (counted, their intended times kept), and all of
    them leave in order once the socket drains."""
    eng = engine(patterns.Interval(TICK))
    c, stub = connect(eng, pipes, T0)  # the first request leaves at once
    stub.room = 0  # then the socket buffer is full
    full = OUT_CAP // len(MSG)
    for ticks in (1, full + 1, full + 101):  # each round sends what fell due since the last
        eng._timers(T0 + ticks * TICK)
    assert len(c.out) >= OUT_CAP and c.owed == 100
    assert c.ledger.sent == full + 102 == c.ledger.inflight
    assert c.ledger.pending() == [(T0, full + 102, TICK)]  # intended times, one batch
    assert c.fd not in eng.fast  # off the fast path while bytes wait
    assert c.bytes_out == len(stub.wire) == len(MSG)
    stub.room = None
    while c.out or c.owed:
        eng._event(c.fd, select.EPOLLOUT, T0 + 1)
    assert stub.wire == MSG * (full + 102) and c.bytes_out == len(stub.wire)
    assert c.fd in eng.fast


def test_a_short_write_keeps_the_rest_for_epollout(pipes: list[int]) -> None:
    eng = engine(patterns.PingPong(2))
    c, stub = connect(eng, pipes, T0)
    stub.room = 10
    answer_all(eng, c, stub, T0 + 0.001)  # two replies: two requests to write, 10 bytes fit
    assert bytes(c.out) == (MSG * 2)[10:] and c.fd not in eng.fast
    stub.room = None
    eng._event(c.fd, select.EPOLLOUT, T0 + 0.002)
    assert stub.wire == MSG * 4 and not c.out and c.fd in eng.fast


def test_a_scripted_action_waits_behind_owed_requests(pipes: list[int]) -> None:
    eng = engine(patterns.Interval(TICK))
    c, stub = connect(eng, pipes, T0)
    stub.room = 0
    eng._timers(T0 + 3 * TICK)  # three more due: written nowhere yet
    action = patterns.Action(0.004, 1, "STATS")
    eng._fire_action(action, T0 + 4 * TICK)
    stub.room = None
    while c.out:
        eng._event(c.fd, select.EPOLLOUT, T0 + 5 * TICK)
    assert stub.wire == MSG * 4 + b"STATS\n"  # the wire order is the ledger's
    stub.answers += b"ok\n" * 4 + b'{"model":"x"}\n'
    eng._event(c.fd, select.EPOLLIN, T0 + 6 * TICK)
    assert action.outcome == "reply" and action.reply == '{"model":"x"}'
    assert c.ledger.answered == 4 and not c.slow and c.fd in eng.fast  # back on the fast path


def test_the_budget_closes_the_connection_when_all_is_answered(pipes: list[int]) -> None:
    eng = engine(patterns.PingPong(3), count=4)
    eng.live = eng.active_live = 1
    c, stub = connect(eng, pipes, T0)
    c.sock = socket.socket()  # _close closes it
    answer_all(eng, c, stub, T0 + 0.001)  # 3 answered, 1 more sent (the budget was 4)
    assert stub.wire == MSG * 4 and c.state == OPEN
    answer_all(eng, c, stub, T0 + 0.002)
    (record,) = eng.tally.records
    assert record["close"] == "count" and record["replies"] == 4 and record["bytes_sent"] == 4 * len(MSG)
    assert eng.stop_reason == "count"
