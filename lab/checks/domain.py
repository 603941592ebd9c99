"""The domain of the evidence: what a figure a judge reads can physically be.

A judge that is fed a figure outside its domain (a CPU counter running
backwards, a reply stamped before its request, NaN, a client counted twice)
has learnt nothing about the model: its verdict is "not judged: <why>"
(Missing), never red and never green.  Each helper reads one figure through
its domain and returns it, so a judge states the domain where it reads:

    used = need_in(a.cores(first, last), 0, ctx.cores_bound("idle"), "the idle server's CPU", "cores")
    grew = need_grew(before["reads"], after["reads"], "STATS reads")

The bounds below are what is measurable or possible, never what a model is
expected to do (that is model.yaml's and services/tolerances.yaml's).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from .verdict import Missing

CORES_SLACK = 0.25  # over the CPUs present: readings 50 ms apart, interpolated; more than this is impossible
CPU_WINDOW_MIN_S = 0.1  # a CPU figure over less spans fewer than two 50 ms readings: their jitter, not the server
WORK_CORES_MIN = 0.5  # while WORK runs the server computes; less says no CPU work ran (or the sampler stalled)
WORK_MS_MIN = 10.0  # one WORK alone answered sooner did no CPU work worth timing
FD_SLACK = 64  # descriptors a server holds besides its clients' (stdio, the listening socket, a poller, logs)


def finite(value: Any, what: str) -> float:
    """``value`` as a float, if it is a finite real number (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Missing(f"{what} is {_shown(value)}, not a number")
    if not math.isfinite(value):
        raise Missing(f"{what} is {value}, not a finite number")
    return float(value)


def need_in(value: Any, low: float | None, high: float | None, what: str, unit: str = "",
            outside: str = "outside what is possible") -> float:
    """``value``, if it is finite and within [low, high] (None: unbounded);
    else Missing: ``what`` is ``value``, ``outside`` (the bounds)."""
    v = finite(value, what)
    if (low is not None and v < low) or (high is not None and v > high):
        bounds = f">= {low:g}" if high is None else f"<= {high:g}" if low is None else f"between {low:g} and {high:g}"
        raise Missing(f"{what} is {v:g}{' ' + unit if unit else ''}, {outside} ({bounds})")
    return v


def need_count(value: Any, what: str, high: float | None = None) -> int:
    """A count: a whole number >= 0 (at most ``high``)."""
    v = need_in(value, 0, high, what)
    if v != int(v):
        raise Missing(f"{what} is {v:g}, not a whole number")
    return int(v)


def need_grew(before: Any, after: Any, what: str) -> float:
    """How much a counter that only grows grew between two readings (>= 0)."""
    first, last = finite(before, f"{what} (first reading)"), finite(after, f"{what} (second reading)")
    if last < first:
        raise Missing(f"{what} went backwards ({first:g}, then {last:g}): not one counter read twice")
    return last - first


def need_same_pid(before: dict[str, Any], after: dict[str, Any], what: str = "STATS") -> None:
    """Two readings of one server's counters: the same process answered both."""
    pids = before.get("pid"), after.get("pid")
    for pid, when in zip(pids, ("before", "after")):
        if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
            raise Missing(f"{what} {when} the probe names no process (pid {_shown(pid)}): not a server's answer")
    if pids[0] != pids[1]:
        raise Missing(f"{what} came from two processes (pid {pids[0]}, then {pids[1]}): the server restarted, "
                      "so its counters started again")


def need_after(sent: Any, got: Any, what: str) -> None:
    """A reply (``got``, None: never answered) stamped no earlier than its send."""
    s = finite(sent, f"{what}: a send time")
    if got is not None and finite(got, f"{what}: a reply time") < s:
        raise Missing(f"{what}: a reply stamped {(s - got) * 1000:.1f} ms before its request was sent")


def pairs_in_order(conns: Iterable[dict[str, Any]], what: str = "the swarm's timeline") -> None:
    """Every [sent, replied] pair of every connection: finite, replies after their sends."""
    for conn in conns:
        for pair in conn.get("pairs") or []:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise Missing(f"{what}: client {conn.get('client')} has a pair that is not [sent, replied]")
            need_after(pair[0], pair[1], f"{what}, client {conn.get('client')}")


def timeline_in_order(results: dict[str, Any]) -> None:
    """The swarm's timeline: every pair in order, and no request sent after
    the run's end (an unanswered one waits until then)."""
    conns = (results.get("timeline") or {}).get("conns") or []
    pairs_in_order(conns)
    end = (results.get("ended") or {}).get("monotonic")
    if end is None:
        return
    end = finite(end, "the swarm's end time")
    late = [p[0] for c in conns for p in c.get("pairs") or [] if p[0] > end]
    if late:
        raise Missing(f"the swarm's timeline has a request sent {(max(late) - end) * 1000:.1f} ms after the run "
                      "ended: not one clock")


def action_in_order(act: dict[str, Any]) -> None:
    """A scripted request's own stamps: sent, answered after it, its latency >= 0 and finite."""
    send = act.get("send", "the scripted request")
    need_after(act.get("sent_t"), act.get("done_t"), str(send))
    if act.get("latency_ms") is not None:
        need_in(act["latency_ms"], 0, None, f"{send}'s own reply time", "ms")


def distinct_clients(records: Iterable[dict[str, Any]], what: str = "the swarm's connection records") -> None:
    """Each client once: a client counted twice would count as two.  (The
    storm pattern numbers slots, not clients: no scenario a judge reads uses it.)"""
    seen: set[Any] = set()
    for rec in records:
        client = rec.get("client")
        if client in seen:
            raise Missing(f"{what} name client {client} twice: one client would count as two")
        seen.add(client)


def spans_in_order(spans: dict[str, tuple[float, float]], what: str) -> None:
    """Each connection's served span ends no earlier than it began, both finite."""
    for conn, (start, end) in spans.items():
        if finite(end, f"{what} of {conn}: its end") < finite(start, f"{what} of {conn}: its start"):
            raise Missing(f"{what} of {conn} ends {(start - end) * 1000:.1f} ms before it begins: "
                          "the times are not on one clock")


def need_threads(samples: Iterable[Any], what: str = "a process-table sample") -> None:
    """Process-table samples that read a running server: at least one
    process, each with at least one thread (an empty table read nothing)."""
    for s in samples:
        per = getattr(s, "per_process", None) or {}
        counts = [s.processes, s.threads, *per.values()]
        if any(isinstance(n, bool) or not isinstance(n, int) for n in counts):
            raise Missing(f"{what} holds something other than whole numbers: {counts[:4]}")
        if s.processes < 1 or s.threads < 1 or any(n < 1 for n in per.values()):
            raise Missing(f"{what} found {s.processes} processes, {s.threads} threads "
                          f"({'per process: ' + str(sorted(per.values())) if per else 'none listed'}): "
                          "the process table was not read, or the server was gone")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
