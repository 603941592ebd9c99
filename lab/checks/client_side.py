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
(model.yaml `slow:`), the real servers' counterpart of BLOCK and SLEEP; and
the slow_clients judge (slow clients sending their requests in pieces beside
normal ones), read from the clients' side for every target alike.
"""

from __future__ import annotations

from typing import Any

from ..measure import analysis as a
from .context import Context, connected_clients, threads_while_serving
from .registry import judge
from .domain import action_in_order, distinct_clients, finite, need_count, spans_in_order, timeline_in_order
from .verdict import Missing, Verdict, need


def served_at_once(ctx: Context) -> list[Verdict]:
    """served_at_once (lab/checks/judges.py) for a target without the lab's
    trace: peak clients served at once from the clients' first replies and
    closes; thread_count from the process table while they were served."""
    seen: dict[str, Any] = {}

    def spans() -> dict[str, tuple[float, float]]:
        if "spans" not in seen:
            probe, conns = connected_clients(ctx)
            seen.update(spans=a.client_spans(probe.results, probe.ended), conns=conns, began=probe.began,
                        closed=a.closed_by_server(probe.results))
            spans_in_order(seen["spans"], "the clients' records: the span served")
        return seen["spans"]

    def peak_served(key: str) -> Verdict:
        served, asked, closed = spans(), ctx.asked(), seen["closed"]
        allowed = bool(ctx.model.spec.get("closes_idle"))
        kept, cut = _not_cut(served, seen["conns"], closed if allowed else {})
        need(not cut or len(kept) >= 2, f"the server closed {len(cut)} of {asked} clients: too few left to tell")
        among = asked - len(cut)
        want = ctx.expect(key)
        expected = {1: 1, "all": among, "workers": min(ctx.workers, among)}.get(want, want)
        need(expected, "the model declares no pool size (workers) for peak_served: workers")
        peak = a.peak_overlap(kept.values())
        waited, said = a.turn_taking(kept, expected, among)
        ok = peak == expected and len(served) == asked and (allowed or not closed) and waited is not False
        observed = f"{peak} of {among} at once (from the clients' first replies and closes)" \
            + a.short_of(asked, len(seen["conns"]), len(served), "answered") + _closes(closed, allowed) + said
        return ctx.verdict(key, f"{want} ({expected} of {among})", observed, ok,
                           peak=peak, clients=asked, connected=len(seen["conns"]), served=len(served), waited=waited,
                           closed_by_server=closed, evidence="client side", spans=a.relative(served, seen["began"]))

    def thread_count(key: str) -> Verdict:
        return threads_while_serving(ctx, key, spans())

    return ctx.each(("peak_served",), peak_served) + ctx.each(("thread_count",), thread_count)


def _not_cut(served: dict[str, tuple[float, float]], conns: dict[str, int],
             closed: dict[int, str]) -> tuple[dict[str, tuple[float, float]], set[str]]:
    """The spans left, and the connections cut: a client the server closed by
    its own rule after serving it was served, but is not counted at once (it
    was cut short, it did not leave)."""
    cut = {conn for conn, client in conns.items() if client in closed and conn in served}
    return {conn: span for conn, span in served.items() if conn not in cut}, cut


def _closes(closed: dict[int, str], allowed: bool) -> str:
    """What the observed figure adds when the server closed clients between requests."""
    if not closed:
        return ""
    return (f"; the server closed {len(closed)} client(s) between requests"
            + (" (closes_idle: its rule; they count as served, not at once)" if allowed
               else ", which the model does not declare"))


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


@judge(host_cpu=True,
       needs=("the target's slow request (model.yaml slow:) sent and answered, its reply after it",
              "the swarm's timeline in order: every reply after its request, finite times",
              "every client the scenario asked for connected",
              "other clients' requests sent while it ran",
              "what the host could give meanwhile, when the others were late (unless their replies "
              "came together with the slow request's own)"))
def slow_stalls(ctx: Context) -> list[Verdict]:
    """One client sends the target's own slow request (redis DEBUG SLEEP,
    PostgreSQL pg_sleep, Apache /sleep/500): how late are the other clients'
    replies meanwhile?  As the stalls judge reads BLOCK and SLEEP, with the
    bounds a share of the request's declared length."""
    def one(key: str) -> Verdict:
        slow = ctx.model.spec.get("slow") or {}
        need(slow.get("request") and slow.get("ms"), f"{ctx.model.name} declares no slow: request")
        send, ms = slow["request"], float(slow["ms"])
        results = ctx.probe().results
        act = a.action(results, send)
        need(act is not None and act.get("sent_t") is not None, f"{send} was never sent")
        assert act is not None
        need(act.get("outcome") == "reply", f"{send} got no reply ({act.get('outcome')}): the server did not "
                                            "come back from it")
        action_in_order(act)
        timeline_in_order(results)  # the others' waits: replies after their sends
        asked, connected = ctx.asked(), len(a.conns_of(results))
        need(connected == asked, f"only {connected} of {asked} clients connected")
        closes_ok = bool(ctx.model.spec.get("closes_idle"))
        worst, cut = a.others_waits(results, act["client"], act["sent_t"], ms / 1000, closes_ok)
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


