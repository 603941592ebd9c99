"""Every judge, table-driven, without Docker.

A judge turns what a scenario's probes recorded into verdicts; a green
verdict must mean "measured, and it held".  For each registered judge the
table below gives fake evidence (swarm results, server events, process-table
samples, CPU readings, STATS answers, host load) and the verdict each key
must get, compared with `is`: True (held), False (contradicted) or None
(not judged: evidence missing).  Every table has the held and contradicted
cases and the empty, zero, missing and partial ones; ABSURD gives each judge
evidence outside its domain (lab/checks/domain.py: NaN, counters running
backwards, replies before their sends, a client counted twice, an empty
process table, work that did no work), each not judged for its own reason.
A judge registered without both, or whose rows do not reach every outcome
(held, failed, not judged, and absurd -> not judged), fails
`test_every_registered_judge_has_a_table`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from lab import checks
from lab.checks import judges, runner
from lab.engine import Limits
from lab.errors import LabError, UsageError
from lab.measure import host
from lab.measure.cgroup import Cpu
from lab.measure.procs import Sample
from lab.plan import models, scenarios
from lab.plan.models import Model
from lab.run.probe import Probe

T0 = 1000.0  # host monotonic time the probe began
SCENARIOS = scenarios.all_scenarios()


# -- fakes -----------------------------------------------------------------------

class FakeEvents:
    """The server's trace, as lab.measure.events.EventStream answers it."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def matching(self, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [e for e in self.events if match(e)]

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float, count: int = 1,
                 what: str = "") -> dict[str, Any]:
        found = self.matching(match)
        if len(found) < count:  # what the real stream does once its bound passes
            raise AssertionError(f"{len(found)} of {count} {what}")
        return found[count - 1]


@dataclass
class FakeContainer:
    """The server's unit, as far as the judges ask: its limits."""

    pids_limit: int | None = 200

    def limits(self) -> Limits:
        return Limits(pids=self.pids_limit)


class FakeTarget:
    def __init__(self, events: list[dict[str, Any]] | None = None, alive: bool = True,
                 after: Sample | None = None, pids_limit: int | None = 200) -> None:
        self.events = FakeEvents(events or [])
        self._alive = alive
        self._after = after
        self.container = FakeContainer(pids_limit)

    def alive(self) -> bool:
        return self._alive

    def sample(self) -> Sample:
        if self._after is None:
            raise LabError("the server is gone")
        return self._after


class FakeSampler:
    """measure.Sampler's answer: CPU seconds by time t, at ``cores`` from T0."""

    def __init__(self, cores: float, until: float = T0 + 100) -> None:
        self.cores, self.until = cores, until

    def at(self, t: float) -> float | None:
        return (t - T0) * self.cores if T0 <= t <= self.until else None


class FakeLoad:
    """What the host could give during a probe: free cores over any window."""

    def __init__(self, free: float | None, cpus: int = 2) -> None:
        self.free, self.cpus = free, cpus

    def free_cores(self, start: float | None = None, end: float | None = None) -> float | None:
        return self.free


def model(expect: dict[str, Any], workers: int | None = None) -> Model:
    return Model("fake", "s", "d", expect, workers, {"expect": expect}, Path("services/fake/model.yaml"))


def probe(results: dict[str, Any], name: str = "main", output: str = "", length: float = 3.0) -> Probe:
    results.setdefault("ended", {"monotonic": T0 + length})
    return Probe(name, results, 0, T0, T0 + length, output)


def context(scenario: str, expect: dict[str, Any], *, workers: int | None = None,
            target: FakeTarget | None = None, probes: dict[str, Probe] | None = None,
            host: dict[str, Any] | None = None, **rest: Any) -> checks.Context:
    ctx = checks.Context(model(expect, workers), SCENARIOS[scenario], target or FakeTarget(),
                         dict(checks.tolerances(model(expect, workers))))
    ctx.probes.update(probes or {})
    for name, value in rest.items():
        setattr(ctx, name, value)
    ctx.host = host or {}  # what the host could give, per probe ("idle": the idle window)
    return ctx


def judged(judge: str, ctx: checks.Context) -> dict[str, bool | None]:
    verdicts = judges.JUDGES[judge](ctx)
    for v in verdicts:
        if v.ok is None:
            assert v.observed.startswith("not judged: "), v.observed
    return {v.expect: v.ok for v in verdicts}


# -- idle_cpu ----------------------------------------------------------------------

def idle(want: str, readings: list[Cpu], free: float | None = 2.0) -> checks.Context:
    return context("idle-cpu", {"idle_cpu": want}, idle=readings,
                   host={} if free is None else {"idle": FakeLoad(free)})


IDLE = [
    ("held-idle", lambda: idle("idle", [Cpu(T0, 10.0), Cpu(T0 + 1, 10.01)]), {"idle_cpu": True}),
    ("held-busy", lambda: idle("busy", [Cpu(T0, 0.0), Cpu(T0 + 1, 0.95)]), {"idle_cpu": True}),
    ("held-idle-on-a-busy-host", lambda: idle("idle", [Cpu(T0, 1.0), Cpu(T0 + 1, 1.01)], free=0.1),
     {"idle_cpu": True}),
    ("contradicted-idle", lambda: idle("idle", [Cpu(T0, 0.0), Cpu(T0 + 1, 0.9)]), {"idle_cpu": False}),
    ("contradicted-busy", lambda: idle("busy", [Cpu(T0, 0.0), Cpu(T0 + 1, 0.01)]), {"idle_cpu": False}),
    ("empty-no-readings", lambda: idle("idle", []), {"idle_cpu": None}),
    ("zero-window", lambda: idle("idle", [Cpu(T0, 0.0), Cpu(T0, 0.0)]), {"idle_cpu": None}),
    ("missing-cpu-figure", lambda: idle("idle", [Cpu(T0, None), Cpu(T0 + 1, None)]),  # type: ignore[arg-type]
     {"idle_cpu": None}),
    ("missing-host-load-when-low", lambda: idle("busy", [Cpu(T0, 0.0), Cpu(T0 + 1, 0.3)], free=None),
     {"idle_cpu": None}),
    ("partial-one-reading", lambda: idle("busy", [Cpu(T0, 0.0)]), {"idle_cpu": None}),
    ("busy-host-starved-the-poller", lambda: idle("busy", [Cpu(T0, 0.0), Cpu(T0 + 1, 0.3)], free=0.4),
     {"idle_cpu": None}),
]


# -- served_at_once ----------------------------------------------------------------

def served(want: Any, spans: list[tuple[float, float] | None], *, clients: int | None = None,
           workers: int | None = None, trace: bool = True, samples: list[Sample] | None = None,
           thread_count: int | None = None, main: bool = True) -> checks.Context:
    """``spans``: per client, when the server served it (None: connected, never read)."""
    connections, events = [], []
    for i, span in enumerate(spans, 1):
        conn = f"10.0.0.2:{4000 + i}"
        connections.append({"client": i, "conn": conn, "close": "count"})
        if trace:
            events.append({"ev": "accept", "conn": conn, "t": T0 + 0.01 * i})
            if span is not None:
                events += [{"ev": "recv", "conn": conn, "bytes": 10, "t": T0 + span[0]},
                           {"ev": "close", "conn": conn, "t": T0 + span[1]}]
    for i in range(len(spans) + 1, (clients or len(spans)) + 1):  # asked, never connected
        connections.append({"client": i, "conn": None, "close": "connect-failed"})
    expect: dict[str, Any] = {"peak_served": want}
    if thread_count is not None:
        expect["thread_count"] = thread_count
    results = {"connections": connections, "summary": {"clients": clients or len(spans)}}
    return context("served-at-once", expect, workers=workers, target=FakeTarget(events),
                   probes={"main": probe(results)} if main else {}, samples={"main": samples or []})


def threads(n: int, t: float = 0.5) -> Sample:
    return Sample(T0 + t, 1, n, {7: n})


TOGETHER = [(0.1, 1.0), (0.1, 1.0), (0.1, 1.0)]
ONE_BY_ONE = [(0.1, 1.0), (1.0, 2.0), (2.0, 3.0)]
SERVED = [
    ("held-all", lambda: served("all", TOGETHER), {"peak_served": True}),
    ("held-one", lambda: served(1, ONE_BY_ONE), {"peak_served": True}),
    ("held-workers", lambda: served("workers", [(0.1, 1.0)] * 4 + [(1.0, 2.0)], workers=4),
     {"peak_served": True}),
    ("held-thread-count", lambda: served("all", TOGETHER, samples=[threads(1)], thread_count=1),
     {"peak_served": True, "thread_count": True}),
    ("contradicted-all", lambda: served("all", ONE_BY_ONE), {"peak_served": False}),
    ("contradicted-one", lambda: served(1, TOGETHER), {"peak_served": False}),
    ("contradicted-a-waiting-client-served-early",
     lambda: served("workers", [(0.1, 1.0)] * 3 + [(0.5, 1.0), (0.6, 2.0)], workers=4), {"peak_served": False}),
    ("contradicted-thread-count", lambda: served("all", TOGETHER, samples=[threads(3)], thread_count=1),
     {"peak_served": True, "thread_count": False}),
    ("contradicted-a-connected-client-never-served", lambda: served("all", [(0.1, 1.0), (0.1, 1.0), None]),
     {"peak_served": False}),
    ("empty-no-clients", lambda: served("all", [], clients=3), {"peak_served": None}),
    ("empty-no-samples", lambda: served("all", TOGETHER, samples=[], thread_count=1),
     {"peak_served": True, "thread_count": None}),
    ("zero-no-server-trace", lambda: served("all", TOGETHER, trace=False), {"peak_served": None}),
    ("zero-workers-undeclared", lambda: served("workers", TOGETHER, workers=None), {"peak_served": None}),
    ("missing-probe", lambda: served("all", TOGETHER, main=False), {"peak_served": None}),
    ("missing-threads-in-samples", lambda: served("all", TOGETHER, samples=[Sample(T0 + 0.5, 0, 0, {})],
                                                  thread_count=1),
     {"peak_served": True, "thread_count": None}),
    ("partial-one-of-four-connected", lambda: served("all", [(0.1, 1.0)], clients=4), {"peak_served": False}),
    ("partial-samples-before-serving", lambda: served("all", TOGETHER, samples=[threads(1, t=0.0)],
                                                      thread_count=1),
     {"peak_served": True, "thread_count": None}),
]


