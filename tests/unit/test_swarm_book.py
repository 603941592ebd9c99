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
    assert lg.pending() == [Batch(10.0, 3, 0.0), Batch(10.0 + 4 * TICK, 1, 0.0)]
    lg.replied(4, 10.0 + 6 * TICK, True)
    assert lg.pending() == [] and lg.inflight == 0
    us = [int(4 * TICK * 1e6)] + [int(6 * TICK * 1e6)] * 3 + [int(2 * TICK * 1e6)]
    assert lg.hist.counts == Histogram.of(us).counts
    assert lg.lat_sum == sum(us) and lg.lat_max == max(us)


def test_an_open_loop_schedule_extends_its_last_batch() -> None:
    lg = ledger()
    lg.sent_batch(5.0, 1, TICK)
    lg.sent_batch(5.0 + TICK, 3, TICK)  # the next slots of the same schedule
    assert lg.pending() == [Batch(5.0, 4, TICK)]
    lg.sent_batch(5.0 + 9 * TICK, 1, TICK)  # a gap: a batch of its own
    assert lg.pending() == [Batch(5.0, 4, TICK), Batch(5.0 + 9 * TICK, 1, TICK)]
    assert isinstance(lg.later[0], Batch)
    lg.replied(2, 5.0 + 10 * TICK, True)
    assert lg.pending() == [Batch(5.0 + 2 * TICK, 2, TICK), Batch(5.0 + 9 * TICK, 1, TICK)]


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
    assert lg.action_next() and lg.actions[0].before == 2
    assert lg.take_action().send == "STATS"
    assert not lg.action_next() and lg.replied(1, 1.3, True) == 1


def test_actions_still_waiting_when_the_connection_ends_are_handed_over() -> None:
    lg = ledger()
    a, b = Action(0.5, 1, "STATS"), Action(0.6, 1, "SLEEP 10")
    lg.sent_action(a)
    lg.sent_action(b)
    assert lg.drop_actions() == [a, b] and not lg.actions and not lg.action_next()


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
                us = int((now - sent) * 1e6)  # below 0 when a schedule runs ahead of now
                latencies.append(max(us, 0))  # clamped, and counted by the histogram
                if measure:
                    measured.append(us)
                if len(pairs) < timeline:
                    pairs.append((sent, now))
    assert lg.inflight == len(queue) and lg.answered == len(latencies)
    assert [b.t + j * b.step for b in lg.pending() for j in range(b.n)] == queue
    want = Histogram.of(measured)
    assert lg.hist.counts == want.counts
    assert (lg.hist.total, lg.hist.sum, lg.hist.min, lg.hist.max) == (want.total, want.sum, want.min, want.max)
    assert lg.hist.clamped == want.clamped == sum(1 for us in measured if us < 0)
    assert lg.lat_sum == sum(latencies) and lg.lat_max == max(latencies, default=0)
    assert lg.tl == pairs


@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=200))
def test_the_common_case_records_as_histogram_record(values: list[int]) -> None:
    """Strict ping-pong, the common case, records as Histogram.record does."""
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


def test_a_latency_below_zero_counts_as_zero_and_as_clamped() -> None:
    """One rule everywhere (fastpath.c too): truncated to whole microseconds,
    below 0 counted as 0, and the histogram says how many were."""
    lg = ledger()
    lg.sent_batch(2.0, 2)
    assert lg.replied(2, 2.0 - TICK, True) == 2  # a reply "before" its request: a clock gone wrong
    assert (lg.lat_sum, lg.lat_max, lg.hist.min, lg.hist.max, lg.hist.total, lg.hist.clamped) == (0, 0, 0, 0, 2, 2)
    lg.sent_batch(3.0, 1)
    lg.replied(1, 3.0 - TICK, False)  # warm-up: in the connection's figures, not the histogram's
    assert (lg.lat_sum, lg.hist.total, lg.hist.clamped) == (0, 2, 2)
    assert Histogram.from_json(lg.hist.to_json()).clamped == 2


class FakeDelta:
    """What fastpath.c hands back for a connection (fastpath.Delta's fields)."""

    def __init__(self, **fields: float) -> None:
        self.__dict__.update(dict(t=0.0, first=-1.0, last=-1.0, sent=0, bytes_in=0, lat_sum=0, lat_max=0,
                                  pairs=0), **fields)


class FakePair:
    def __init__(self, sent: float, reply: float) -> None:
        self.sent, self.reply = sent, reply


def test_what_c_booked_is_added_in_as_the_ledger_would_have_booked_it() -> None:
    """C answers the one batch in flight whole and refills it, reply after
    reply; applying its delta leaves the ledger as replying here would."""
    here, there = ledger(timeline=10), ledger(timeline=10)
    for lg in (here, there):
        lg.sent_batch(1.0, 2)
        lg.replied(2, 1.0 + TICK, True, refill=True)  # the first in Python: it reserves timeline room
    times = [1.0 + TICK * i for i in (3, 4, 7)]
    sent = [1.0 + TICK] + times[:-1]
    for now in times:
        here.replied(2, now, True, refill=True)
    us = [int((r - s) * 1e6) for s, r in zip(sent, times)]
    pairs = [FakePair(s, r) for s, r in zip(sent, times) for _ in range(2)]
    there.apply(FakeDelta(t=times[-1], first=times[0], last=times[-1], sent=6, lat_sum=2 * sum(us),
                          lat_max=max(us), pairs=6), pairs)
    for name in ("t", "n", "sent", "answered", "inflight", "lat_sum", "lat_max", "last", "tl", "tl_left"):
        assert getattr(there, name) == getattr(here, name), name
    assert there.first == here.first == 1.0 + TICK  # the first reply of all, not C's first
