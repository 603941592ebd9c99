"""Judging a target without the lab's trace, from the clients' side.

A real server (kind: server) writes no `recv` or `close` events, so who it
served when is read from the swarm's own records: a client is served from
its first reply until it leaves (its close).  When fewer are served than
asked, the rest get their first reply only after another client has left:
they were waiting.  Threads and processes come from the container's process
table, as for every target (lab/checks/judges.py: growth, thread_count).

A close by the server (the swarm's `eof`, `reset`) is a failure unless the
target declares `closes_idle: true` (Apache event closes a busy process's
idle keep-alive connections on purpose): then a client the server closed
after serving it counts as served until then, and its requests cut short by
the close are not counted as waiting.

Also here: the slow_stalls judge, for the target's own slow request
(model.yaml `slow:`), the real servers' counterpart of BLOCK and SLEEP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..measure import analysis as a
from . import Missing, connected_clients, need, threads_while_serving
from .registry import judge

if TYPE_CHECKING:
    from . import Context, Verdict


def served_spans(results: dict[str, Any], end: float) -> dict[str, tuple[float, float]]:
    """For each connection: from the client's first reply to its close (or
    ``end``): when it was being served, as the client saw it."""
    return {c["conn"]: (c["first_reply"], c.get("close_t") or end) for c in results.get("connections", [])
            if c.get("conn") and c.get("first_reply") is not None}


def closed_by_server(results: dict[str, Any]) -> dict[int, str]:
    """Clients whose connection the server ended (client -> how), never connect failures."""
    return {c["client"]: c["close"] for c in results.get("connections", [])
            if c.get("conn") and c.get("close") in a.ERROR_KINDS}


def served_at_once(ctx: "Context") -> list["Verdict"]:
    """served_at_once (lab/checks/judges.py) for a target without the lab's
    trace: peak clients served at once from the clients' first replies and
    closes; thread_count from the process table while they were served."""
    seen: dict[str, Any] = {}

    def spans() -> dict[str, tuple[float, float]]:
        if "spans" not in seen:
            probe, conns = connected_clients(ctx)
            seen.update(spans=served_spans(probe.results, probe.ended), conns=conns, began=probe.began,
                        closed=closed_by_server(probe.results))
        return seen["spans"]

    def peak_served(key: str) -> "Verdict":
        served = spans()
        asked, connected, closed = ctx.asked(), len(seen["conns"]), seen["closed"]
        want = ctx.expect(key)
        allowed = bool(ctx.model.spec.get("closes_idle"))
        # Closed by the server's own rule after being served: served, but not
        # counted at once (it was cut short, it did not leave); the rest are.
        cut = {conn for conn, client in seen["conns"].items() if client in closed and conn in served} \
            if allowed else set()
        kept = {conn: span for conn, span in served.items() if conn not in cut}
        need(not cut or len(kept) >= 2, f"the server closed {len(cut)} of {asked} clients: too few left to tell")
        among = asked - len(cut)
        expected = {1: 1, "all": among, "workers": min(ctx.workers, among)}.get(want, want)
        need(expected, "the model declares no pool size (workers) for peak_served: workers")
        peak = a.peak_overlap(kept.values())
        ok = peak == expected and len(served) == asked and (allowed or not closed)
        observed = f"{peak} of {among} at once (from the clients' first replies and closes)"
        observed += a.short_of(asked, connected, len(served), "answered")
        if closed:
            observed += (f"; the server closed {len(closed)} client(s) between requests"
                         + (" (closes_idle: its rule; they count as served, not at once)" if allowed
                            else ", which the model does not declare"))
        waited = None
        if expected < among and kept:
            waited = a.waited_their_turn(kept.values(), expected)
            ok = ok and waited
            observed += "; the rest waited until one left" if waited else "; a waiting client was served early"
        return ctx.verdict(key, f"{want} ({expected} of {among})", observed, ok,
                           peak=peak, clients=asked, connected=connected, served=len(served), waited=waited,
                           closed_by_server=closed, evidence="client side",
                           spans={c: [round(s - seen["began"], 3), round(e - seen["began"], 3)]
                                  for c, (s, e) in served.items()})

    def thread_count(key: str) -> "Verdict":
        return threads_while_serving(ctx, key, spans())

    return ctx.each(("peak_served",), peak_served) + ctx.each(("thread_count",), thread_count)


def others_waits(results: dict[str, Any], client: int, start: float, length: float,
                 closes_ok: bool) -> tuple[float | None, int]:
    """The other clients' worst wait for requests sent in [start, start+length)
    in ms (never answered: until the run's end), and how many of theirs the
    server cut short by closing the connection, left out when ``closes_ok``."""
    end = results["ended"]["monotonic"]
    closed = closed_by_server(results)
    worst, cut = None, 0
    for conn in results.get("timeline", {}).get("conns", []):
        if conn["client"] == client:
            continue
        for sent, got in conn["pairs"]:
            if not start <= sent < start + length:
                continue
            if got is None and conn["client"] in closed and closes_ok:
                cut += 1
                continue
            wait = ((got if got is not None else end) - sent) * 1000
            worst = wait if worst is None else max(worst, wait)
    return worst, cut


def released_with(results: dict[str, Any], act: dict[str, Any], length: float, late_ms: float) -> bool:
    """Were the other clients' late replies (a wait of at least ``late_ms``
    for a request sent during the slow one) all released together with the
    slow request's own reply?  Then the slow request held them, whatever
    else the host was doing: a busy host delays replies at random, it does
    not line them up with one request's end."""
    done, start = act.get("done_t"), act["sent_t"]
    if done is None:
        return False
    late = [got for conn in results.get("timeline", {}).get("conns", []) if conn["client"] != act["client"]
            for sent, got in conn["pairs"] if start <= sent < start + length and got is not None
            and (got - sent) * 1000 >= late_ms]
    return bool(late) and all(abs(got - done) <= RELEASED_WITHIN * length for got in late)


