"""The swarm's bookkeeping: what is in flight, what each reply took, what to report.

No sockets and no clock here: the worker (worker.py) passes every time in,
so all of this is tested by replaying sends and replies (tests/unit).  Only
this module writes a Ledger: the worker's reply step books through
``Ledger.replied``, and what the C fast path did to a connection comes back
as a delta (fastpath.c's struct) that ``Ledger.apply`` adds in.

Rules the worker relies on:

- Replies come back in request order (the line protocol answers in order,
  and so do the protocols the codecs speak), so the oldest request in
  flight is the one a reply answers.
- Pattern requests are tracked in *batches*: ``Batch(t, n, step)`` is n
  requests, the j-th sent (or, open loop, intended) at ``t + j*step``.  A
  closed-loop refill of k requests is one batch; an open-loop schedule
  extends its last batch instead of adding one per request, so a stalled
  server costs one entry, not one per request it missed.
- The oldest batch is kept in the Ledger's own fields (``t n step``), the
  rest in ``later``: when the replies answer the whole oldest batch (always
  so in strict ping-pong), timing them and booking the refill updates a few
  fields and allocates nothing; the count of replies is not kept but
  derived (``answered = sent - in flight``).
- Scripted actions are not batches: ``ActionSent`` records how many pattern
  requests went out before it on the same connection, so the reply that
  arrives when exactly that many pattern replies have been matched is the
  action's.
- Latency is ``reply time - send time`` in whole microseconds (truncated),
  taken in one place (``Ledger._took``); for open-loop batches the send
  time is the *intended* one, so a late swarm or a stalled server shows up
  in the figures (coordinated omission corrected, as wrk2 does).  Replies
  before ``warm_end`` count for the connection but stay out of the
  histogram.  Below 0 (impossible on one monotonic clock; float rounding
  of an intended time at most) a latency counts as 0, and the histogram
  counts how many did (``clamped``).  fastpath.c follows the same rules.
- The timeline keeps [send, reply] pairs for the first requests of each
  connection (``per_conn``) and at most ``timeline_max`` per worker;
  ``capped`` says when some were left out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Protocol

from ioschema import ERROR_KINDS
from ioschema.hist import Histogram
from swarm.patterns import Action

TIMELINE_CHUNK = 64  # timeline pairs a connection reserves from its worker's share at a time


@dataclass(slots=True)
class Batch:
    """``n`` pattern requests in flight, the j-th sent (or due) at ``t + j*step``."""

    t: float
    n: int
    step: float = 0.0


@dataclass(slots=True)
class ActionSent:
    """A scripted request on the wire, behind ``before`` pattern requests."""

    action: Action
    before: int


class Delta(Protocol):
    """What the C fast path did to one connection since it took it
    (fastpath.Delta, fastpath.c's ``delta``): counts to add, and the batch in
    flight now (sent at ``t``; its size never changes there)."""

    t: float
    first: float  # < 0: no reply there
    last: float
    sent: int  # requests booked and refilled, one per reply
    bytes_in: int
    lat_sum: int
    lat_max: int
    pairs: int  # timeline pairs kept, in the pairs handed over with it


class Pair(Protocol):
    sent: float
    reply: float


class Ledger:
    """One connection's requests in flight, and what their replies took."""

    __slots__ = (
        "t", "n", "step", "later", "actions", "sent", "lat_sum", "lat_max",
        "first", "last", "tl", "tl_on", "tl_left", "tl_quota", "tally", "hist",
    )

    def __init__(self, tally: "Tally", timeline_room: int) -> None:
        self.t = 0.0  # the oldest batch, inline (n == 0: nothing in flight)
        self.n = 0
        self.step = 0.0
        self.later: deque[Batch] = deque()
        self.actions: deque[ActionSent] = deque()
        self.sent = 0  # pattern requests sent (or owed: written once the socket drains)
        self.lat_sum = 0  # over every matched reply, warm-up included (microseconds)
        self.lat_max = 0
        self.first: float | None = None
        self.last: float | None = None
        self.tl: list[tuple[float, float]] = []  # (send, reply) pairs
        # Timeline room: ``tl_left`` pairs reserved from the worker's share
        # (in chunks, so a reply touches only its own ledger), ``tl_quota``
        # more that this connection may still reserve; ``tl_on`` until both
        # are spent.
        self.tl_left = 0
        self.tl_quota = timeline_room
        self.tl_on = timeline_room > 0
        self.tally = tally
        self.hist = tally.latency

    # -- sends ---------------------------------------------------------------
    def sent_batch(self, t: float, n: int, step: float = 0.0) -> None:
        """``n`` pattern requests left (or fell due), the j-th at ``t + j*step``."""
        self.sent += n
        if not self.n and not self.later:
            self.t = t
            self.n = n
            self.step = step
            return
        if self.later:
            last = self.later[-1]
            lt, ln, ls = last.t, last.n, last.step
        else:
            last = None
            lt, ln, ls = self.t, self.n, self.step
        # the next slots of the same schedule (or the same instant): extend
        if step:
            contiguous = ls == step and abs(lt + ln * step - t) < 1e-9
        else:
            contiguous = ls == 0.0 and lt == t
        if contiguous:
            if last is None:
                self.n = ln + n
            else:
                last.n = ln + n
            return
        self.later.append(Batch(t, n, step))

    def sent_action(self, action: Action) -> None:
        self.actions.append(ActionSent(action, self.sent))

    def action_next(self) -> bool:
        """Is the next reply on the wire the oldest scripted action's?"""
        return bool(self.actions) and self.actions[0].before == self.answered

    def take_action(self) -> Action:
        """The oldest scripted action in flight: its reply has come."""
        return self.actions.popleft().action

    def drop_actions(self) -> list[Action]:
        """The connection ends: the scripted actions still waiting on it."""
        waiting = [sent.action for sent in self.actions]
        self.actions.clear()
        return waiting

    # -- replies ---------------------------------------------------------------
    def replied(self, k: int, now: float, measure: bool, refill: bool = False) -> int:
        """Match ``k`` replies that arrived at ``now`` with the oldest pattern
        requests; time them (into the histogram when ``measure``); return how
        many matched (the rest are not this protocol's).  ``refill``: each
        matched reply buys a new request, sent at ``now`` (closed loop)."""
        if k == self.n and self.step == 0.0 and not self.later:
            # The common case of a closed loop: the one batch in flight is
            # answered whole.  Its refill is the same batch again, sent now:
            # a few fields change, nothing is allocated (past the timeline).
            t = self.t
            self._took(now - t, k, measure)
            if self.tl_on:
                if self.tl_left >= k:
                    if k == 1:
                        self.tl.append((t, now))
                    else:
                        self.tl.extend([(t, now)] * k)
                    self.tl_left -= k
                else:
                    self._timeline(t, 0.0, k, now)
            if self.first is None:
                self.first = now
            self.last = now
            if refill:
                self.t = now
                self.sent += k
            else:
                self.n = 0
            return k
        done = self._match(k, now, measure)
        if refill and done:
            self.sent_batch(now, done)
        return done

    def _took(self, elapsed: float, m: int, measure: bool) -> None:
        """``m`` replies took ``elapsed`` seconds each: the one place a
        latency is taken (fastpath.c's ``took`` does the same)."""
        us = int(elapsed * 1e6)
        if measure:
            self.hist.record(us, m)  # below 0: counted as 0, and as clamped
        if us < 0:
            us = 0
        self.lat_sum += us * m
        if us > self.lat_max:
            self.lat_max = us

    def _match(self, k: int, now: float, measure: bool) -> int:
        """Any other case: oldest batches first, part of one if need be."""
        left = k
        while left:
            n = self.n
            if not n:
                if not self.later:
                    break
                b = self.later.popleft()
                self.t, self.step = b.t, b.step
                self.n = n = b.n
            t = self.t
            step = self.step
            m = n if n <= left else left
            if step == 0.0:
                self._took(now - t, m, measure)
            else:
                for j in range(m):
                    self._took(now - t - j * step, 1, measure)
                self.t = t + m * step
            if self.tl_on:
                self._timeline(t, step, m, now)
            self.n = n - m
            left -= m
        done = k - left
        if done:
            if self.first is None:
                self.first = now
            self.last = now
        return done

    def _timeline(self, t: float, step: float, m: int, now: float) -> None:
        """Keep the pairs of ``m`` replies, as far as there is room."""
        if self.tl_left < m:
            self._reserve(m - self.tl_left)
        room = min(self.tl_left, m)
        if room < m:
            self.tally.tl_capped = True
        if step == 0.0:
            self.tl.extend([(t, now)] * room)
        else:
            self.tl.extend([(t + j * step, now) for j in range(room)])
        self.tl_left -= room
        if not self.tl_left and not self.tl_quota:
            self.tl_on = False

    def _reserve(self, want: int) -> None:
        """Take room for at least ``want`` more pairs from the worker's share."""
        tally = self.tally
        take = min(max(want, TIMELINE_CHUNK), self.tl_quota, tally.tl_room)
        if take < min(want, self.tl_quota):
            tally.tl_capped = True  # the worker's share is spent
        tally.tl_room -= take
        self.tl_quota -= take
        self.tl_left += take
        if not tally.tl_room:
            self.tl_quota = 0  # nothing more to ask for

    # -- what the C fast path did ---------------------------------------------------
    def apply(self, d: Delta, pairs: Iterable[Pair]) -> None:
        """Add in what fastpath.c booked while it had this connection: every
        reply there answered the whole batch in flight and refilled it."""
        self.t = d.t
        self.sent += d.sent
        self.lat_sum += d.lat_sum
        if d.lat_max > self.lat_max:
            self.lat_max = d.lat_max
        if d.first >= 0 and self.first is None:
            self.first = d.first
        if d.last >= 0:
            self.last = d.last
        if d.pairs:
            self.tl.extend((p.sent, p.reply) for p in islice(pairs, d.pairs))
            self.tl_left -= d.pairs

    # -- what is left ------------------------------------------------------------
    @property
    def inflight(self) -> int:
        """Pattern requests sent (or owed) and not answered."""
        return self.n + sum(b.n for b in self.later)

    @property
    def answered(self) -> int:
        """Pattern replies matched with a request (no counter to keep per reply)."""
        return self.sent - self.n - sum(b.n for b in self.later)

    def pending(self) -> list[Batch]:
        """The unanswered batches, oldest first."""
        head = [Batch(self.t, self.n, self.step)] if self.n else []
        return head + [Batch(b.t, b.n, b.step) for b in self.later]


class Tally:
    """One worker's totals: histograms, counters, records and the timeline."""

    def __init__(self, timeline_max: int, records_max: int) -> None:
        self.latency = Histogram()  # pattern replies after the warm-up, microseconds
        self.connect = Histogram()  # successful connects, handshake included, microseconds
        self.handshake = Histogram()  # TCP connect to ready, protocols with a handshake
        self.tl_room = timeline_max
        self.tl_capped = False
        self.timeline: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.records_max = records_max
        self.records_dropped = 0
        self.totals = {
            "attempted": 0, "connected": 0, "tcp_connected": 0, "failed": 0, "never_started": 0,
            "sent": 0, "replies": 0, "replies_measured": 0, "sent_measured": 0, "unanswered": 0,
            "unexpected": 0, "error_replies": 0, "bytes_sent": 0, "bytes_received": 0,
        }
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.closed_by: dict[str, int] = {}

    def finished(self, record: dict[str, Any], ledger: Ledger, sends: bool) -> None:
        """Add one finished connection: its counts to the totals, its record
        and timeline (with its unanswered requests as [sent, null]) if room."""
        self._count(record)
        # room it reserved and did not use goes back to the worker's share;
        # its unanswered requests may take what is left of its own allowance
        allowance = ledger.tl_left + ledger.tl_quota
        self.tl_room += ledger.tl_left
        ledger.tl_left = ledger.tl_quota = 0
        ledger.tl_on = False
        kept, ledger.tl = ledger.tl, []
        if len(self.records) >= self.records_max:
            self.records_dropped += 1
            return
        self.records.append(record)
        if sends and (kept or ledger.inflight):  # its timeline goes with its record (storm makes many)
            self._timeline(record, kept, ledger.pending(), allowance)

    def _count(self, record: dict[str, Any]) -> None:
        totals = self.totals
        totals["attempted"] += 1
        if record["connect_end"] is not None:
            totals["connected"] += 1
        elif record["close"] == "connect-failed" or record["close"] in ERROR_KINDS:
            totals["failed"] += 1  # never connected, or its handshake failed
        if record["tcp_connect_end"] is not None:
            totals["tcp_connected"] += 1
        totals["error_replies"] += record["error_replies"] or 0
        totals["unexpected"] += record.pop("unexpected", 0)
        for key in ("sent", "replies", "bytes_sent", "bytes_received", "unanswered"):
            totals[key] += record[key]
        for kind, n in record["errors"].items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        self.closed_by[record["close"]] = self.closed_by.get(record["close"], 0) + 1

    def _timeline(self, record: dict[str, Any], kept: list[tuple[float, float]], unanswered: list[Batch],
                  allowance: int) -> None:
        pairs: list[list[float | None]] = [[round(s, 6), round(r, 6)] for s, r in kept]
        room = min(allowance, self.tl_room)
        for b in unanswered:
            take = min(b.n, room)
            pairs.extend([round(b.t + j * b.step, 6), None] for j in range(take))
            room -= take
            self.tl_room -= take
            if take < b.n:
                self.tl_capped = True
        if pairs:
            self.timeline.append({"client": record["client"], "conn": record["conn"], "pairs": pairs})