# -- growth --------------------------------------------------------------------------

def grow(threads_want: str, processes_want: str, series: list[tuple[float, int, int]],
         after: tuple[int, int] | None = (1, 1), connected: int = 6) -> checks.Context:
    """``series``: samples (t, threads, processes); clients connect at 0.1 .. 0.6."""
    connections = [{"client": i, "conn": f"c{i}", "connect_end": T0 + 0.1 * i, "close": "duration"}
                   for i in range(1, connected + 1)]
    connections += [{"client": i, "conn": None, "close": "connect-failed"} for i in range(connected + 1, 7)]
    closes = [{"ev": "close", "conn": f"c{i}", "t": T0 + 1.3} for i in range(1, connected + 1)]
    samples = [Sample(T0 + t, p, th, {7 + n: 1 for n in range(p)}) for t, th, p in series]
    return context("growth", {"threads": threads_want, "processes": processes_want},
                   target=FakeTarget(closes, after=Sample(T0 + 2, after[1], after[0], {}) if after else None),
                   probes={"main": probe({"connections": connections, "summary": {"clients": 6}})},
                   samples={"main": samples})


FLAT = [(t / 10, 1, 1) for t in range(10)]
STAIRS = [(t / 10, 1 + min(t, 6), 1) for t in range(10)]  # a thread per client, the last after 0.6 s
GROWTH = [
    ("held-fixed", lambda: grow("fixed", "fixed", FLAT), {"threads": True, "processes": True}),
    ("held-per-client", lambda: grow("per-client", "fixed", STAIRS), {"threads": True, "processes": True}),
    ("contradicted-per-client", lambda: grow("per-client", "fixed", FLAT), {"threads": False, "processes": True}),
    ("contradicted-fixed", lambda: grow("fixed", "fixed", STAIRS), {"threads": False, "processes": True}),
    ("contradicted-not-back", lambda: grow("per-client", "fixed", STAIRS, after=(5, 1)),
     {"threads": False, "processes": True}),
    ("empty-no-samples", lambda: grow("fixed", "fixed", []), {"threads": None, "processes": None}),
    ("zero-clients", lambda: grow("per-client", "fixed", FLAT, connected=0), {"threads": None, "processes": None}),
    ("missing-sample-after", lambda: grow("fixed", "fixed", FLAT, after=None), {"threads": None, "processes": None}),
    ("partial-one-early-sample", lambda: grow("fixed", "fixed", [(0.0, 1, 1)]),
     {"threads": None, "processes": None}),
    ("partial-sampler-stopped-before-the-last-connect", lambda: grow("fixed", "fixed", FLAT[:4]),
     {"threads": None, "processes": None}),
    ("partial-half-connected", lambda: grow("per-client", "fixed", STAIRS, connected=3),
     {"threads": None, "processes": None}),
]


# -- would_block ---------------------------------------------------------------------

def wouldblock(before: dict[str, Any] | None, after: dict[str, Any] | None, replies: int = 25,
               has_after: bool = True) -> checks.Context:
    stats = {"main:before": before}
    if has_after:
        stats["main:after"] = after
    return context("would-block", {"wouldblock_counter": True}, stats=stats,
                   probes={"main": probe({"summary": {"clients": 1, "replies": replies}})})


STATS = {"model": "m", "pid": 7, "accepted": 1, "connections": 1}
WOULD_BLOCK = [
    ("held", lambda: wouldblock({**STATS, "wouldblock": 10}, {**STATS, "wouldblock": 900}),
     {"wouldblock_counter": True}),
    ("contradicted", lambda: wouldblock({**STATS, "wouldblock": 10}, {**STATS, "wouldblock": 12}),
     {"wouldblock_counter": False}),
    ("contradicted-never-counted", lambda: wouldblock(STATS, STATS), {"wouldblock_counter": False}),
    ("empty-stats-unanswered", lambda: wouldblock(None, None), {"wouldblock_counter": None}),
    ("zero-requests", lambda: wouldblock({**STATS, "wouldblock": 10}, {**STATS, "wouldblock": 15}, replies=0),
     {"wouldblock_counter": None}),
    ("missing-after", lambda: wouldblock({**STATS, "wouldblock": 10}, None, has_after=False),
     {"wouldblock_counter": None}),
    ("partial-before-only", lambda: wouldblock({**STATS, "wouldblock": 10}, None), {"wouldblock_counter": None}),
]


# -- stalls --------------------------------------------------------------------------

def stalls(block: bool, sleep: bool, *, free: float | None = 2.0, others: int = 2, block_outcome: str = "reply",
           actions: bool = True, answered_after_block: float | None = 1.0, timeline: bool = True,
           work: bool = False) -> checks.Context:
    """Client 1 sends BLOCK 500 at 0.5 s and SLEEP 500 at 1.5 s; the others
    send every 50 ms, answered at once, except that during the BLOCK their
    replies wait until ``answered_after_block`` (None: never answered)."""
    conns = []
    for client in range(2, 2 + others):
        pairs = []
        for k in range(48):
            sent = T0 + 0.05 * k
            got = sent + 0.002
            if 0.5 <= sent - T0 < 1.0 and block_outcome == "reply":
                got = None if answered_after_block is None else T0 + max(answered_after_block, sent - T0) + 0.002
            elif sent - T0 >= 0.5 and block_outcome != "reply":
                got = None  # the server died with the BLOCK
            pairs.append([sent, got])
        conns.append({"client": client, "conn": f"c{client}", "pairs": pairs})
    died = block_outcome != "reply"  # the connection (or the server) is gone before the SLEEP
    acts = [{"client": 1, "send": "BLOCK 500", "sent_t": T0 + 0.5, "outcome": block_outcome,
             "latency_ms": None if died else 500.0},
            {"client": 1, "send": "SLEEP 500", "sent_t": None if died else T0 + 1.5,
             "outcome": "not-connected" if died else "reply", "latency_ms": None if died else 500.0}]
    connections = [{"client": c, "conn": f"c{c}", "close": "duration"} for c in range(1, 2 + others)]
    connections += [{"client": c, "conn": None, "close": "connect-failed"} for c in range(2 + others, 4)]
    results = {"actions": acts if actions else [], "connections": connections,
               "timeline": {"conns": conns if timeline else []}, "summary": {"clients": 3}}
    expect = {"block_stalls_others": block, "sleep_stalls_others": sleep}
    if work:  # declared, but judged by cpu-stall, not by this scenario
        expect["work_stalls_others"] = True
    return context("stalls", expect, probes={"main": probe(results, length=2.4)},
                   host={} if free is None else {"main": FakeLoad(free)})


STALLS = [
    ("held-loop", lambda: stalls(True, False), {"block_stalls_others": True, "sleep_stalls_others": True}),
    ("held-work-declared-but-judged-by-cpu-stall", lambda: stalls(True, False, work=True),
     {"block_stalls_others": True, "sleep_stalls_others": True}),
    ("held-threads", lambda: stalls(False, False, answered_after_block=0.0),
     {"block_stalls_others": True, "sleep_stalls_others": True}),
    ("held-not-stalled-on-a-busy-host", lambda: stalls(False, False, answered_after_block=0.0, free=0.2),
     {"block_stalls_others": True, "sleep_stalls_others": True}),
    ("contradicted", lambda: stalls(False, True), {"block_stalls_others": False, "sleep_stalls_others": False}),
    ("contradicted-in-between", lambda: stalls(True, False, answered_after_block=0.72),
     {"block_stalls_others": False, "sleep_stalls_others": True}),
    ("busy-host-stalled", lambda: stalls(True, False, free=0.3),
     {"block_stalls_others": None, "sleep_stalls_others": True}),
    ("empty-no-actions", lambda: stalls(True, False, actions=False),
     {"block_stalls_others": None, "sleep_stalls_others": None}),
    ("zero-other-requests", lambda: stalls(True, False, timeline=False),
     {"block_stalls_others": None, "sleep_stalls_others": None}),
    ("missing-host-load-when-late", lambda: stalls(True, False, free=None),
     {"block_stalls_others": None, "sleep_stalls_others": True}),
    ("missing-reply-to-block-server-died", lambda: stalls(True, True, block_outcome="eof"),
     {"block_stalls_others": None, "sleep_stalls_others": None}),
    ("partial-others-never-connected", lambda: stalls(True, False, others=0),
     {"block_stalls_others": None, "sleep_stalls_others": None}),
    ("partial-one-other-missing", lambda: stalls(True, False, others=1),
     {"block_stalls_others": None, "sleep_stalls_others": None}),
]


def work_stall(want: bool, wait: float | None, *, own: float | None = 0.5, free: float | None = 2.0,
               others: int = 2, outcome: str = "reply", sent: bool = True, stamped: bool = True) -> checks.Context:
    """Client 1 sends WORK 3000000 at 0.4 s, answered ``own`` seconds later;
    the others send every 50 ms, answered in 2 ms except while the WORK
    runs: then each waits ``wait`` seconds (None: until the WORK returns)."""
    end = 0.4 + (own or 0.0)
    conns = []
    for client in range(2, 2 + others):
        pairs = []
        for k in range(40):
            at = 0.05 * k + 0.01 * client
            got = at + 0.002
            if 0.4 <= at < end:
                got = max(end, at) + 0.002 if wait is None else at + wait
            pairs.append([T0 + at, T0 + got])
        conns.append({"client": client, "conn": f"c{client}", "pairs": pairs})
    act = {"client": 1, "send": "WORK 3000000", "sent_t": T0 + 0.4 if sent else None, "outcome": outcome,
           "done_t": T0 + end if outcome == "reply" and stamped else None,
           "latency_ms": own * 1000 if outcome == "reply" and stamped and own is not None else None}
    connections = [{"client": c, "conn": f"c{c}", "close": "duration"} for c in range(1, 2 + others)]
    connections += [{"client": c, "conn": None, "close": "connect-failed"} for c in range(2 + others, 4)]
    results = {"actions": [act], "connections": connections, "timeline": {"conns": conns},
               "summary": {"clients": 3}}
    return context("cpu-stall", {"work_stalls_others": want}, probes={"main": probe(results, length=2.0)},
                   host={} if free is None else {"main": FakeLoad(free)})