SLOW_CONSIDERED_MIN = 10  # the others' requests it takes to tell a share answered on time


@judge(host_cpu=True,
       needs=("the swarm's connection records, each client once: slow clients (role slow) and the others",
              "every slow client the scenario asked for connected and began a request",
              "a slow request answered: the server read the pieces at all",
              "the others' requests sent while every slow client was still connected, the timeline in order",
              "what the host could give meanwhile, when the others were late but not held"))
def slow_clients(ctx: Context) -> list[Verdict]:
    """Slow clients (each request in pieces, --slow-clients) connect first,
    then normal clients send every 50 ms: what share of the normal clients'
    requests was answered within slow_clients_late_ms?  Held: almost none
    (a worker per connection, every one taken by a slow client); not held:
    almost all."""
    def one(key: str) -> Verdict:
        figures = _slow_figures(ctx)
        share = figures["on_time_share"]
        held, free = share <= ctx.tol["slow_held_share_max"], share >= ctx.tol["slow_free_share_min"]
        if not held and not free:
            reason, host = ctx.host_check("main", "free_cores_latency_min")
            figures.update(host)
            if reason:
                raise Missing(f"{reason}; {share:.0%} of the others' requests answered on time", **figures)
        want = ctx.expect(key)
        late = ctx.tol["slow_clients_late_ms"]
        observed = (f"{figures['on_time']} of {figures['considered']} of the others' requests answered within "
                    f"{late} ms ({share:.0%}) beside {figures['slow']} slow clients"
                    + ("" if held or free else ", in between"))
        if figures["slow_closed_by_server"]:
            observed += f"; the server closed {figures['slow_closed_by_server']} slow client(s)"
        bound = (f"<= {ctx.tol['slow_held_share_max']:.0%}" if want == "held"
                 else f">= {ctx.tol['slow_free_share_min']:.0%}")
        return ctx.verdict(key, f"{want} (others answered on time {bound})", observed,
                           held if want == "held" else free, **figures)

    return ctx.each(("slow_clients",), one)


def _slow_figures(ctx: Context) -> dict[str, Any]:
    """What slow_clients reads, each figure through its domain (Missing if absurd)."""
    results = ctx.probe().results
    distinct_clients(results.get("connections", []))
    timeline_in_order(results)
    slow, others = a.slow_roles(results)
    spec = ctx.scenario.probes.get("main")
    asked = int(spec.number("slow-clients", ctx.workers, 0) if spec is not None else 0)
    need(asked >= 1, "the scenario runs no slow clients (slow-clients)")
    began = [c for c in slow if c.get("connect_end") is not None and need_count(c.get("sent"), "a slow client's sends")]
    need(len(began) == asked, f"{len(began)} of {asked} slow clients connected and began a request")
    answered = sum(need_count(c.get("replies"), "a slow client's replies") for c in slow)
    need(answered >= 1, "no slow request was answered: the server never read the pieces to the end")
    need(others, "no other client ran beside the slow ones")
    end = finite((results.get("ended") or {}).get("monotonic"), "the swarm's end time")
    closed = a.closed_by_server(results)
    cut = [finite(c.get("close_t"), "a slow client's close") for c in slow if c["client"] in closed]
    late_s = ctx.tol["slow_clients_late_ms"] / 1000
    until = min([end] + cut) - late_s  # while every slow client was there, and the run went on late_s more
    got, considered, worst = a.on_time(results, {c["client"] for c in others}, until, late_s)
    need(considered >= SLOW_CONSIDERED_MIN, f"the others sent {considered} requests while every slow client was "
                                            f"connected: fewer than {SLOW_CONSIDERED_MIN}")
    return dict(on_time=got, considered=considered, on_time_share=round(got / considered, 3),
                worst_ms=None if worst is None else round(worst, 1), slow=asked, slow_replies=answered,
                slow_closed_by_server=len(cut), late_ms=ctx.tol["slow_clients_late_ms"])
