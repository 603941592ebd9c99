"""The swarm's bookkeeping without sockets: batches in flight, latency
recording, the timeline's caps and scripted actions, replayed against a
plain model of "one send time per request, answered in order"."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.book import TIMELINE_CHUNK, Batch, Ledger, Tally
from ioschema.hist import Histogram
from swarm.patterns import Action

TICK = 1 / 1024  # binary fractions of a second: every sum below is exact


def ledger(timeline: int = 0, timeline_max: int = 10**6) -> Ledger:
    return Ledger(Tally(timeline_max, 100), timeline)


def test_strict_pingpong_reuses_one_batch() -> None:
    lg = ledger()
    lg.sent_batch(1.0, 1)
    for i in range(1, 6):
        now = 1.0 + i * 0.002
        assert lg.replied(1, now, True, refill=True) == 1
        assert (lg.t, lg.n, lg.step, list(lg.later)) == (now, 1, 0.0, [])  # refilled in place
    assert (lg.sent, lg.answered, lg.inflight) == (6, 5, 1)
    assert lg.hist.total == 5 and lg.hist.min == lg.hist.max == 2000
    assert lg.lat_sum == 5 * 2000 and lg.lat_max == 2000


def test_a_deep_pipeline_answered_in_parts() -> None:
    lg = ledger()
    lg.sent_batch(10.0, 4)
    lg.replied(1, 10.0 + 4 * TICK, True, refill=True)  # one answered, one more sent
    assert lg.pending() == [(10.0, 3, 0.0), (10.0 + 4 * TICK, 1, 0.0)]
    lg.replied(4, 10.0 + 6 * TICK, True)
    assert lg.pending() == [] and lg.inflight == 0
    us = [int(4 * TICK * 1e6)] + [int(6 * TICK * 1e6)] * 3 + [int(2 * TICK * 1e6)]
    assert lg.hist.counts == Histogram.of(us).counts
    assert lg.lat_sum == sum(us) and lg.lat_max == max(us)


def test_an_open_loop_schedule_extends_its_last_batch() -> None:
    lg = ledger()
    lg.sent_batch(5.0, 1, TICK)
    lg.sent_batch(5.0 + TICK, 3, TICK)  # the next slots of the same schedule
    assert lg.pending() == [(5.0, 4, TICK)]
    lg.sent_batch(5.0 + 9 * TICK, 1, TICK)  # a gap: a batch of its own
    assert lg.pending() == [(5.0, 4, TICK), (5.0 + 9 * TICK, 1, TICK)]
    assert isinstance(lg.later[0], Batch)
    lg.replied(2, 5.0 + 10 * TICK, True)
    assert lg.pending() == [(5.0 + 2 * TICK, 2, TICK), (5.0 + 9 * TICK, 1, TICK)]


def test_more_replies_than_requests_are_not_matched() -> None:
    lg = ledger()
    lg.sent_batch(1.0, 2)
    assert lg.replied(5, 1.5, True) == 2
    assert lg.answered == 2 and lg.hist.total == 2


def test_warm_up_replies_count_but_stay_out_of_the_histogram() -> None:
    lg = ledger()
    lg.sent_batch(1.0, 1)
    lg.replied(1, 1.25, False, refill=True)
    lg.replied(1, 1.5, True)
    assert lg.answered == 2 and lg.hist.total == 1 and lg.hist.max == 250_000
    assert lg.first == 1.25 and lg.last == 1.5 and lg.lat_max == 250_000


def test_an_action_is_answered_after_the_requests_before_it() -> None:
    lg = ledger()
    lg.sent_batch(1.0, 2)
    lg.sent_action(Action(0.5, 1, "STATS"))
    lg.sent_batch(1.1, 1)
    assert not lg.action_next()
    lg.replied(2, 1.2, True)
    assert lg.action_next()
    sent = lg.actions.popleft()
    assert sent.action.send == "STATS" and sent.before == 2
    assert not lg.action_next() and lg.replied(1, 1.3, True) == 1


# -- the timeline's caps --------------------------------------------------------

def test_timeline_keeps_the_first_requests_of_a_connection() -> None:
    lg = ledger(timeline=3)
    lg.sent_batch(1.0, 1)
    for i in range(1, 6):
        lg.replied(1, 1.0 + i * TICK, True, refill=True)
    assert lg.tl == [(1.0 + i * TICK, 1.0 + (i + 1) * TICK) for i in range(3)]
    assert not lg.tl_on and lg.tally.tl_capped  # some were left out


def test_timeline_worker_share_is_split_between_connections() -> None:
    tally = Tally(timeline_max=100, records_max=10)
    a, b = Ledger(tally, 1000), Ledger(tally, 1000)
    for lg in (a, b):
        lg.sent_batch(1.0, 1)
    for i in range(1, 200):
        for lg in (a, b):
            lg.replied(1, 1.0 + i * TICK, True, refill=True)
    assert len(a.tl) + len(b.tl) == 100 and tally.tl_capped
    assert len(a.tl) >= TIMELINE_CHUNK  # each reserved in chunks
    assert tally.tl_room == 0


def test_finished_connections_return_unused_room_and_show_the_unanswered() -> None:
    tally = Tally(timeline_max=200, records_max=10)
    lg = Ledger(tally, 10)
    lg.sent_batch(1.0, 4)
    lg.replied(1, 2.0, True)
    assert tally.tl_room == 200 - 10  # reserved its whole allowance (less than a chunk)
    record = {"client": 1, "conn": "c", "connect_end": 0.5, "tcp_connect_end": 0.5, "close": "duration",
              "sent": 4, "replies": 1, "bytes_sent": 0, "bytes_received": 0, "unanswered": 3, "errors": {},
              "error_replies": None}
    tally.finished(record, lg, sends=True)
    (conn,) = tally.timeline
    assert conn["pairs"] == [[1.0, 2.0], [1.0, None], [1.0, None], [1.0, None]]
    assert tally.tl_room == 200 - 4 and tally.totals["unanswered"] == 3


def test_records_beyond_the_cap_are_counted_not_kept() -> None:
    tally = Tally(timeline_max=10, records_max=1)
    for client in (1, 2):
        record = {"client": client, "conn": None, "connect_end": None, "tcp_connect_end": None,
                  "close": "connect-failed", "sent": 0, "replies": 0, "bytes_sent": 0, "bytes_received": 0,
                  "unanswered": 0, "errors": {"refused": 2}, "error_replies": None}
        tally.finished(record, ledger(), sends=True)
    assert len(tally.records) == 1 and tally.records_dropped == 1
    assert tally.totals["failed"] == 2 and tally.errors["refused"] == 4
    assert tally.closed_by == {"connect-failed": 2}


# -- against a plain model ---------------------------------------------------------

# An operation: ("send", n, step_ticks) at the current time, or ("reply", k),
# each after ``gap`` ticks.  Open-loop sends are intended on a schedule that
# may lie in the past (a late swarm), closed-loop ones leave now.
ops = st.lists(st.one_of(
    st.tuples(st.just("send"), st.integers(1, 5), st.integers(0, 3), st.integers(0, 20)),
    st.tuples(st.just("reply"), st.integers(1, 6), st.integers(0, 20), st.booleans()),
), max_size=40)


@settings(max_examples=300)
@given(ops, st.integers(0, 8))
def test_ledger_matches_one_send_time_per_request(ops: list[tuple], timeline: int) -> None:
    lg = ledger(timeline=timeline)
    queue: list[float] = []  # the model: every request's own send time, in order
    latencies: list[int] = []
    measured: list[int] = []
    pairs: list[tuple[float, float]] = []
    now = 100.0
    for op in ops:
        if op[0] == "send":
            _, n, step_ticks, back = op
            step = step_ticks * TICK
            t = now - back * TICK if step else now  # open loop: intended, maybe late
            lg.sent_batch(t, n, step)
            queue.extend(t + j * step for j in range(n))
        else:
            _, k, gap, measure = op
            now += gap * TICK
            got = lg.replied(k, now, measure)
            take, queue = queue[:k], queue[k:]
            assert got == len(take)
            for sent in take:
                us = int((now - sent) * 1e6)
                latencies.append(us)
                if measure:
                    measured.append(us)
                if len(pairs) < timeline:
                    pairs.append((sent, now))
    assert lg.inflight == len(queue) and lg.answered == len(latencies)
    assert [t + j * step for t, n, step in lg.pending() for j in range(n)] == queue
    want = Histogram.of(measured)
    assert lg.hist.counts == want.counts
    assert (lg.hist.total, lg.hist.sum, lg.hist.min, lg.hist.max) == (want.total, want.sum, want.min, want.max)
    assert lg.lat_sum == sum(latencies) and lg.lat_max == max(latencies, default=0)
    assert lg.tl == pairs


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=200))
def test_the_inlined_recording_is_histogram_record(values: list[int]) -> None:
    """The fast path records by hand into the histogram's fields."""
    lg = ledger()
    lg.sent_batch(0.0, 1)
    t = 0.0
    for us in values:
        now = t + us / 1e6
        lg.replied(1, now, True, refill=True)  # the reply to the request sent at t
        t = now
    want = Histogram()
    t = 0.0
    for us in values:
        now = t + us / 1e6
        want.record(int((now - t) * 1e6))
        t = now
    assert lg.hist.counts == want.counts
    assert (lg.hist.total, lg.hist.sum, lg.hist.min, lg.hist.max) == (want.total, want.sum, want.min, want.max)