WORK_STALLS = [
    ("held-work-loop", lambda: work_stall(True, None), {"work_stalls_others": True}),
    ("held-work-loop-a-slow-work", lambda: work_stall(True, None, own=1.4), {"work_stalls_others": True}),
    ("held-work-threads-the-gil-passes", lambda: work_stall(False, 0.012), {"work_stalls_others": True}),
    ("held-work-threads-a-slow-work", lambda: work_stall(False, 0.03, own=1.4), {"work_stalls_others": True}),
    ("held-work-not-stalled-on-a-busy-host", lambda: work_stall(False, 0.012, free=0.2), {"work_stalls_others": True}),
    ("contradicted-work-loop-not-stalled", lambda: work_stall(True, 0.012), {"work_stalls_others": False}),
    ("contradicted-work-threads-stalled", lambda: work_stall(False, None), {"work_stalls_others": False}),
    ("contradicted-work-in-between", lambda: work_stall(True, 0.2), {"work_stalls_others": False}),
    ("busy-host-work-stalled", lambda: work_stall(False, None, free=0.3), {"work_stalls_others": None}),
    ("empty-work-never-sent", lambda: work_stall(True, None, sent=False), {"work_stalls_others": None}),
    ("zero-work-too-short-to-tell", lambda: work_stall(True, None, own=0.05), {"work_stalls_others": None}),
    ("missing-reply-to-work", lambda: work_stall(True, None, outcome="pending"), {"work_stalls_others": None}),
    ("busy-host-work-still-running", lambda: work_stall(True, None, outcome="pending", free=0.3),
     {"work_stalls_others": None}),
    ("missing-work-reply-time", lambda: work_stall(True, None, stamped=False), {"work_stalls_others": None}),
    ("missing-work-host-load-when-late", lambda: work_stall(True, None, free=None), {"work_stalls_others": None}),
    ("partial-work-one-other-missing", lambda: work_stall(True, None, others=1), {"work_stalls_others": None}),
]


def slow_stall(want: bool, wait: float | None, *, free: float | None = 2.0, others: int = 2,
               outcome: str = "reply", sent: bool = True, slow: bool = True, cut: bool = False,
               closes_idle: bool = False) -> checks.Context:
    """Client 1 sends the target's slow request (DEBUG SLEEP 0.5, 500 ms) at
    0.5 s; the others send every 50 ms, answered in 2 ms except during it:
    then each waits ``wait`` seconds (None: until it ends).  ``cut``: the
    server closes client 2 at 0.7 s with a request of its unanswered."""
    conns, connections = [], []
    for client in range(2, 2 + others):
        pairs = []
        for k in range(40):
            at = 0.05 * k + 0.01 * client
            got: float | None = at + 0.002
            if 0.5 <= at < 1.0:
                got = max(1.0, at) + 0.002 if wait is None else at + wait
            if cut and client == 2 and at >= 0.65:
                got = None if at < 0.7 else got
            pairs.append([T0 + at, None if got is None else T0 + got])
        if cut and client == 2:
            pairs = [p for p in pairs if p[0] < T0 + 0.7]
        conns.append({"client": client, "conn": f"c{client}", "pairs": pairs})
        connections.append({"client": client, "conn": f"c{client}",
                            "close": "eof" if cut and client == 2 else "duration"})
    connections.insert(0, {"client": 1, "conn": "c1", "close": "duration"})
    connections += [{"client": c, "conn": None, "close": "connect-failed"} for c in range(2 + others, 4)]
    act = {"client": 1, "send": "DEBUG SLEEP 0.5", "sent_t": T0 + 0.5 if sent else None, "outcome": outcome,
           "latency_ms": 500.0 if outcome == "reply" else None, "done_t": T0 + 1.0 if outcome == "reply" else None}
    results = {"actions": [act], "connections": connections, "timeline": {"conns": conns},
               "summary": {"clients": 3}}
    ctx = context("slow-stalls", {"slow_stalls_others": want}, probes={"main": probe(results, length=2.0)},
                  host={} if free is None else {"main": FakeLoad(free)})
    spec = {"expect": ctx.model.expect, "closes_idle": closes_idle}
    if slow:
        spec["slow"] = {"request": "DEBUG SLEEP 0.5", "ms": 500}
    ctx.model = Model("fake", "s", "d", ctx.model.expect, None, spec, Path("services/fake/model.yaml"), kind="server")
    return ctx


SLOW_STALLS = [
    ("held-one-thread-runs-everything", lambda: slow_stall(True, None), {"slow_stalls_others": True}),
    ("held-a-process-each", lambda: slow_stall(False, 0.004), {"slow_stalls_others": True}),
    ("held-not-stalled-on-a-busy-host", lambda: slow_stall(False, 0.004, free=0.2), {"slow_stalls_others": True}),
    ("held-cut-by-its-declared-rule", lambda: slow_stall(False, 0.004, cut=True, closes_idle=True),
     {"slow_stalls_others": True}),
    ("contradicted-not-stalled", lambda: slow_stall(True, 0.004), {"slow_stalls_others": False}),
    ("contradicted-stalled", lambda: slow_stall(False, None), {"slow_stalls_others": False}),
    ("contradicted-in-between", lambda: slow_stall(False, 0.22), {"slow_stalls_others": False}),
    ("contradicted-cut-undeclared", lambda: slow_stall(False, 0.004, cut=True), {"slow_stalls_others": False}),
    ("held-stalled-on-a-busy-host-released-with-it", lambda: slow_stall(True, None, free=0.3),
     {"slow_stalls_others": True}),
    ("contradicted-on-a-busy-host-released-with-it", lambda: slow_stall(False, None, free=0.3),
     {"slow_stalls_others": False}),
    ("busy-host-late-at-random", lambda: slow_stall(True, 0.4, free=0.3), {"slow_stalls_others": None}),
    ("empty-never-sent", lambda: slow_stall(True, None, sent=False), {"slow_stalls_others": None}),
    ("zero-no-slow-request-declared", lambda: slow_stall(True, None, slow=False), {"slow_stalls_others": None}),
    ("missing-reply", lambda: slow_stall(True, None, outcome="pending"), {"slow_stalls_others": None}),
    ("missing-host-load-when-late", lambda: slow_stall(True, 0.4, free=None), {"slow_stalls_others": None}),
    ("partial-one-other-missing", lambda: slow_stall(True, None, others=1), {"slow_stalls_others": None}),
]


# -- slow_clients ----------------------------------------------------------------------

def slow_run(want: str, late: float | None, *, on_time: int = 50, slow: int = 4, connected: int | None = None,
             slow_replies: int = 3, others: int = 3, cut_at: float | None = None, free: float | None = 2.0,
             sends: int = 50) -> checks.Context:
    """``slow`` slow clients connect first; ``others`` normal clients send every
    50 ms from 0.2 s; ``on_time`` of each one's ``sends`` requests answered in
    5 ms, the rest after ``late`` seconds (None: never).  ``cut_at``: the
    server closes slow client 1 then."""
    connections, conns = [], []
    for c in range(1, slow + 1):
        ok = c <= (slow if connected is None else connected)
        connections.append({"client": c, "conn": f"s{c}" if ok else None, "role": "slow",
                            "connect_end": T0 + 0.05 * c if ok else None, "sent": 1 if ok else 0,
                            "replies": slow_replies if c == 1 else 0,
                            "close": "eof" if cut_at is not None and c == 1 else "duration",
                            "close_t": T0 + (cut_at if cut_at is not None and c == 1 else 3.0)})
    for c in range(slow + 1, slow + 1 + others):
        pairs = []
        for k in range(sends):
            at = 0.2 + 0.05 * k
            got = at + 0.005 if k < on_time else (None if late is None else at + late)
            pairs.append([T0 + at, None if got is None else T0 + got])
        conns.append({"client": c, "conn": f"n{c}", "pairs": pairs})
        connections.append({"client": c, "conn": f"n{c}", "role": "interval", "connect_end": T0 + 0.05 * c,
                            "sent": sends, "replies": sum(p[1] is not None for p in pairs), "close": "duration"})
    results = {"connections": connections, "timeline": {"conns": conns}, "summary": {"clients": slow + others}}
    return context("slow-clients", {"slow_clients": want}, workers=4, probes={"main": probe(results, length=3.0)},
                   host={} if free is None else {"main": FakeLoad(free)})


SLOW_CLIENTS = [
    ("held-a-pool-taken", lambda: slow_run("held", None, on_time=0), {"slow_clients": True}),
    ("held-answered-only-after-seconds", lambda: slow_run("held", 2.0, on_time=1), {"slow_clients": True}),
    ("held-not-held", lambda: slow_run("not-held", None, on_time=50), {"slow_clients": True}),
    ("held-not-held-a-few-late", lambda: slow_run("not-held", 0.3, on_time=47), {"slow_clients": True}),
    ("contradicted-held", lambda: slow_run("held", None, on_time=50), {"slow_clients": False}),
    ("contradicted-not-held", lambda: slow_run("not-held", None, on_time=0), {"slow_clients": False}),
    ("contradicted-in-between", lambda: slow_run("not-held", 1.0, on_time=25), {"slow_clients": False}),
    ("busy-host-in-between", lambda: slow_run("not-held", 1.0, on_time=25, free=0.3), {"slow_clients": None}),
    ("missing-host-load-in-between", lambda: slow_run("held", 1.0, on_time=25, free=None), {"slow_clients": None}),
    ("empty-no-other-client", lambda: slow_run("held", None, others=0), {"slow_clients": None}),
    ("zero-slow-replies", lambda: slow_run("held", None, on_time=0, slow_replies=0), {"slow_clients": None}),
    ("partial-a-slow-client-never-connected", lambda: slow_run("held", None, on_time=0, connected=3),
     {"slow_clients": None}),
    ("partial-cut-at-once", lambda: slow_run("held", None, on_time=0, cut_at=0.3), {"slow_clients": None}),
    ("held-cut-late-judged-before-it", lambda: slow_run("held", None, on_time=0, cut_at=2.0), {"slow_clients": True}),
]


