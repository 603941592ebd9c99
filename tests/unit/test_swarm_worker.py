"""A swarm worker's loop without sockets or a real clock (swarm_rig.py).

The test says what time it is and what each far end answers; the worker's
own loop, timers, open-loop schedule, writes and replies run as in a real
worker process, driven only through its public face.
"""

from __future__ import annotations

import errno
import select
from typing import Any

import pytest

from swarm import patterns
from swarm.book import Batch
from swarm.conn import CLOSED, OPEN
from swarm.transfer import OUT_CAP

from .swarm_rig import T0, rig  # noqa: F401  (rig: the fixture)

TICK = 1 / 1024  # binary fractions of a second: the schedule's sums are exact
MSG = b"x" * 63 + b"\n"
OUT = select.EPOLLOUT


def test_a_late_swarm_counts_its_own_lateness_in_the_latency(rig: Any) -> None:
    """Coordinated omission: at 100 requests/s the worker is held up for half
    a second (a pause, a busy core).  When it runs again it sends the 50
    overdue requests at once, and an instant server answers them 1 ms later.
    Timed from the actual send, every one took 1 ms, and the stall vanishes
    from the figures; timed from when each was due, as the swarm does, they
    took from 491 ms down to 1 ms.  This test fails if latency is measured
    from the write."""
    t = rig(patterns.Rate(100.0, 1))
    c, far = t.connect(1, T0)
    t.answer_all(c, T0 + 0.001)  # request 0, on time
    late = T0 + 0.5  # the timer due at T0 + 0.01 runs only now
    t.turn(late)
    assert far.wire.count(b"\n") == 51  # the 50 overdue requests left together
    t.answer_all(c, late + 0.001)
    lat = t.worker.tally.latency.summary()
    assert lat["count"] == 51, lat
    assert lat["max_us"] >= 490_000, f"the stall is missing from the latency: {lat}"
    assert 240_000 <= lat["p50_us"] <= 260_000, lat  # half the requests waited over 250 ms
    assert abs(lat["min_us"] - 1000) <= 1  # the server's own time, for the one sent on time


def test_closed_loop_latency_runs_from_the_write(rig: Any) -> None:
    t = rig(patterns.PingPong(2))
    c, far = t.connect(1, T0)
    assert far.wire == MSG * 2
    t.answer_all(c, T0 + 3 * TICK)
    assert far.wire == MSG * 4  # each reply bought the next request
    assert t.worker.tally.latency.summary()["p50_us"] == int(3 * TICK * 1e6)


def test_an_unread_socket_keeps_bytes_then_owes_requests(rig: Any) -> None:
    """Open loop against a peer that reads nothing: bytes queue up to OUT_CAP,
    then requests are owed (counted, their intended times kept), and all of
    them leave in order once the socket drains."""
    t = rig(patterns.Interval(TICK))
    c, far = t.connect(1, T0)  # the first request leaves at once
    assert t.worker.on_fast_path(c) and t.poller.watched[c.fd] & OUT == 0
    far.room = 0  # then the socket buffer is full
    full = OUT_CAP // len(MSG)
    for ticks in (1, full + 1, full + 101):  # each turn sends what fell due since the last
        t.turn(T0 + ticks * TICK)
    assert len(c.out) >= OUT_CAP and c.owed == 100
    assert c.ledger.sent == full + 102 == c.ledger.inflight
    assert c.ledger.pending() == [Batch(T0, full + 102, TICK)]  # intended times, one batch
    assert not t.worker.on_fast_path(c) and t.poller.watched[c.fd] & OUT  # off the fast path while bytes wait
    assert c.bytes_out == len(far.wire) == len(MSG)
    far.room = None
    now = T0 + (full + 101) * TICK  # nothing more falls due meanwhile
    while c.out or c.owed:
        t.turn(now, (c.fd, OUT))
    assert far.wire == MSG * (full + 102) and c.bytes_out == len(far.wire)
    assert t.worker.on_fast_path(c) and t.poller.watched[c.fd] & OUT == 0


def test_a_short_write_keeps_the_rest_for_epollout(rig: Any) -> None:
    t = rig(patterns.PingPong(2))
    c, far = t.connect(1, T0)
    far.room = 10
    t.answer_all(c, T0 + 0.001)  # two replies: two requests to write, 10 bytes fit
    assert bytes(c.out) == (MSG * 2)[10:] and not t.worker.on_fast_path(c)
    far.room = None
    t.turn(T0 + 0.002, (c.fd, OUT))
    assert far.wire == MSG * 4 and not c.out and t.worker.on_fast_path(c)