RELEASED_WITHIN = 0.1  # share of the slow request's length: "released with it"


@judge(keys=("slow_stalls_others",), host_cpu=True,
       needs=("the target's slow request (model.yaml slow:) sent and answered",
              "every client the scenario asked for connected",
              "other clients' requests sent while it ran",
              "what the host could give meanwhile, when the others were late (unless their replies "
              "came together with the slow request's own)"))
def slow_stalls(ctx: "Context") -> list["Verdict"]:
    """One client sends the target's own slow request (redis DEBUG SLEEP,
    PostgreSQL pg_sleep, Apache /sleep/500): how late are the other clients'
    replies meanwhile?  As the stalls judge reads BLOCK and SLEEP, with the
    bounds a share of the request's declared length."""
    def one(key: str) -> "Verdict":
        slow = ctx.model.spec.get("slow") or {}
        need(slow.get("request") and slow.get("ms"), f"{ctx.model.name} declares no slow: request")
        send, ms = slow["request"], float(slow["ms"])
        results = ctx.probe().results
        act = a.action(results, send)
        need(act is not None and act.get("sent_t") is not None, f"{send} was never sent")
        assert act is not None
        need(act.get("outcome") == "reply", f"{send} got no reply ({act.get('outcome')}): the server did not "
                                            "come back from it")
        asked, connected = ctx.asked(), len(a.conns_of(results))
        need(connected == asked, f"only {connected} of {asked} clients connected")
        closes_ok = bool(ctx.model.spec.get("closes_idle"))
        worst, cut = others_waits(results, act["client"], act["sent_t"], ms / 1000, closes_ok)
        need(worst is not None, f"no other client sent a request during {send}"
                                + (f" (the server closed {cut} of theirs)" if cut else ""))
        assert worst is not None
        stall_ms, free_ms = ms * ctx.tol["slow_stall_share_min"], ms * ctx.tol["slow_free_share_max"]
        reason, host = ctx.host_check("main", "free_cores_latency_min", act["sent_t"],
                                      act["sent_t"] + max(ms, worst) / 1000)
        stalled, free = worst >= stall_ms, worst <= free_ms
        together = stalled and released_with(results, act, ms / 1000, stall_ms)
        figures = dict(worst_ms=round(worst, 1), own_ms=act.get("latency_ms"), declared_ms=ms,
                       stall_ms_min=stall_ms, free_ms_max=free_ms, cut_by_server=cut, released_with_it=together,
                       **host)
        if not free and reason and not together:
            raise Missing(f"{reason}; the others waited up to {worst:.0f} ms", **figures)
        want = ctx.expect(key)
        observed = f"others' worst wait {worst:.0f} ms" + ("" if stalled or free else " (in between)")
        if together:
            observed += ", their replies released together with its own"
        if cut:
            observed += f"; {cut} of their requests cut short by the server's close (closes_idle)"
        return ctx.verdict(key, f"others {'stalled' if want else 'not stalled'} by {send} "
                                f"(worst wait {'>=' if want else '<='} {stall_ms if want else free_ms:.0f} ms)",
                           observed, stalled if want else free, **figures)

    return ctx.each(("slow_stalls_others",), one)