# -- gil -----------------------------------------------------------------------------

def gil(want: bool, cores: float, *, free: float | None = 2.0, solo: bool = True, pair_conns: int = 2,
        unanswered: bool = False, sampler: bool = True, instant: bool = False,
        solo_probe: bool = True, solo_s: float = 0.1) -> checks.Context:
    """One client's three WORKs of ``solo_s`` (0.1 s), then two clients' six
    each from T0+1, side by side (0.1 s each) with the server at ``cores`` meanwhile."""
    solo_pairs = [[T0 + 0.1 * k, T0 + 0.1 * k + solo_s] for k in range(3)] if solo else []
    step = 0.0 if instant else (0.1 if cores >= 1.5 else 0.2)
    conns = []
    for client in range(1, pair_conns + 1):
        pairs = [[T0 + 1 + step * k, T0 + 1 + step * (k + 1)] for k in range(6)]
        if unanswered and client == 1:
            pairs[-1][1] = None
        conns.append({"client": client, "pairs": pairs})
    probes = {"pair": probe({"timeline": {"conns": conns}}, name="pair")}
    if solo_probe:
        probes["solo"] = probe({"timeline": {"conns": [{"client": 1, "pairs": solo_pairs}]}}, name="solo")
    return context("gil", {"cpu_parallel": want}, probes=probes,
                   cpu={"pair": FakeSampler(cores)} if sampler else {},
                   host={} if free is None else {"pair": FakeLoad(free)})


GIL = [
    ("held-parallel", lambda: gil(True, 1.9), {"cpu_parallel": True}),
    ("held-serial", lambda: gil(False, 1.0), {"cpu_parallel": True}),
    ("held-parallel-whatever-the-host", lambda: gil(True, 1.9, free=1.0), {"cpu_parallel": True}),
    ("contradicted-parallel", lambda: gil(True, 1.0), {"cpu_parallel": False}),
    ("contradicted-serial", lambda: gil(False, 1.9), {"cpu_parallel": False}),
    ("busy-host-parallel-claim", lambda: gil(True, 0.55, free=1.0), {"cpu_parallel": None}),
    ("busy-host-serial-claim", lambda: gil(False, 1.0, free=1.0), {"cpu_parallel": None}),
    # 1.6 free cores: room a parallel server would fill above the serial bound, not two cores
    ("held-serial-on-a-host-with-room-above-one-core", lambda: gil(False, 1.0, free=1.6), {"cpu_parallel": True}),
    ("busy-host-parallel-claim-short-of-two-cores", lambda: gil(True, 1.0, free=1.6), {"cpu_parallel": None}),
    ("empty-no-solo-works", lambda: gil(True, 1.9, solo=False), {"cpu_parallel": None}),
    ("zero-length-window", lambda: gil(True, 1.9, instant=True), {"cpu_parallel": None}),
    ("missing-cpu-readings", lambda: gil(True, 1.9, sampler=False), {"cpu_parallel": None}),
    ("missing-solo-probe", lambda: gil(True, 1.9, solo_probe=False), {"cpu_parallel": None}),
    ("missing-host-load-when-low", lambda: gil(False, 1.0, free=None), {"cpu_parallel": None}),
    ("partial-one-client", lambda: gil(True, 1.9, pair_conns=1), {"cpu_parallel": None}),
    ("partial-a-work-unanswered", lambda: gil(True, 1.9, unanswered=True), {"cpu_parallel": None}),
]


# -- shared_counter ------------------------------------------------------------------

def counter(want: Any, counts: list[Any], summary: dict[str, Any] | None = None,
            clients: list[int] | None = None) -> checks.Context:
    """Four clients add 3000 each; ``counts``: the COUNT each is told (by
    ``clients``, default 1, 2, ...)."""
    output = "\n".join(json.dumps({"ev": "reply", "client": i, "data": f"COUNT {c}"}, separators=(",", ":"))
                       for i, c in zip(clients or range(1, len(counts) + 1), counts))
    results = {"summary": {"clients": 4} if summary is None else summary}
    return context("shared-counter", {"lost_updates": want}, probes={"main": probe(results, output=output)})


COUNTER = [
    ("held-none-lost", lambda: counter(False, [3000, 6000, 9000, 12000]), {"lost_updates": True}),
    ("held-lost", lambda: counter(True, [3000, 5000, 7500, 9500]), {"lost_updates": True}),
    ("held-per-process", lambda: counter("per-process", [3000] * 4), {"lost_updates": True}),
    ("contradicted-lost", lambda: counter(False, [3000, 5000, 7500, 9500]), {"lost_updates": False}),
    ("contradicted-shared", lambda: counter("per-process", [3000, 6000, 9000, 12000]), {"lost_updates": False}),
    ("contradicted-none-lost", lambda: counter(True, [3000, 6000, 9000, 12000]), {"lost_updates": False}),
    ("empty-no-replies", lambda: counter(False, []), {"lost_updates": None}),
    ("zero-clients-in-summary", lambda: counter(False, [3000, 6000], summary={}), {"lost_updates": None}),
    ("missing-summary-and-replies", lambda: counter(True, [], summary={}), {"lost_updates": None}),
    ("partial-two-of-four", lambda: counter(True, [3000, 5000]), {"lost_updates": None}),
]


# -- triggering ----------------------------------------------------------------------

def trigger(want: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
            replies: int = 2000, connected: bool = True) -> checks.Context:
    results = {"summary": {"clients": 1, "replies": replies},
               "connections": [{"client": 1, "conn": "c1" if connected else None,
                                "close": "count" if connected else "connect-failed"}]}
    return context("triggering", {"triggering": want}, stats={"main:before": before, "main:after": after},
                   probes={"main": probe(results)})


def counts(events: int, reads: int) -> dict[str, Any]:
    return {**STATS, "events": events, "reads": reads}


TRIGGERING = [
    ("held-level", lambda: trigger("level", counts(10, 10), counts(2010, 2010)), {"triggering": True}),
    ("held-edge", lambda: trigger("edge", counts(10, 10), counts(510, 3010)), {"triggering": True}),
    ("contradicted-edge", lambda: trigger("edge", counts(10, 10), counts(2010, 2010)), {"triggering": False}),
    ("contradicted-level", lambda: trigger("level", counts(10, 10), counts(510, 3010)), {"triggering": False}),
    ("contradicted-incomplete", lambda: trigger("level", counts(10, 10), counts(1510, 1510), replies=1500),
     {"triggering": False}),
    ("empty-stats-unanswered", lambda: trigger("level", None, None), {"triggering": None}),
    ("zero-reports", lambda: trigger("level", counts(10, 10), counts(10, 10)), {"triggering": None}),
    ("missing-counters", lambda: trigger("level", STATS, STATS), {"triggering": None}),
    ("partial-client-never-connected", lambda: trigger("level", counts(10, 10), counts(10, 10), replies=0,
                                                       connected=False), {"triggering": None}),
    ("partial-after-unanswered", lambda: trigger("level", counts(10, 10), None), {"triggering": None}),
]


# -- many_descriptors ----------------------------------------------------------------