def test_a_scripted_action_waits_behind_owed_requests(rig: Any) -> None:
    action = patterns.Action(3.5 * TICK, 1, "STATS")
    t = rig(patterns.Interval(TICK), actions=[action])
    c, far = t.connect(1, T0)
    far.room = 0
    t.turn(T0 + 3 * TICK)  # three more due: written nowhere yet
    t.turn(T0 + 3.5 * TICK)  # the action's time
    assert action.outcome == "pending" and action.sent_t == T0 + 3.5 * TICK and c.slow
    far.room = None
    while c.out:
        t.turn(T0 + 3.5 * TICK, (c.fd, OUT))
    assert far.wire == MSG * 4 + b"STATS\n"  # the wire order is the ledger's
    t.answer(c, b"ok\n" * 4 + b'{"model":"x"}\n', T0 + 3.75 * TICK)
    assert action.outcome == "reply" and action.reply == '{"model":"x"}'
    assert c.ledger.answered == 4 and not c.slow and t.worker.on_fast_path(c)  # back on the fast path


def test_the_budget_closes_the_connection_when_all_is_answered(rig: Any) -> None:
    t = rig(patterns.PingPong(3), count=4)
    c, far = t.connect(1, T0)
    t.answer_all(c, T0 + 0.001)  # 3 answered, 1 more sent (the budget was 4)
    assert far.wire == MSG * 4 and c.state == OPEN
    t.answer_all(c, T0 + 0.002)
    (record,) = t.worker.tally.records
    assert record["close"] == "count" and record["replies"] == 4 and record["bytes_sent"] == 4 * len(MSG)
    assert far.closed and c.fd not in t.poller.watched  # epoll forgot it before the close
    assert t.worker.stop_reason == "count"


def test_the_ramp_spaces_the_connects_and_bounds_those_in_progress(rig: Any) -> None:
    t = rig(patterns.Pattern(), clients=4, ramp=1024.0, max_connecting=2)  # a client every TICK
    assert len(t.sockets) == 1  # client 1 at T0; the others wait for their time
    t.turn(T0 + 3 * TICK)  # clients 2, 3, 4 are due; only one more may connect at once
    assert len(t.sockets) == 2
    c1 = t.worker.connection(1)
    assert c1 is not None
    t.turn(T0 + 3 * TICK, (c1.fd, OUT))  # client 1 is connected: room for the next
    assert len(t.sockets) == 3 and c1.state == OPEN and c1.ready


def test_a_refused_connect_is_retried_then_fails_and_ends_the_run(rig: Any) -> None:
    t = rig(patterns.PingPong(1), connect=errno.ECONNREFUSED)  # refused at once, every time
    now = T0
    while t.worker.stop_reason is None:
        now += 0.05
        t.turn(now)
    c = t.worker.connection(1)
    assert c is not None and c.state == CLOSED and c.failed and c.attempts == len(t.sockets) > 3
    assert all(s.closed for s in t.sockets) and not t.poller.watched
    r = t.record()
    assert (r["close"], r["errors"]) == ("connect-failed", {"refused": c.attempts})
    assert t.worker.stop_reason == "all-closed" and now <= T0 + 1.0 + 0.5  # within the window


def test_a_connect_error_reported_by_epollout_is_retried(rig: Any) -> None:
    t = rig(patterns.PingPong(1))
    first = t.sockets[0]
    first.so_error = errno.ECONNREFUSED
    t.turn(T0 + TICK, (first.fd, OUT))
    assert first.closed and first.fd not in t.poller.watched and len(t.sockets) == 1
    t.turn(T0 + 0.06)  # after the first pause (50 ms), a second attempt
    c, far = t.connect(1, T0 + 0.07)
    assert len(t.sockets) == 2 and far is t.sockets[1] and c.ready and far.wire == MSG
    assert c.errors == {"refused": 1} and c.attempts == 2


def test_finish_closes_what_is_open_and_reports(rig: Any) -> None:
    action = patterns.Action(50.0, 1, "STATS")  # its time never comes
    t = rig(patterns.PingPong(1), clients=2, actions=[action])
    c1, _ = t.connect(1, T0)  # client 2 is still connecting at the end
    t.answer_all(c1, T0 + 0.001)
    t.worker.stop("signal")
    t.clock.now = T0 + 0.002
    report = t.worker.finish()
    assert report.end_reason == "signal" and report.clients == 2 and report.ended == T0 + 0.002
    closes = {r["client"]: r["close"] for r in report.records}
    assert closes == {1: "signal", 2: "stopped-connecting"}
    assert report.totals["replies"] == 1 and report.totals["unanswered"] == 1 and report.latency["count"] == 1
    assert report.clients_connected == 1 and report.fast_path == "python"
    assert report.actions[0]["outcome"] == "not-run" and t.poller.closed
    assert all(s.closed for s in t.sockets)
