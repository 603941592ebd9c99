"""Reading figures out of traces: small, pure functions over event lists and
the swarm's results, so each judge says what it measures in a few lines."""

from __future__ import annotations

import json
from typing import Any, Iterable

from ioschema import ERROR_KINDS

Event = dict[str, Any]


def conns_of(results: dict[str, Any]) -> dict[str, int]:
    """The swarm's connections (server-side `conn` -> client number)."""
    return {c["conn"]: c["client"] for c in results.get("connections", []) if c.get("conn")}


def served_spans(events: Iterable[Event], conns: dict[str, int], end: float) -> dict[str, tuple[float, float]]:
    """For each of ``conns``: from the server's first read of a request to
    the close (or ``end`` if it is still open): when it was being served."""
    first: dict[str, float] = {}
    closed: dict[str, float] = {}
    for e in events:
        conn = e.get("conn")
        if conn not in conns:
            continue
        if e["ev"] == "recv" and e.get("bytes") and conn not in first:
            first[conn] = e["t"]
        elif e["ev"] == "close":
            closed[conn] = e["t"]
    return {c: (t, closed.get(c, end)) for c, t in first.items()}


def client_spans(results: dict[str, Any], end: float) -> dict[str, tuple[float, float]]:
    """For each connection: from the client's first reply to its close (or
    ``end``): when it was being served, as the client saw it (a target
    without the lab's trace)."""
    return {c["conn"]: (c["first_reply"], c.get("close_t") or end) for c in results.get("connections", [])
            if c.get("conn") and c.get("first_reply") is not None}


def closed_by_server(results: dict[str, Any]) -> dict[int, str]:
    """Clients whose connection the server ended (client -> how), never connect failures."""
    return {c["client"]: c["close"] for c in results.get("connections", [])
            if c.get("conn") and c.get("close") in ERROR_KINDS}


def peak_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """The most spans open at one instant (a close before an open at a tie)."""
    points = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda p: (p[0], p[1]))
    now = peak = 0
    for _, step in points:
        now += step
        peak = max(peak, now)
    return peak


def others_worst_ms(results: dict[str, Any], client: int, start: float, length: float) -> float | None:
    """The worst wait of the other clients' requests sent in [start, start+length):
    reply time minus send time, or until the run's end for those never answered."""
    return others_waits(results, client, start, length, closes_ok=False)[0]


def others_waits(results: dict[str, Any], client: int, start: float, length: float,
                 closes_ok: bool) -> tuple[float | None, int]:
    """The other clients' worst wait for requests sent in [start, start+length)
    in ms (never answered: until the run's end), and how many of theirs the
    server cut short by closing the connection, left out when ``closes_ok``."""
    end = results["ended"]["monotonic"]
    closed = closed_by_server(results) if closes_ok else {}
    worst, cut = None, 0
    for conn in results.get("timeline", {}).get("conns", []):
        if conn["client"] == client:
            continue
        for sent, got in conn["pairs"]:
            if not start <= sent < start + length:
                continue
            if got is None and conn["client"] in closed:
                cut += 1
                continue
            wait = ((got if got is not None else end) - sent) * 1000
            worst = wait if worst is None else max(worst, wait)
    return worst, cut


def replies_after(results: dict[str, Any], t: float) -> dict[int, int]:
    """Replies each client received after monotonic time ``t``."""
    out: dict[int, int] = {}
    for conn in results.get("timeline", {}).get("conns", []):
        out[conn["client"]] = out.get(conn["client"], 0) + sum(
            1 for _, got in conn["pairs"] if got is not None and got > t)
    return out


def action(results: dict[str, Any], send: str) -> dict[str, Any] | None:
    return next((a for a in results.get("actions", []) if a["send"] == send), None)


def action_of(results: dict[str, Any], word: str) -> dict[str, Any] | None:
    """The first scripted request of command ``word`` (WORK n: n is the scenario's)."""
    return next((a for a in results.get("actions", []) if a["send"].split(" ", 1)[0] == word), None)


def own_seconds(act: dict[str, Any]) -> float | None:
    """How long a scripted request took to be answered: reply time minus send time."""
    if act.get("done_t") is not None and act.get("sent_t") is not None:
        return float(act["done_t"] - act["sent_t"])
    return act["latency_ms"] / 1000 if act.get("latency_ms") is not None else None


def reply_texts(swarm_output: str) -> dict[int, list[str]]:
    """Reply lines per client from the swarm's msg-level trace."""
    out: dict[int, list[str]] = {}
    for line in swarm_output.splitlines():
        if '"ev":"reply"' not in line:
            continue
        try:
            e = json.loads(line)
        except ValueError:
            continue
        out.setdefault(e.get("client", 0), []).append(e.get("data", ""))
    return out


def cores(first: Any, last: Any) -> float | None:
    """CPU used between two cgroup readings (lab.measure.Cpu: ``t`` monotonic
    seconds, ``cpu_s`` CPU seconds so far), in cores: CPU seconds per second."""
    if last.t <= first.t:
        return None
    return (last.cpu_s - first.cpu_s) / (last.t - first.t)


def waited_their_turn(spans: Iterable[tuple[float, float]], at_once: int) -> bool:
    """Served in order of arrival, did each client beyond the first
    ``at_once`` start only after one of those had left?"""
    order = sorted(spans)
    first_leave = min(end for _, end in order[:at_once])
    return all(start >= first_leave for start, _ in order[at_once:])


def turn_taking(spans: dict[str, tuple[float, float]], at_once: int, among: int) -> tuple[bool | None, str]:
    """Fewer served at once than ``among``: did the rest wait their turn?
    (None when there is no turn to take), and the words for it."""
    if at_once >= among or not spans:
        return None, ""
    waited = waited_their_turn(spans.values(), at_once)
    return waited, "; the rest waited until one left" if waited else "; a waiting client was served early"


def relative(spans: dict[str, tuple[float, float]], origin: float) -> dict[str, list[float]]:
    """Spans as seconds after ``origin``, rounded: how a verdict's figures keep them."""
    return {c: [round(s - origin, 3), round(e - origin, 3)] for c, (s, e) in spans.items()}


def short_of(asked: int, connected: int, served: int, word: str) -> str:
    """What an observed figure must add when not every client took part."""
    if connected < asked:
        return f"; only {connected} of {asked} clients connected"
    if served < asked:
        return f"; {asked - served} connected but never {word}"
    return ""


def slow_roles(results: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The swarm's connection records: those of slow clients (the slow
    pattern, ``--slow-clients``) and of the others that sent requests."""
    conns = results.get("connections", [])
    slow = [c for c in conns if c.get("role") == "slow"]
    return slow, [c for c in conns if c.get("role") not in ("slow", "hold")]


def on_time(results: dict[str, Any], clients: set[int], until: float, late_s: float) -> tuple[int, int, float | None]:
    """Of the requests ``clients`` sent before ``until`` (the timeline's
    [sent, replied] pairs), how many were answered within ``late_s``; how
    many there were; the worst wait in ms (an unanswered one waited until
    ``until + late_s`` at least: the run went on that long)."""
    answered = considered = 0
    worst: float | None = None
    for conn in (results.get("timeline") or {}).get("conns") or []:
        if conn.get("client") not in clients:
            continue
        for sent, got in conn.get("pairs") or []:
            if sent > until:
                continue
            considered += 1
            wait = (got - sent) if got is not None else until + late_s - sent
            answered += got is not None and wait <= late_s
            worst = wait * 1000 if worst is None else max(worst, wait * 1000)
    return answered, considered, worst