def descriptors(limit: int | None, *, held: int = 1100, refused: int = 0, never: int = 0,
                errors: list[int] | None = None, active_replies: int = 20,
                connections: bool = True, count: int | None = None, events: int = 1) -> checks.Context:
    """1100 clients asked: ``held`` kept theirs, ``refused`` were closed by
    the server, ``never`` never connected; client 1 is the active one.  The
    server's ``events`` fd_setsize errors each name ``errors`` and (``count``)
    close their share of ``count`` connections, as services/select does."""
    records = []
    for i in range(1, held + refused + never + 1):
        if i <= held:
            records.append({"client": i, "conn": f"c{i}", "close": "duration", "connect_end": T0 + 0.5})
        elif i <= held + refused:
            records.append({"client": i, "conn": f"c{i}", "close": "eof", "connect_end": T0 + 0.5})
        else:
            records.append({"client": i, "conn": None, "close": "connect-failed"})
    if records:
        records[0]["replies"] = active_replies if held else 0
    share = {} if count is None else {"count": count // events}
    events = [{"ev": "error", "kind": "fd_setsize", "fds": errors, "t": T0 + 0.6, **share}] * events if errors else []
    results = {"summary": {"clients": 1100}}
    if connections:
        results["connections"] = records
    return context("many-descriptors", {"fd_limit": limit}, target=FakeTarget(events),
                   probes={"main": probe(results)})


DESCRIPTORS = [
    ("held-no-limit", lambda: descriptors(None), {"fd_limit": True}),
    ("held-select", lambda: descriptors(1024, held=1020, refused=80, errors=list(range(1024, 1104))),
     {"fd_limit": True}),
    ("held-select-descriptors-reused", lambda: descriptors(1024, held=1020, refused=80, errors=[1024, 1025],
                                                          count=80, events=40),
     {"fd_limit": True}),
    ("contradicted-no-limit", lambda: descriptors(None, held=1050, refused=50, errors=list(range(1024, 1074))),
     {"fd_limit": False}),
    ("contradicted-limit-never-met", lambda: descriptors(1024), {"fd_limit": False}),
    ("contradicted-limit-met-early", lambda: descriptors(1024, held=1000, refused=100, errors=[900, 901]),
     {"fd_limit": False}),
    ("contradicted-active-client-unserved", lambda: descriptors(None, active_replies=0), {"fd_limit": False}),
    ("empty-no-connections", lambda: descriptors(None, held=0), {"fd_limit": None}),
    ("zero-connected", lambda: descriptors(None, held=0, never=1100), {"fd_limit": None}),
    ("missing-connection-records", lambda: descriptors(None, connections=False), {"fd_limit": None}),
    ("partial-600-timed-out", lambda: descriptors(None, held=500, never=600), {"fd_limit": False}),
    ("partial-never-reached-the-limit", lambda: descriptors(1024, held=600, never=500), {"fd_limit": None}),
]


# -- faults --------------------------------------------------------------------------

def fault(key: str, want: str, others: str, *, outcome: str = "eof", alive: bool = True,
          clients: int = 3, connected: int = 3, act: bool = True) -> checks.Context:
    """Client 1 sends the fault at 0.5 s.  ``others``: "served" (replies go on
    to the end), "dropped" (eof at 0.52 s), "silent" (kept open, never
    answered again: a server that hangs or is gone), "queued" (one at a
    time: client 2 is served from the fault on, client 3 waits its turn)."""
    records, conns = [], []
    for c in range(1, clients + 1):
        if c > connected:
            records.append({"client": c, "conn": None, "close": "connect-failed"})
            continue
        if c == 1:
            close, last = outcome if outcome in ("eof", "reset") else "duration", T0 + 0.45
            pairs = [[T0 + 0.05 * k, T0 + 0.05 * k + 0.002] for k in range(10)]
        elif others == "served" or (others == "queued" and c == 2):
            close, last = "duration", T0 + 1.55
            pairs = [[T0 + 0.05 * k, T0 + 0.05 * k + 0.002] for k in range(32)]
        elif others == "queued":  # a blocking server: waits its turn behind client 2, never served
            records.append({"client": c, "conn": f"c{c}", "close": "duration", "replies": 0})
            conns.append({"client": c, "conn": f"c{c}", "pairs": [[T0, None]]})
            continue
        elif others == "dropped":
            close, last = "eof", T0 + 0.45
            pairs = [[T0 + 0.05 * k, T0 + 0.05 * k + 0.002] for k in range(10)] + [[T0 + 0.5, None]]
        else:
            close, last = "duration", T0 + 0.45
            pairs = [[T0 + 0.05 * k, T0 + 0.05 * k + 0.002 if k < 10 else None] for k in range(32)]
        records.append({"client": c, "conn": f"c{c}", "close": close, "first_reply": pairs[0][1],
                        "last_reply": last, "replies": sum(1 for _, g in pairs if g)})
        conns.append({"client": c, "conn": f"c{c}", "pairs": pairs})
    send = "CRASH" if key == "crash_takes" else "RAISE"
    actions = [{"client": 1, "send": send, "sent_t": T0 + 0.5, "outcome": outcome}] if act else []
    results = {"actions": actions, "connections": records, "timeline": {"conns": conns},
               "summary": {"clients": clients}}
    return context("crash" if key == "crash_takes" else "raise", {key: want},
                   target=FakeTarget(alive=alive), probes={"main": probe(results, length=1.6)})


def _nobody_served(ctx: checks.Context) -> checks.Context:
    """The queued case, with client 2 never answered after the fault either."""
    results = ctx.probes["main"].results
    for record in results["connections"]:
        if record["client"] == 2:
            record["last_reply"] = T0 + 0.45
    for conn in results["timeline"]["conns"]:
        if conn["client"] == 2:
            conn["pairs"] = [[s, g if s < T0 + 0.5 else None] for s, g in conn["pairs"]]
    return ctx


FAULTS = [
    ("held-connection", lambda: fault("crash_takes", "connection", "served"), {"crash_takes": True}),
    ("held-all", lambda: fault("crash_takes", "all", "dropped", alive=False), {"crash_takes": True}),
    ("held-raise", lambda: fault("raise_takes", "connection", "served"), {"raise_takes": True}),
    ("held-one-at-a-time", lambda: fault("raise_takes", "connection", "queued"), {"raise_takes": True}),
    ("contradicted-queued-but-nobody-served", lambda: _nobody_served(fault("raise_takes", "connection", "queued")),
     {"raise_takes": False}),
    ("contradicted-connection", lambda: fault("crash_takes", "connection", "dropped", alive=False),
     {"crash_takes": False}),
    ("contradicted-all", lambda: fault("crash_takes", "all", "served"), {"crash_takes": False}),
    ("contradicted-survivors-never-served-again", lambda: fault("crash_takes", "connection", "silent", alive=False),
     {"crash_takes": False}),
    ("contradicted-not-dropped", lambda: fault("raise_takes", "connection", "served", outcome="reply"),
     {"raise_takes": False}),
    ("empty-no-action", lambda: fault("crash_takes", "connection", "served", act=False), {"crash_takes": None}),
    ("zero-other-clients", lambda: fault("crash_takes", "connection", "served", clients=1, connected=1),
     {"crash_takes": None}),
    ("missing-fault-never-reached-the-server", lambda: fault("raise_takes", "connection", "served",
                                                             outcome="not-connected"), {"raise_takes": None}),
    ("partial-others-never-connected", lambda: fault("crash_takes", "connection", "served", connected=1),
     {"crash_takes": None}),
]


# -- c10k ----------------------------------------------------------------------------

def c10k(want: str, *, asked: int = 10_000, accepted: int = 10_000, kept: int = 10_000, p99_ms: float | None = 20.0,
         free: float | None = 1.5, errors: dict[str, int] | None = None, threads_at_peak: int | None = 1,
         processes_at_peak: int | None = 1, pids_limit: int | None = 200, answered: int = 100,
         peak_served: Any = "all", workers: int | None = None, active: int = 100,
         thread_count: int | None = None, per_process: dict[int, int] | None = None) -> checks.Context:
    events = [{"ev": "start", "t": T0 - 1, "backlog": 4096, "somaxconn": 4096, "nofile": 20000}]
    events += [{"ev": "accept", "conn": f"c{i}", "t": T0 + 1} for i in range(accepted)]
    for kind, n in (errors or {}).items():
        events += [{"ev": "error", "kind": kind, "t": T0 + 2}] * n
    conns = [{"client": i + 1, "conn": f"c{i}", "role": "pingpong" if i < active else "hold",
              "connect_end": T0 + 1, "close": "duration" if i < kept else "eof",
              "replies": 50 if i < answered else 0} for i in range(asked)]
    latency = {"count": 5000, "p99_us": int(p99_ms * 1000)} if p99_ms is not None else {"count": 0}
    results = {"connections": conns, "summary": {"clients": asked, "connections": {"connected": asked},
                                                 "latency": latency}}
    peak = Sample(T0 + 2, processes_at_peak or 0, threads_at_peak or 0,
                  {7: threads_at_peak or 0} if per_process is None else per_process) \
        if threads_at_peak is not None and processes_at_peak is not None else None
    reading = {"before": {"pss": 10_000_000, "uss": 8_000_000, "rss": 12_000_000},
               "peak": {"pss": 50_000_000, "uss": 40_000_000, "rss": 60_000_000}, "peak_sample": peak,
               "cpu_before": Cpu(T0, 1.0, 20_000_000), "cpu_after": Cpu(T0 + 20, 11.0),
               "cgroup_peak": Cpu(T0 + 2, 3.0, 100_000_000), "peak_t": T0 + 2, "netstat_before": {},
               "netstat_peak": {}}
    expect = {"c10k": want, "peak_served": peak_served}
    if thread_count is not None:
        expect["thread_count"] = thread_count
    return context("c10k", expect, workers=workers,
                   target=FakeTarget(events, pids_limit=pids_limit), probes={"main": probe(results, length=20)},
                   readings={"main": reading}, host={} if free is None else {"main": FakeLoad(free)})


C10K = [
    ("held-holds", lambda: c10k("holds"), {"c10k": True}),
    ("held-threads", lambda: c10k("threads", threads_at_peak=10_001), {"c10k": True}),
    ("held-fd-limit", lambda: c10k("fd-limit", kept=1000, errors={"fd_setsize": 9000}), {"c10k": True}),
    ("held-pids-limit", lambda: c10k("pids-limit", accepted=190, kept=190, errors={"fork": 5},
                                     processes_at_peak=195), {"c10k": True}),
    ("held-backlog", lambda: c10k("backlog", answered=1, peak_served=1), {"c10k": True}),
    ("contradicted-holds-slow", lambda: c10k("holds", p99_ms=500), {"c10k": False}),
    ("contradicted-holds-dropped", lambda: c10k("holds", accepted=9000, kept=9000), {"c10k": False}),
    ("contradicted-fd-limit", lambda: c10k("fd-limit"), {"c10k": False}),
    ("contradicted-backlog", lambda: c10k("backlog", answered=100, peak_served=1), {"c10k": False}),
    ("busy-host-slow", lambda: c10k("holds", p99_ms=500, free=0.2), {"c10k": None}),
    ("empty-nobody-asked", lambda: c10k("holds", asked=0, accepted=0, kept=0), {"c10k": None}),
    ("zero-latency-samples", lambda: c10k("holds", p99_ms=None), {"c10k": None}),
    ("zero-accepted-fd-limit", lambda: c10k("fd-limit", accepted=0, kept=0, answered=0), {"c10k": None}),
    ("missing-pids-limit", lambda: c10k("pids-limit", errors={"fork": 5}, pids_limit=None), {"c10k": None}),
    ("missing-processes-at-peak", lambda: c10k("pids-limit", errors={"fork": 5}, processes_at_peak=None),
     {"c10k": None}),
    ("missing-threads-at-peak", lambda: c10k("threads", threads_at_peak=None), {"c10k": None}),
    ("missing-host-load-when-slow", lambda: c10k("holds", p99_ms=500, free=None), {"c10k": None}),
    ("partial-no-active-set", lambda: c10k("backlog", answered=0, active=0, peak_served=1), {"c10k": None}),
    # thread_count at the peak: a coroutine, a greenlet, an asyncio task is no kernel task
    ("held-thread-count-one-thread", lambda: c10k("holds", thread_count=1), {"c10k": True, "thread_count": True}),
    ("held-thread-count-per-process", lambda: c10k("pids-limit", accepted=190, kept=190, errors={"fork": 5},
                                                   processes_at_peak=3, thread_count=1,
                                                   per_process={7: 1, 8: 1, 9: 1}),
     {"c10k": True, "thread_count": True}),
    ("contradicted-thread-count", lambda: c10k("holds", thread_count=1, threads_at_peak=4),
     {"c10k": True, "thread_count": False}),
    ("contradicted-thread-count-in-one-process", lambda: c10k("holds", thread_count=1, processes_at_peak=2,
                                                              per_process={7: 1, 8: 2}),
     {"c10k": True, "thread_count": False}),
    ("missing-thread-count-peak-not-read", lambda: c10k("holds", thread_count=1, threads_at_peak=None),
     {"c10k": True, "thread_count": None}),
    ("zero-thread-count-nothing-open-at-the-peak", lambda: c10k("holds", thread_count=1, accepted=0, kept=0),
     {"c10k": None, "thread_count": None}),
    ("partial-thread-count-no-process-in-the-reading", lambda: c10k("holds", thread_count=1, per_process={}),
     {"c10k": True, "thread_count": None}),
]


# -- absurd evidence: outside what is physically possible, never a verdict ---------------
#
# Each row feeds a judge a figure it cannot have measured (a counter running
# backwards, a reply before its request, NaN, a client counted twice, an empty
# process table, WORK that did no work) and expects "not judged" for the key
# it names, for the reason ``why`` (a piece of the observed text).  Each row
# was checked against the judges before they stated their domains: there,
# every one of them was judged (most of them "held").

NAN, INF = float("nan"), float("inf")


def mutate(ctx: checks.Context, change: Callable[[dict[str, Any]], Any], probe_name: str = "main") -> checks.Context:
    """The context with its probe's swarm results changed by ``change``."""
    change(ctx.probes[probe_name].results)
    return ctx


def conns(results: dict[str, Any]) -> list[dict[str, Any]]:
    return results["timeline"]["conns"]


def stamped_early(results: dict[str, Any], start: float, end: float, client: int | None = None) -> None:
    """Replies to requests sent in [T0+start, T0+end) stamped 100 ms before their sends."""
    for conn in conns(results):
        if client is None or conn["client"] == client:
            conn["pairs"] = [[sent, sent - 0.1 if T0 + start <= sent < T0 + end and got is not None else got]
                             for sent, got in conn["pairs"]]


def one_client(results: dict[str, Any], records: str = "connections") -> None:
    """Every connection record says it is client 1: one client, counted as many."""
    for rec in results[records]:
        rec["client"] = 1


def with_latency(ctx: checks.Context, latency: dict[str, Any]) -> checks.Context:
    return mutate(ctx, lambda r: r["summary"].update(latency=latency))


def with_action(ctx: checks.Context, **changes: Any) -> checks.Context:
    return mutate(ctx, lambda r: r["actions"][0].update(changes))


def served_twice(results: dict[str, Any]) -> None:
    """Client 3's record and timeline say client 2: two clients, counted as one."""
    for rec in results["connections"] + conns(results):
        if rec["client"] == 3:
            rec["client"] = 2


Absurd = tuple[str, Callable[[], checks.Context], dict[str, bool | None], str]
ABSURD: dict[str, list[Absurd]] = {
    "idle_cpu": [
        ("cpu-counter-runs-backwards", lambda: idle("idle", [Cpu(T0, 10.0), Cpu(T0 + 1, 0.0)]),
         {"idle_cpu": None}, "went backwards"),
        ("a-one-microsecond-window", lambda: idle("idle", [Cpu(T0, 1.0), Cpu(T0 + 1e-6, 1.0)]),
         {"idle_cpu": None}, "too short to measure"),
        ("more-cores-than-the-host-has", lambda: idle("busy", [Cpu(T0, 0.0), Cpu(T0 + 1, 50.0)]),
         {"idle_cpu": None}, "outside what is possible"),
        ("nan-cpu", lambda: idle("idle", [Cpu(T0, NAN), Cpu(T0 + 1, NAN)]), {"idle_cpu": None}, "not a finite"),
        ("infinite-window", lambda: idle("idle", [Cpu(T0, 1.0), Cpu(INF, 1.0)]), {"idle_cpu": None}, "not a finite"),
    ],
    "served_at_once": [
        ("closed-before-its-first-read", lambda: served(1, [(0.1, 1.0), (1.0, 2.0), (3.0, 2.0)]),
         {"peak_served": None}, "before it begins"),
        ("one-client-counted-three-times", lambda: mutate(served("all", TOGETHER), one_client),
         {"peak_served": None}, "client 1 twice"),
        ("a-process-with-no-thread", lambda: served("all", TOGETHER, samples=[Sample(T0 + 0.5, 2, 1, {7: 1, 8: 0})],
                                                    thread_count=1),
         {"peak_served": True, "thread_count": None}, "process table was not read"),
    ],
    "growth": [
        ("an-empty-process-table-throughout", lambda: grow("fixed", "fixed", [(t / 10, 0, 0) for t in range(10)],
                                                           after=(0, 0)),
         {"threads": None, "processes": None}, "0 processes, 0 threads"),
        ("an-empty-table-after", lambda: grow("fixed", "fixed", FLAT, after=(0, 0)),
         {"threads": None, "processes": None}, "the sample after the clients left"),
        ("one-client-counted-six-times", lambda: mutate(grow("fixed", "fixed", FLAT), one_client),
         {"threads": None, "processes": None}, "client 1 twice"),
    ],
    "would_block": [
        ("an-empty-stats-before", lambda: wouldblock({}, {**STATS, "wouldblock": 900}),
         {"wouldblock_counter": None}, "names no process"),
        ("another-pid-after", lambda: wouldblock({**STATS, "wouldblock": 10}, {**STATS, "pid": 8, "wouldblock": 900}),
         {"wouldblock_counter": None}, "the server restarted"),
        ("an-infinite-counter", lambda: wouldblock({**STATS, "wouldblock": 10}, {**STATS, "wouldblock": INF}),
         {"wouldblock_counter": None}, "not a finite number"),
        ("a-counter-that-runs-backwards", lambda: wouldblock({**STATS, "wouldblock": 900}, {**STATS, "wouldblock": 10}),
         {"wouldblock_counter": None}, "went backwards"),
        ("infinite-requests", lambda: wouldblock({**STATS, "wouldblock": 10}, {**STATS, "wouldblock": 900}, replies=INF),
         {"wouldblock_counter": None}, "the count of requests served is inf"),
    ],
    "stalls": [
        ("replies-stamped-before-their-sends", lambda: mutate(stalls(False, False), lambda r: stamped_early(r, 0.5, 1.0)),
         {"block_stalls_others": None, "sleep_stalls_others": None}, "before its request was sent"),
        ("requests-sent-after-the-run-ended",
         lambda: mutate(stalls(False, False, answered_after_block=None), lambda r: r["ended"].update(monotonic=T0 + 0.3)),
         {"block_stalls_others": None, "sleep_stalls_others": None}, "after the run ended"),
        ("work-own-time-infinite", lambda: with_action(work_stall(False, 0.012, stamped=False), latency_ms=INF),
         {"work_stalls_others": None}, "own reply time"),
        ("work-replies-stamped-before-their-sends",
         lambda: mutate(work_stall(False, 0.012), lambda r: stamped_early(r, 0.4, 0.9)),
         {"work_stalls_others": None}, "before its request was sent"),
    ],
    "slow_stalls": [
        ("negative-waits", lambda: slow_stall(False, -0.1), {"slow_stalls_others": None}, "before its request was sent"),
        ("its-own-reply-before-its-send", lambda: with_action(slow_stall(False, 0.004), done_t=T0 + 0.4),
         {"slow_stalls_others": None}, "before its request was sent"),
        ("a-negative-own-time", lambda: with_action(slow_stall(False, 0.004), latency_ms=-500.0),
         {"slow_stalls_others": None}, "own reply time"),
    ],
    "slow_clients": [
        ("negative-waits", lambda: slow_run("held", -0.5, on_time=0), {"slow_clients": None},
         "before its request was sent"),
        ("a-nan-send-time", lambda: mutate(slow_run("held", None, on_time=0),
                                           lambda r: conns(r)[0]["pairs"][0].__setitem__(0, NAN)),
         {"slow_clients": None}, "not a finite number"),
        ("a-negative-reply-count", lambda: mutate(slow_run("held", None, on_time=0),
                                                  lambda r: r["connections"][0].__setitem__("replies", -3)),
         {"slow_clients": None}, "outside what is possible"),
        ("one-client-counted-twice", lambda: mutate(slow_run("not-held", None), one_client),
         {"slow_clients": None}, "twice"),
        ("a-nan-end", lambda: mutate(slow_run("held", None, on_time=0),
                                     lambda r: r["ended"].__setitem__("monotonic", NAN)),
         {"slow_clients": None}, "not a finite number"),
    ],
    "gil": [
        ("serial-with-no-core-busy", lambda: gil(False, 0.0), {"cpu_parallel": None}, "no CPU work ran"),
        ("serial-with-minus-three-cores", lambda: gil(False, -3.0), {"cpu_parallel": None}, "outside what is possible"),
        ("serial-with-a-twentieth-of-a-core", lambda: gil(False, 0.05), {"cpu_parallel": None}, "no CPU work ran"),
        ("parallel-on-more-cores-than-the-host-has", lambda: gil(True, 9.0), {"cpu_parallel": None},
         "outside what is possible"),
        ("work-that-does-no-work", lambda: gil(False, 1.0, solo_s=0.0001), {"cpu_parallel": None},
         "too short for CPU work"),
        ("a-reply-before-its-send", lambda: mutate(gil(False, 1.0), lambda r: conns(r)[0]["pairs"][2].__setitem__(1, T0),
                                                   "pair"),
         {"cpu_parallel": None}, "before its request was sent"),
        ("nan-cores", lambda: gil(False, NAN), {"cpu_parallel": None}, "not a finite number"),
    ],
    "shared_counter": [
        ("four-replies-from-one-client", lambda: counter(False, [3000, 6000, 9000, 12000], clients=[1, 1, 1, 1]),
         {"lost_updates": None}, "COUNT 4 times"),
        ("every-count-zero-is-not-lost-updates", lambda: counter(True, [0, 0, 0, 0]), {"lost_updates": None},
         "never moved"),
        ("a-count-above-every-increment", lambda: counter(True, [3000, 6000, 9000, 99999]), {"lost_updates": None},
         "did not start at 0"),
        ("a-negative-count", lambda: counter(True, [-5, 3000, 6000, 9000]), {"lost_updates": None}, "not a count"),
    ],
    "triggering": [
        ("level-with-no-reads", lambda: trigger("level", counts(10, 10), counts(2010, 10)), {"triggering": None},
         "0 reads"),
        ("another-pid-after", lambda: trigger("level", counts(10, 10), {**counts(2010, 2010), "pid": 8}),
         {"triggering": None}, "the server restarted"),
        ("reads-run-backwards", lambda: trigger("level", counts(10, 3010), counts(2010, 10)), {"triggering": None},
         "went backwards"),
        ("infinite-reads", lambda: trigger("edge", counts(10, 10), counts(510, INF)), {"triggering": None},
         "not a finite number"),
    ],
    "many_descriptors": [
        ("the-rest-not-served", lambda: descriptors(1024, held=10, refused=1090, errors=list(range(1024, 1104))),
         {"fd_limit": None}, "errors closed only 80"),
        ("a-descriptor-of-999999", lambda: descriptors(1024, held=1020, refused=80, errors=[999999]),
         {"fd_limit": None}, "outside what is possible"),
        ("a-negative-descriptor", lambda: descriptors(1024, held=1020, refused=80, errors=[-1]),
         {"fd_limit": None}, "outside what is possible"),
        ("one-client-counted-1100-times", lambda: mutate(descriptors(None), one_client), {"fd_limit": None},
         "client 1 twice"),
    ],
    "faults": [
        ("replies-stamped-before-their-sends",
         lambda: mutate(fault("crash_takes", "connection", "served"), lambda r: stamped_early(r, 0.6, 1.6)),
         {"crash_takes": None}, "before its request was sent"),
        ("two-clients-counted-as-one", lambda: mutate(fault("crash_takes", "connection", "served"), served_twice),
         {"crash_takes": None}, "client 2 twice"),
        ("a-nan-send-time", lambda: with_action(fault("crash_takes", "connection", "served"), sent_t=NAN),
         {"crash_takes": None}, "not a finite number"),
    ],
    "c10k": [
        ("holds-with-no-p99", lambda: with_latency(c10k("holds"), {"count": 5000}), {"c10k": None}, "has no p99"),
        ("holds-with-a-negative-p99", lambda: c10k("holds", p99_ms=-5), {"c10k": None}, "outside what is possible"),
        ("holds-with-a-nan-p99", lambda: with_latency(c10k("holds"), {"count": 5000, "p99_us": NAN}), {"c10k": None},
         "not a finite number"),
        ("backlog-with-nothing-kept", lambda: c10k("backlog", answered=1, peak_served=1, kept=0), {"c10k": None},
         "nothing shows the rest waiting"),
        ("thread-count-with-a-process-of-no-thread",
         lambda: c10k("holds", thread_count=1, processes_at_peak=2, per_process={7: 1, 8: 0}),
         {"c10k": True, "thread_count": None}, "process table was not read"),
    ],
}

# -- syscalls (lab/checks/cost.py) ----------------------------------------------------

BUSYPOLL = {"eagain_per_reply": "many", "scan_cost": "per-descriptor", "switches_per_reply": "fewer"}
FLIPPED = {"eagain_per_reply": "few", "scan_cost": "per-ready", "switches_per_reply": "per-reply"}


def cost_probe(name: str, replies: Any, measured: Any = None) -> Probe:
    return probe({"started": {"monotonic": T0}, "warmup_s": 0.0,
                  "summary": {"replies": replies, "replies_measured": replies if measured is None else measured}},
                 name, length=2.0)


def cost(expect: dict[str, Any], *, replies: Any = 1000, eagain: tuple[float, float] = (12, 17),
         uring: float = 0.0, vol: Any = 100, cores: tuple[float, float] = (0.3, 0.6),
         traced: Any = None, waits: float = 0.1) -> checks.Context:
    """Per reply: ``eagain`` EAGAIN returns (8 clients, then with 64 idle), ``uring``
    io_uring_enter calls, ``waits`` epoll_wait calls; ``vol`` voluntary switches in
    all; ``cores`` of CPU without and with 900 idle connections; ``traced``: what
    the sidecar left instead."""
    from lab.measure.strace import SyscallCounts
    from lab.measure.switches import SwitchSampler
    from lab.run.tracer import Traced
    n = replies if isinstance(replies, (int, float)) and not isinstance(replies, bool) and 0 < replies < 1e12 \
        else 1000  # the counts stay those of a real run; only the replies the swarm reports are absurd

    def counts(per: float) -> Traced:
        return Traced(SyscallCounts({"recvfrom": int(n + per * n), "sendto": int(n), "epoll_wait": int(waits * n),
                                     "io_uring_enter": int(uring * n)}, {"recvfrom": int(per * n)}))

    samples = [(T0 + 0.1, {7: (0, 0)}), (T0 + 1.0, {7: (0, 5)}), (T0 + 1.9, {7: (vol, 10)})]
    probes = {name: cost_probe(name, replies) for name in ("main", "idle", "traced", "traced-idle")}
    return context("syscalls", expect, probes=probes,
                   traces={"traced": traced if traced is not None else counts(eagain[0]),
                           "traced-idle": traced if traced is not None else counts(eagain[1])},
                   switches={"main": SwitchSampler(None, None, samples)},  # type: ignore[arg-type]
                   cpu={"main": FakeSampler(cores[0]), "idle": FakeSampler(cores[1])})


COST = [
    ("held-busypoll", lambda: cost(BUSYPOLL), dict.fromkeys(BUSYPOLL, True)),
    ("contradicted-flipped", lambda: cost(FLIPPED), dict.fromkeys(FLIPPED, False)),
    ("held-epoll", lambda: cost({"eagain_per_reply": "few", "scan_cost": "per-ready"}, eagain=(0.0, 0.0),
                                cores=(0.3, 0.31)), {"eagain_per_reply": True, "scan_cost": True}),
    ("held-edge-drains-to-eagain", lambda: cost({"drains_to_eagain": True}, eagain=(0.05, 0.05), waits=0.01),
     {"drains_to_eagain": True}),
    ("contradicted-level-does-not-drain", lambda: cost({"drains_to_eagain": True}, eagain=(0.0, 0.0)),
     {"drains_to_eagain": False}),
    ("no-readiness-wait-to-divide-by", lambda: cost({"drains_to_eagain": False}, waits=0.0),
     {"drains_to_eagain": None}),
    ("contradicted-many-but-not-growing", lambda: cost({"eagain_per_reply": "many"}, eagain=(12, 12)),
     {"eagain_per_reply": False}),
    ("held-threads-switch-per-reply", lambda: cost({"switches_per_reply": "per-reply"}, vol=2000),
     {"switches_per_reply": True}),
    ("held-uring-batches", lambda: cost({"uring_enter_per_reply": "fewer-than-one"}, uring=0.3),
     {"uring_enter_per_reply": True}),
    ("contradicted-uring-enter-per-reply", lambda: cost({"uring_enter_per_reply": "fewer-than-one"}, uring=1.5),
     {"uring_enter_per_reply": False}),
    ("ptrace-refused-leaves-the-traced-keys-not-judged",
     lambda: cost({**BUSYPOLL, "uring_enter_per_reply": "fewer-than-one"},
                  traced="ptrace refused on this host: strace: attach: ptrace(PTRACE_SEIZE, 8): Operation not permitted"),
     {"eagain_per_reply": None, "uring_enter_per_reply": None, "scan_cost": True, "switches_per_reply": True}),
    ("zero-replies", lambda: cost(BUSYPOLL, replies=0), dict.fromkeys(BUSYPOLL, None)),
    ("no-switch-samples", lambda: _without(cost(BUSYPOLL), "switches"),
     {"eagain_per_reply": True, "scan_cost": True, "switches_per_reply": None}),
]


def _without(ctx: checks.Context, what: str) -> checks.Context:
    getattr(ctx, what).clear()
    return ctx


COST_ABSURD = [
    ("nan-replies", lambda: cost(BUSYPOLL, replies=NAN), dict.fromkeys(BUSYPOLL, None), "not a"),
    ("negative-replies", lambda: cost(BUSYPOLL, replies=-5), dict.fromkeys(BUSYPOLL, None), "-5"),
    ("switch-counter-runs-backwards", lambda: cost({"switches_per_reply": "fewer"}, vol=-50),
     {"switches_per_reply": None}, "only grows"),
    ("nan-cpu", lambda: cost({"scan_cost": "per-ready"}, cores=(NAN, NAN)), {"scan_cost": None}, "not a finite"),
    ("replies-a-boolean", lambda: cost({"uring_enter_per_reply": "fewer-than-one"}, replies=True),
     {"uring_enter_per_reply": None}, "not a"),
]
ABSURD["syscalls"] = COST_ABSURD

ABSURD_CASES = [(judge, *row) for judge, rows in ABSURD.items() for row in rows]


TABLES: dict[str, list[tuple[str, Callable[[], checks.Context], dict[str, bool | None]]]] = {
    "idle_cpu": IDLE, "served_at_once": SERVED, "growth": GROWTH, "would_block": WOULD_BLOCK,
    "stalls": STALLS + WORK_STALLS, "slow_stalls": SLOW_STALLS, "slow_clients": SLOW_CLIENTS,
    "gil": GIL, "shared_counter": COUNTER, "triggering": TRIGGERING,
    "many_descriptors": DESCRIPTORS, "faults": FAULTS, "c10k": C10K, "syscalls": COST,
}
CASES = [(judge, case, build, want) for judge, rows in TABLES.items() for case, build, want in rows]


@pytest.mark.parametrize("judge, case, build, want", CASES, ids=[f"{j}-{c}" for j, c, _, _ in CASES])
def test_judge(judge: str, case: str, build: Callable[[], checks.Context], want: dict[str, bool | None]) -> None:
    got = judged(judge, build())
    assert set(got) == set(want), f"verdicts for {sorted(got)}, expected {sorted(want)}"
    for key, ok in want.items():
        assert got[key] is ok, f"{key}: ok is {got[key]!r}, expected {ok!r}"


@pytest.mark.parametrize("judge, case, build, want, why", ABSURD_CASES,
                         ids=[f"{j}-absurd-{c}" for j, c, _, _, _ in ABSURD_CASES])
def test_absurd_evidence_is_not_judged(judge: str, case: str, build: Callable[[], checks.Context],
                                       want: dict[str, bool | None], why: str) -> None:
    verdicts = {v.expect: v for v in judges.JUDGES[judge](build())}
    assert {k: v.ok for k, v in verdicts.items()} == want
    for key, ok in want.items():
        if ok is None:  # not judged, and for the reason the row names
            assert verdicts[key].observed.startswith("not judged: ") and why in verdicts[key].observed, \
                verdicts[key].observed


def test_every_registered_judge_has_a_table() -> None:
    """Each judge's table has a verdict of each outcome, and absurd evidence
    of its own: held, failed, not judged for want of evidence, and not judged
    for evidence outside its domain."""
    assert set(judges.JUDGES) == set(TABLES) == set(ABSURD), "a judge without a table (or a table without a judge)"
    for judge, rows in TABLES.items():
        outcomes = {ok for _, _, want in rows for ok in want.values()}
        assert outcomes == {True, False, None}, f"{judge}: outcomes {outcomes}"
        assert ABSURD[judge] and all(None in want.values() for _, _, want, _ in ABSURD[judge]), judge


# -- verdicts, outcomes and exits ------------------------------------------------------

def verdict(ok: bool | None, **figures: Any) -> checks.Verdict:
    return checks.Verdict("m", "c", "k", "claim", "k: x", "seen" if ok is not None else "not judged: why", ok,
                          figures)


@pytest.mark.parametrize("oks, outcome, exit_kind", [
    ([True, True], "held", None),
    ([True, False, None], "failed", "ExpectationFailed"),
    ([True, None], "not judged", "NotJudged"),
])
def test_the_worst_outcome_decides_the_exit(oks: list[bool | None], outcome: str, exit_kind: str | None) -> None:
    verdicts = [verdict(ok) for ok in oks]
    doc = checks.as_json(verdicts, {}, [{"model": "m", "check": "x", "expect": "x", "why": "w"}])
    assert doc["outcome"] == outcome and doc["passed"] is (outcome == "held")
    assert (doc["held"], doc["failed"], doc["not_judged"]) == (oks.count(True), oks.count(False), oks.count(None))
    assert [c["judged"] for c in doc["checks"]] == [ok is not None for ok in oks]
    assert doc["skipped"][0]["why"] == "w"
    if exit_kind is None:
        assert checks.conclude(verdicts, "here") == 0
    else:
        with pytest.raises(Exception) as raised:
            checks.conclude(verdicts, "here")
        assert type(raised.value).__name__ == exit_kind
        assert raised.value.exit_code == {"ExpectationFailed": 1, "NotJudged": 3}[exit_kind]


def test_no_verdict_at_all_is_not_a_pass() -> None:
    assert checks.as_json([], {})["passed"] is False
    with pytest.raises(UsageError):
        checks.conclude([], "here")


class FakeBench:
    def __init__(self) -> None:
        self.served = 0

    def serve(self, model: Model, args: list[str] | None = None) -> FakeTarget:
        self.served += 1
        return FakeTarget()

    def remove(self, target: Any) -> None:
        pass


FakeTarget.close = lambda self: None  # type: ignore[attr-defined]


@pytest.mark.parametrize("scenario, expect, tries, want_ok, want_servers", [
    ("gil", {"cpu_parallel": True}, [None, True], True, 1),  # busy, then free: judged on the second run
    ("gil", {"cpu_parallel": True}, [None, None, True], True, 1),  # busy twice, then free: the third
    ("gil", {"cpu_parallel": True}, [None, None, None], None, 1),  # busy every time: not judged, never red
    ("gil", {"cpu_parallel": True}, [True], True, 1),  # free at once: no second run
    # a retry keeps the live server, except where the server's memory is read
    ("c10k", {"c10k": "holds"}, [None, True], True, 2),
])
def test_a_check_that_found_the_host_busy_runs_again(monkeypatch: pytest.MonkeyPatch, scenario: str,
                                                     expect: dict[str, Any], tries: list[bool | None],
                                                     want_ok: bool | None, want_servers: int) -> None:
    runs = iter(tries)
    targets: list[Any] = []
    quiet: list[float] = []

    def fake_judge(bench: Any, ctx: checks.Context) -> list[checks.Verdict]:
        targets.append(ctx.target)
        ok = next(runs)
        return [verdict(ok, host_busy=True, free_cores_needed=1.8) if ok is None else verdict(ok)]

    monkeypatch.setattr(runner, "check", fake_judge)
    monkeypatch.setattr(runner, "quieten", lambda bench, target, wanted: quiet.append(wanted) or {"s": 1.0})
    bench = FakeBench()
    got = checks.run_model(bench, model(expect), [SCENARIOS[scenario]],  # type: ignore[arg-type]
                           lambda *_: None)
    assert [v.ok for v in got] == [want_ok]
    assert len(targets) == len(tries) and bench.served == want_servers
    assert quiet == [1.8] * (len(tries) - 1), "each retry waits for the cores the busy verdict needed"
    if len(tries) > 1:
        assert got[0].figures["retried"] == {"because": ["not judged: why"] * (len(tries) - 1),
                                             "waited": [{"s": 1.0}] * (len(tries) - 1)}
    else:
        assert "retried" not in got[0].figures


def test_waiting_for_a_quiet_host_is_bounded_and_stops_once_the_cores_are_free() -> None:
    frees = iter([0.4, 1.9, 2.0])
    made: list[Any] = []

    class Load:
        def start(self) -> None: pass
        def stop(self) -> None: pass
        def free_cores(self) -> float: return next(frees)

    free, waited = host.wait_quiet(lambda: made.append(1) or Load(), 1.8, bound=5, window=0.01)
    assert free == 1.9 and len(made) == 2 and waited < 5
    always_busy = iter([0.4] * 100)
    Load.free_cores = lambda self: next(always_busy)  # type: ignore[method-assign]
    free, waited = host.wait_quiet(Load, 1.8, bound=0.05, window=0.01)
    assert free == 0.4 and 0.04 <= waited <= 1.0


def test_a_retry_on_a_server_that_died_starts_a_new_one(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = iter([None, True])

    def fake_judge(bench: Any, ctx: checks.Context) -> list[checks.Verdict]:
        ok = next(runs)
        ctx.target._alive = False  # e.g. it crashed under the first try
        return [verdict(ok, host_busy=True) if ok is None else verdict(ok)]

    monkeypatch.setattr(runner, "check", fake_judge)
    monkeypatch.setattr(runner, "quieten", lambda *_: {})
    bench = FakeBench()
    got = checks.run_model(bench, model({"cpu_parallel": True}), [SCENARIOS["gil"]],  # type: ignore[arg-type]
                           lambda *_: None)
    assert [v.ok for v in got] == [True] and bench.served == 2


def test_a_broken_probe_leaves_each_declared_key_not_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(bench: Any, ctx: checks.Context) -> None:
        raise RuntimeError("the swarm failed: boom")

    monkeypatch.setattr(runner, "run_probes", broken)
    ctx = context("stalls", {"block_stalls_others": True})  # sleep_stalls_others not declared: skipped
    got = runner.check(FakeBench(), ctx)  # type: ignore[arg-type]
    assert [(v.expect, v.ok) for v in got] == [("block_stalls_others", None)]
    assert "boom" in got[0].observed


def test_a_swarm_thread_that_fails_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class Bench:
        def swarm(self, *args: Any) -> Probe:
            raise OSError("the engine went away")

    ctx = context("c10k", {"c10k": "holds"})
    ctx.readings["main"] = {}
    with pytest.raises(RuntimeError, match="the swarm failed: OSError: the engine went away"):
        runner._with_peak_reading(Bench(), ctx, "main", "c10k-main", [], 1)  # type: ignore[arg-type]


def test_a_target_that_declares_nothing_a_scenario_judges_is_skipped_and_said_so() -> None:
    ref = Model("native", "s", "d", {"sleep_stalls_others": False}, None, {}, Path("x"), kind="reference")
    found = list(SCENARIOS.values())
    assert [s.name for s in scenarios.applicable(ref, found)] == ["stalls"]
    skips = scenarios.skipped(ref, found)
    assert {"model": "native", "check": "stalls", "expect": "block_stalls_others",
            "why": "native (reference) does not declare 'block_stalls_others'"} in skips
    assert not any(s["expect"] == "sleep_stalls_others" for s in skips)


# -- --expect ------------------------------------------------------------------------

def test_expect_overrides_are_yaml_checked_like_model_yaml() -> None:
    assert models.parse_expect(["peak_served=1", "fd_limit=null", "c10k=holds", "cpu_parallel=false"]) == \
        {"peak_served": 1, "fd_limit": None, "c10k": "holds", "cpu_parallel": False}


@pytest.mark.parametrize("text, message", [
    ("peak_served", r"--expect peak_served: write KEY=VALUE"),
    ("=1", r"write KEY=VALUE"),
    ("peak_served=some", r"--expect peak_served=some: expect.peak_served is 'some'; allowed: 1 \| all \| workers"),
    ("happiness=true", r"expect.happiness is not a known expectation"),
    ("wouldblock_counter=false", r"allowed: True"),
    ("c10k=[1, ", r"is not a YAML value"),
])
def test_bad_expect_overrides_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        models.parse_expect([text])


def test_an_override_changes_only_that_declaration() -> None:
    m = model({"peak_served": "all", "threads": "fixed"}).with_expect({"peak_served": 1})
    assert m.expect == {"peak_served": 1, "threads": "fixed"}


# -- user errors of the verbs: one line, exit 2, before any container -------------------

@pytest.mark.parametrize("argv, message", [
    (["run", "gil"], "lab run gil: which models? name them with --model M (repeatable) or use --all"),
    (["run", "gil", "--model", "epoll", "--all"], "not both"),
    (["run", "no/such/scenario.yaml", "--model", "epoll"], "no/such/scenario.yaml: no such file"),
    (["check", "epoll", "--scenario", "missing.yaml"], "missing.yaml: no such file"),
    (["check", "epoll", "--expect", "peak_served=some"], "--expect peak_served=some: expect.peak_served is"),
    (["check", "threads", "--scenario", "triggering"], "no check applies"),
])
def test_verb_user_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from lab import cli
    assert cli.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
