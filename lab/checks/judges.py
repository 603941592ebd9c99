"""The judges: what each check measures, and how it compares with model.yaml.

A judge reads what its scenario's probes recorded (the swarm's results, the
server's trace, samples of the server's cgroup and process table, what the
host could give meanwhile) and turns it into verdicts: expected (from
model.yaml), observed (a figure, in words), and whether they agree within
the tolerances (services/tolerances.yaml, or a model's own `tolerances:`).
No expected value is written here.

Rules every judge keeps:

- It names the evidence it needs (`needs=` below).  Without it the verdict
  is "not judged: <what was missing>" (ok None): `need(...)` says so.
- "held" only on positive evidence; "did not hold" only when the evidence
  contradicts the declaration.
- Every figure it reads is read through its domain (domain.py: finite, >= 0,
  cores within the CPUs present, counters that only grow, replies after
  their sends, each client once, the same pid across two STATS).  Outside
  it the verdict is "not judged: <why>", never red, never green.
- A claim that something is absent shows that what could produce it
  happened: serial CPU needs CPU work that ran, "fixed" a process table
  that was read, "level" reads, "no lost updates" counts that moved.
- A claim about clients is about the clients the scenario asked for, not
  only those that happened to connect.
- A judge that depends on free CPU (`host_cpu=True`) may blame the model
  for a low or late figure only when the host could give what the claim
  needs; otherwise "not judged: host busy (...)".  A figure the busy host
  could not have caused (many cores busy, replies on time) still counts.
"""

from __future__ import annotations

from typing import Any

from ..errors import LabError
from ..measure import analysis as a
from . import client_side
from .context import Context, connected_clients, threads_while_serving
from .domain import (CPU_WINDOW_MIN_S, FD_SLACK, WORK_CORES_MIN, WORK_MS_MIN, action_in_order, distinct_clients,
                     finite, need_count, need_grew, need_in, need_same_pid, need_threads, pairs_in_order,
                     spans_in_order, timeline_in_order)
from .registry import JUDGES, judge
from .verdict import Missing, Verdict, need

__all__ = ["JUDGES"]


@judge(host_cpu=True,
       needs=("two readings of the server's cgroup CPU around the idle window, each with a CPU figure, "
              "at least 0.1 s apart, the counter not running backwards, within the CPUs present",
              "what the host could give meanwhile, when the server used less than a busy poller would"))
def idle_cpu(ctx: Context) -> list[Verdict]:
    """CPU with no client at all, from the container's cgroup counters."""
    def one(key: str) -> Verdict:
        need(len(ctx.idle) == 2, "no two readings of the idle server's CPU")
        first, last = ctx.idle
        need(first.cpu_s is not None and last.cpu_s is not None, "a reading of the server's CPU had no CPU figure")
        window = need_in(finite(last.t, "the second reading's time") - finite(first.t, "the first reading's time"),
                         CPU_WINDOW_MIN_S, None, "the idle window", "s", "too short to measure")
        need_grew(first.cpu_s, last.cpu_s, "the server's CPU counter")
        used = need_in((last.cpu_s - first.cpu_s) / window, 0, ctx.cores_bound("idle"),
                       "the idle server's CPU", "cores")
        want = ctx.expect(key)
        reason, host = ctx.host_check("idle", "free_cores_busy_min", first.t, last.t)
        figures = dict(cores=round(used, 4), window_s=round(last.t - first.t, 2), **host)
        if want == "busy":
            ok, bound = used >= ctx.tol["busy_cores_min"], f">= {ctx.tol['busy_cores_min']} cores"
            if not ok and reason:  # a busy host may have starved the poller
                raise Missing(f"{reason}; the server used {used:.2f} cores", **figures)
        else:
            ok, bound = used <= ctx.tol["idle_cores_max"], f"<= {ctx.tol['idle_cores_max']} cores"
        return ctx.verdict(key, f"{want} ({bound})", f"{used:.3f} cores with no client", ok, **figures)

    return ctx.each(("idle_cpu",), one)


@judge(needs=("the clients the scenario asked for, and which of them connected",
              "the server's trace of their connections (first read of a request, close)",
              "the pool size, for peak_served: workers",
              "thread_count: a process-table sample while clients were being served"))
def served_at_once(ctx: Context) -> list[Verdict]:
    """Peak clients served at once, from the server's own trace: a client is
    served from the server's first read of its request until its close.  When
    fewer are served than asked, the rest must wait until one leaves.  "all"
    means every client asked was served at once.  Also, where declared, the
    threads in each server process meanwhile."""
    if not getattr(ctx.target, "traced", True):  # a real server: from the clients' side
        return client_side.served_at_once(ctx)
    seen: dict[str, Any] = {}

    def spans() -> dict[str, tuple[float, float]]:
        if "spans" not in seen:
            probe, conns = connected_clients(ctx)
            ctx.settle(conns)
            events = ctx.events(probe)
            need(any(e.get("conn") in conns for e in events),
                 "the server's trace shows none of the clients' connections")
            seen.update(spans=a.served_spans(events, conns, probe.ended), conns=conns, began=probe.began)
            spans_in_order(seen["spans"], "the server's trace: the span served")
        return seen["spans"]

    def peak_served(key: str) -> Verdict:
        served = spans()
        asked, connected = ctx.asked(), len(seen["conns"])
        want = ctx.expect(key)
        expected = {1: 1, "all": asked, "workers": ctx.workers}.get(want, want)
        need(expected, "the model declares no pool size (workers) for peak_served: workers")
        peak = a.peak_overlap(served.values())
        ok = peak == expected and len(served) == asked
        observed = f"{peak} of {asked} at once"
        observed += a.short_of(asked, connected, len(served), "served")
        waited, said = a.turn_taking(served, expected, asked)
        return ctx.verdict(key, f"{want} ({expected} of {asked})", observed + said, ok and waited is not False,
                           peak=peak, clients=asked, connected=connected, served=len(served), waited=waited,
                           spans=a.relative(served, seen["began"]))

    def thread_count(key: str) -> Verdict:
        return threads_while_serving(ctx, key, spans())

    return ctx.each(("peak_served",), peak_served) + ctx.each(("thread_count",), thread_count)


@judge(needs=("the clients the scenario asked for, all connected",
              "process-table samples from before the first connect to after the last",
              "a sample of the server after the clients left"))
def growth(ctx: Context) -> list[Verdict]:
    """Threads and processes as clients connect and leave (ps -eLf of the
    container: the classic `ps huH p PID | wc -l`, per process)."""
    try:
        probe, samples, after, clients = _staircase(ctx)
    except Missing as why:
        return [ctx.not_judged(k, str(why)) for k in ("threads", "processes") if ctx.declares(k)]
    base = samples[0]
    verdicts = []
    for key, measure in (("threads", lambda s: s.threads), ("processes", lambda s: s.processes)):
        if not ctx.declares(key):
            continue
        peak = max(measure(s) for s in samples)
        grew, back = peak - measure(base), measure(after) == measure(base)
        want = ctx.expect(key)
        ok = (grew == clients if want == "per-client" else grew == 0) and back
        verdicts.append(ctx.verdict(
            key, f"{want} ({'+' + str(clients) if want == 'per-client' else '+0'} for {clients} clients, "
                 "then back)",
            f"{measure(base)} -> {peak} -> {measure(after)}", ok,
            before=measure(base), peak=peak, after=measure(after), clients=clients, samples=len(samples),
            series=[[round(s.t - probe.began, 2), measure(s)] for s in samples]))
    return verdicts


def _staircase(ctx: Context) -> tuple[Any, list[Any], Any, int]:
    """The growth probe's evidence, or Missing: every client asked connected,
    samples before the first connect and after the last, and one more after
    they all left."""
    probe = ctx.probe()
    asked = ctx.asked()
    need(asked > 0, "the scenario asked for no clients")
    conns = a.conns_of(probe.results)
    need(conns, f"none of the {asked} clients connected")
    need(len(conns) == asked, f"only {len(conns)} of {asked} clients connected")
    distinct_clients(probe.results.get("connections", []))
    samples = ctx.samples.get("main") or []
    need(samples, "no process-table samples")
    need_threads(samples)  # "fixed" needs a table that was read: 0 -> 0 is no server at all
    connects = [c["connect_end"] for c in probe.results.get("connections", []) if c.get("connect_end")]
    need(connects, "the swarm recorded no connect times")
    need(samples[0].t <= min(connects), "no sample before the first client connected")
    need(any(s.t >= max(connects) for s in samples),
         f"no sample after the last client connected ({len(samples)} samples; the sampler stopped early)")
    ctx.settle(conns)
    try:
        after = ctx.target.sample()
    except (LabError, KeyError, ValueError) as exc:
        raise Missing(f"no sample after the clients left ({exc})") from None
    need_threads([after], "the sample after the clients left")
    return probe, samples, after, asked


@judge(needs=("STATS answered before and after the probe, by the same process (pid), its counter not "
              "running backwards", "at least one request served"))
def would_block(ctx: Context) -> list[Verdict]:
    """EAGAIN instead of waiting: the server's own count of non-blocking
    calls that found nothing to do, against the requests it served.  A
    server creates a counter at its first count, so a STATS answer without
    one says it counted none."""
    def one(key: str) -> Verdict:
        before, after = ctx.stats.get("main:before"), ctx.stats.get("main:after")
        need(isinstance(before, dict) and isinstance(after, dict), "STATS did not answer before and after")
        assert before is not None and after is not None
        need_same_pid(before, after)
        served = need_count(ctx.probe().summary.get("replies", 0), "the count of requests served")
        need(served > 0, "no request was served")
        grew = need_grew(before.get("wouldblock", 0), after.get("wouldblock", 0), "the STATS wouldblock counter")
        return ctx.verdict(key, f"at least one EAGAIN per request ({served})",
                           f"{grew:.0f} EAGAIN returns for {served} requests", grew >= served,
                           wouldblock=int(grew), requests=served)

    return ctx.each(("wouldblock_counter",), one)


STALL_SENDS = {"block_stalls_others": "BLOCK 500", "sleep_stalls_others": "SLEEP 500",
               "work_stalls_others": "WORK"}  # WORK n: n is the scenario's, its length its own


@judge(host_cpu=True,
       needs=("the BLOCK/SLEEP/WORK sent and answered (the server came back from it), its reply after it",
              "the swarm's timeline in order: every reply after its request, finite times",
              "every client the scenario asked for connected",
              "other clients' requests sent while it ran",
              "WORK: its own reply time, long enough to tell a stall from the gap between requests",
              "what the host could give meanwhile, when the others were late"))
def stalls(ctx: Context) -> list[Verdict]:
    """One client asks for BLOCK 500, SLEEP 500 or WORK n: how late are the
    other clients' replies meanwhile (from the swarm's request/reply pairs)?
    BLOCK and SLEEP last half a second; WORK lasts what the CPU makes of it,
    so the others' wait is judged as a share of the WORK's own reply time.
    Replies on time show no stall whatever the host did; late ones count
    against the model only if the host had cores to spare."""
    def one(key: str) -> Verdict:
        results = ctx.probe().results
        work = key == "work_stalls_others"
        act, send = _came_back(ctx, results, key)
        action_in_order(act)  # its own time: WORK's bounds are shares of it
        timeline_in_order(results)  # the others' waits: replies after their sends
        asked, connected = ctx.asked(), len(a.conns_of(results))
        need(connected == asked, f"only {connected} of {asked} clients connected")
        length, stall_ms, free_ms = _stall_bounds(ctx, key, act)
        worst = a.others_worst_ms(results, act["client"], act["sent_t"], length)
        need(worst is not None, f"no other client sent a request during {send}")
        assert worst is not None
        reason, host = ctx.host_check("main", "free_cores_latency_min", act["sent_t"],
                                      act["sent_t"] + max(length, worst / 1000))
        figures = dict(worst_ms=round(worst, 1), own_ms=act.get("latency_ms"), outcome=act.get("outcome"), **host)
        if work:
            figures.update(share=round(worst / (length * 1000), 3), stall_ms_min=round(stall_ms, 1),
                           free_ms_max=round(free_ms, 1))
        stalled, free = worst >= stall_ms, worst <= free_ms
        if not free and reason:
            raise Missing(f"{reason}; the others waited up to {worst:.0f} ms", **figures)
        want = ctx.expect(key)
        observed = f"others' worst wait {worst:.0f} ms"
        if work:
            observed += f", {worst / (length * 1000):.0%} of the {length * 1000:.0f} ms the WORK took"
        share = ctx.tol["work_stall_share_min" if want else "work_free_share_max"]
        bound = f" (worst wait {'>=' if want else '<='} {share:.0%} of its own time)" if work else ""
        return ctx.verdict(key, f"others {'stalled' if want else 'not stalled'} by {send}{bound}",
                           observed + ("" if stalled or free else " (in between)"), stalled if want else free,
                           **figures)

    return ctx.each(tuple(k for k in STALL_SENDS if k in ctx.scenario.judges), one)


def _came_back(ctx: Context, results: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    """The scripted BLOCK, SLEEP or WORK and what it sent, once the server came
    back from it; Missing if it never did (not judged where a busy host may be why)."""
    act = a.action_of(results, "WORK") if key == "work_stalls_others" else a.action(results, STALL_SENDS[key])
    send = act["send"] if act is not None else STALL_SENDS[key]
    need(act is not None and act.get("sent_t") is not None, f"{send} was never sent")
    assert act is not None
    if act.get("outcome") == "pending":  # still running at the end: slow, maybe for want of CPU
        reason, host = ctx.host_check("main", "free_cores_latency_min", act["sent_t"])
        if reason:
            raise Missing(f"{reason}; {send} was still running when the probe ended", **host)
    need(act.get("outcome") == "reply", f"{send} got no reply ({act.get('outcome')}): the server did not "
                                        "come back from it")
    return act, send


def _stall_bounds(ctx: Context, key: str, act: dict[str, Any]) -> tuple[float, float, float]:
    """How long the request held its client (s), and the others' worst wait
    (ms) that means stalled (>=) or not stalled (<=).  BLOCK and SLEEP: half
    a second, fixed bounds; WORK: its own reply time, bounds shares of it."""
    if key != "work_stalls_others":
        return 0.5, ctx.tol["stall_ms_min"], ctx.tol["free_ms_max"]
    own = a.own_seconds(act)
    need(own is not None, f"{act['send']}'s reply time was not recorded")
    assert own is not None
    need(own * 1000 >= ctx.tol["work_ms_min"], f"{act['send']} took only {own * 1000:.0f} ms, too short to tell "
                                               "a stall from the gap between requests (a larger n)")
    return own, own * 1000 * ctx.tol["work_stall_share_min"], own * 1000 * ctx.tol["work_free_share_max"]


@judge(host_cpu=True,
       needs=("one client's WORKs answered alone, each taking some CPU time",
              "two clients' WORKs, every one answered, overlapping for at least 0.1 s, replies after their sends",
              "the server's CPU read through the window where both were under way: within the CPUs present, "
              "and CPU work that ran (at least half a core)",
              "what the host could give meanwhile, when fewer than two cores were busy"))
def gil(ctx: Context) -> list[Verdict]:
    """CPU-bound WORK from two clients at once: how many cores did the server
    keep busy meanwhile (its cgroup's CPU time over the wall time)?  Two
    processes use two; threads under the GIL, or one loop, use one.  The
    speed-up against one client's WORKs alone is reported too; it is the
    weaker witness, since two vCPUs of a virtual machine may slow each other
    down while both are busy (seen on the 2-core machine this lab grew on).
    Fewer than two cores busy counts only if the host had the cores to give."""
    def one(key: str) -> Verdict:
        one_alone, pairs, both = _gil_windows(ctx)
        start, end = min(sent for sent, _ in pairs), max(got for _, got in pairs)
        cores = ctx.cores("pair", *both)
        need(cores is not None, "no CPU readings of the server while both clients' WORKs ran")
        cores = need_in(cores, 0, ctx.cores_bound("pair"), "the server's CPU while both clients' WORKs ran", "cores")
        speedup = len(pairs) * one_alone / (end - start)
        want = ctx.expect(key)
        # Too few cores busy says something only if the host had more to give:
        # two cores, to blame a model declared parallel; clearly more than the
        # serial bound, to credit one declared serial (a parallel one would have used them).
        reason, host = ctx.host_check("pair", "free_cores_parallel_min" if want else "free_cores_serial_min", *both)
        figures = dict(cores=round(cores, 3), both_ms=round((both[1] - both[0]) * 1000, 1),
                       speedup=round(speedup, 3), one_ms=round(one_alone * 1000, 1),
                       pair_ms=round((end - start) * 1000, 1), **host)
        parallel = cores >= ctx.tol["parallel_cores_min"]
        if not parallel and reason:
            raise Missing(f"{reason}; the server kept {cores:.2f} cores busy", **figures)
        # Either claim is about CPU work: with next to no core busy, none ran
        # (a stalled sampler, a WORK that does no work), and one core or two is not shown
        if cores < WORK_CORES_MIN:
            raise Missing(f"the server kept only {cores:.2f} cores busy while both clients' WORKs ran: no CPU "
                          f"work ran (at least {WORK_CORES_MIN} needed), or its CPU was not read", **figures)
        ok = parallel if want else cores <= ctx.tol["serial_cores_max"]
        return ctx.verdict(key, "two cores at once" if want else "one core at a time",
                           f"{cores:.2f} cores busy; speed-up {speedup:.2f}x ({len(pairs)} WORKs from 2 clients "
                           f"in {(end - start) * 1000:.0f} ms, one alone {one_alone * 1000:.0f} ms)", ok, **figures)

    return ctx.each(("cpu_parallel",), one)


def _gil_windows(ctx: Context) -> tuple[float, list[Any], tuple[float, float]]:
    """The gil probes' timelines, in their domain: one WORK alone (its median
    reply time, s), the two clients' [sent, replied] pairs, and the window
    where both had WORK under way (from the later first request to the
    earlier last reply: one client alone would be one core)."""
    lone = ctx.probe("solo").results.get("timeline", {}).get("conns", [])
    pairs_in_order(lone, "the lone client's WORKs")
    solo = [got - sent for c in lone for sent, got in c["pairs"] if got is not None]
    need(solo, "no WORK was answered for the lone client")
    one_alone = sorted(solo)[len(solo) // 2]
    need_in(one_alone * 1000, WORK_MS_MIN, None, "one WORK alone", "ms",  # a WORK that does no work
            "too short for CPU work")
    timeline = ctx.probe("pair").results.get("timeline", {}).get("conns", [])
    pairs_in_order(timeline, "the two clients' WORKs")
    distinct_clients(timeline, "the two clients' timelines")
    conns = [c["pairs"] for c in timeline]
    need(len(conns) == 2 and all(conns), f"{len(conns)} of 2 clients sent WORKs side by side")
    pairs = [p for c in conns for p in c]
    need(all(got is not None for _, got in pairs), "a WORK went unanswered")
    both = (max(c[0][0] for c in conns), min(c[-1][1] for c in conns))
    need(both[1] > both[0], "the two clients' WORKs never overlapped")
    need_in(both[1] - both[0], CPU_WINDOW_MIN_S, None, "the window where both clients' WORKs ran", "s",
            "too short to measure")
    return one_alone, pairs, both


@judge(needs=("a COUNT reply from every client the scenario asked for, one each",
              "counts that moved: each at least 1, none above what all clients added"))
def shared_counter(ctx: Context) -> list[Verdict]:
    """Several clients each add n to a counter with no lock: the counts they
    are told say whether updates were lost, or each had its own counter."""
    def one(key: str) -> Verdict:
        probe = ctx.probe()
        n = _increments(ctx)
        asked = ctx.asked()
        need(asked > 0, "the scenario asked for no clients")
        told = _counts_told(probe.output)
        need(len(told) >= asked, f"COUNT replies from {len(told)} of {asked} clients")
        counts, total = [told[c] for c in sorted(told)], n * asked
        # Lost or not, each client's own increments landed before it was told:
        # at least 1, at most what every client added (the counter starts at 0)
        need(min(counts) >= 1, f"a client was told COUNT {min(counts)} after its {n} increments: the counter "
                               "never moved, so nothing shows whether updates were lost")
        need(max(counts) <= total, f"a client was told COUNT {max(counts)}, more than the {total} increments "
                                   "all clients made: the counter did not start at 0")
        final = max(counts)
        want = ctx.expect(key)
        if want == "per-process":
            ok, observed = all(c == n for c in counts), f"each client saw its own count: {sorted(counts)}"
        elif want:
            ok, observed = final < total, f"final count {final} of {total}: {total - final} updates lost"
        else:
            ok, observed = final == total, f"final count {final} of {total}"
        expected = {"per-process": f"each its own ({n})", True: f"fewer than {total}",
                    False: f"exactly {total}"}[want]
        return ctx.verdict(key, expected, observed, ok, counts=counts, total=total)

    return ctx.each(("lost_updates",), one)


def _increments(ctx: Context) -> int:
    """The n of the scenario's INCR n: how much each client adds."""
    words = str(ctx.scenario.probes["main"].values.get("message", "")).split()
    need(len(words) == 2 and words[0] == "INCR" and words[1].isdigit() and int(words[1]) >= 1,
         f"the scenario's message is {' '.join(words)!r}, not INCR n (n >= 1)")
    return int(words[1])


def _counts_told(output: str) -> dict[int, int]:
    """The count each client was told (one COUNT reply each, from the swarm's trace)."""
    told: dict[int, int] = {}
    for client, texts in a.reply_texts(output).items():
        counts = [t.split(" ", 1)[1].strip() for t in texts if t.startswith("COUNT ")]
        need(len(counts) <= 1, f"client {client} was told COUNT {len(counts)} times for one INCR: its replies "
                               "were counted more than once")
        if counts:
            need(counts[0].isdigit(), f"client {client} was told COUNT {counts[0]!r}, not a count")
            told[client] = int(counts[0])
    return told


@judge(needs=("STATS answered before and after, by the same process (pid)",
              "its readiness-report (events) and read counters, neither running backwards",
              "the client connected", "at least one readiness report and one read during the burst"))
def triggering(ctx: Context) -> list[Verdict]:
    """A large pipelined burst on one connection: served completely, and how
    many reads each readiness report led to (level: one; edge: until EAGAIN)."""
    def one(key: str) -> Verdict:
        probe = ctx.probe()
        before, after = ctx.stats.get("main:before"), ctx.stats.get("main:after")
        need(isinstance(before, dict) and isinstance(after, dict), "STATS did not answer before and after")
        assert before is not None and after is not None
        need("events" in after and "reads" in after,
             "STATS counts no readiness reports (events) or reads: this server does not say how it was told")
        need(a.conns_of(probe.results), "the client never connected")
        need_same_pid(before, after)
        events = need_grew(before.get("events", 0), after["events"], "the STATS readiness-report counter")
        reads = need_grew(before.get("reads", 0), after["reads"], "the STATS read counter")
        need(events > 0, "no readiness report during the burst")
        # Either claim is about the reads each report led to: none at all says
        # the burst was not read through these counters, not that reports were level
        need(reads > 0, f"0 reads counted in {events:.0f} readiness reports: the server's reads were not counted")
        wanted = ctx.scenario.probes["main"].number("count", ctx.workers)
        complete = probe.summary.get("replies") == wanted
        per_report = reads / events
        want = ctx.expect(key)
        ok = complete and (per_report <= ctx.tol["level_reads_per_report_max"] if want == "level"
                           else per_report >= ctx.tol["edge_reads_per_report_min"])
        return ctx.verdict(key, f"{want}: " + ("one read per report" if want == "level"
                                               else "several reads per report, to EAGAIN"),
                           f"{reads:.0f} reads / {events:.0f} reports = {per_report:.1f}; "
                           f"{probe.summary.get('replies')} of {wanted} answered", ok,
                           reads=int(reads), reports=int(events), complete=complete)

    return ctx.each(("triggering",), one)


@judge(needs=("a connection record for each client asked, each client once", "the active client (1) connected",
              "a declared limit: more connections than the limit, and the descriptors its errors name (each below "
              "the connections open, plus the server's own few)",
              "a declared limit: the connections that ended in an error, accounted for by the connections "
              "those errors closed"))
def many_descriptors(ctx: Context) -> list[Verdict]:
    """Over a thousand connections: a readiness API with a descriptor limit
    fails past it in its documented way; the others hold every one asked."""
    def one(key: str) -> Verdict:
        probe = ctx.probe()
        need("connections" in probe.results, "the swarm recorded no connections")
        records = probe.results["connections"]
        distinct_clients(records)
        asked = ctx.asked()
        connected = [c for c in records if c.get("conn")]
        need(connected, f"none of the {asked} clients connected")
        refused = sum(1 for c in connected if c.get("close") in a.ERROR_KINDS)
        held = len(connected) - refused
        active_client = next((c for c in records if c.get("client") == 1), None)
        need(active_client is not None and active_client.get("conn"), "the active client (1) never connected")
        assert active_client is not None
        active = need_count(active_client.get("replies", 0), "the active client's replies")
        errors = [e for e in ctx.events(probe) if e["ev"] == "error" and e.get("kind") == "fd_setsize"]
        # a descriptor is a small number: the lowest free one, so never far above the connections open
        fds = {need_count(fd, "a descriptor the server's fd_setsize errors name", asked + FD_SLACK)
               for e in errors for fd in e.get("fds", [])}
        limit = ctx.expect(key)
        if limit is None:
            ok = not errors and held == asked and active > 0
            expected = f"all {asked} held, the active client served"
        else:
            need(errors or len(connected) > limit,
                 f"only {len(connected)} of {asked} connected: descriptor {limit} was never reached")
            lowest = min(fds, default=None)
            need(not errors or lowest is not None, "the fd_setsize errors name no descriptor")
            if lowest is not None and lowest >= limit:  # the limit's own failure: the rest must be served
                # each error names (some of) the descriptors it closed, and counts them all
                closed = sum(need_count(e.get("count", len(e.get("fds", []))), "an fd_setsize error's count")
                             for e in errors)
                need(refused <= closed + FD_SLACK,
                     f"{refused} of {len(connected)} connections ended in an error, but the server's fd_setsize "
                     f"errors closed only {closed}: the others ended for another reason (timeouts, a busy "
                     "host?), so whether the rest were served is not shown")
            ok = bool(errors) and lowest is not None and lowest >= limit and active > 0
            expected = f"fails at descriptor {limit}, reported; the rest served"
        return ctx.verdict(key, expected, f"{held} of {asked} held ({len(connected)} connected), "
                                          f"{len(errors)} fd_setsize errors, active client got {active} replies",
                           ok, held=held, asked=asked, connections=len(connected), errors=len(errors),
                           active_replies=active)

    return ctx.each(("fd_limit",), one)


@judge(needs=("the CRASH/RAISE sent on a connection", "every client asked connected, each once, one besides the "
              "one at fault", "each other client's replies (after their requests) and how its connection ended"))
def faults(ctx: Context) -> list[Verdict]:
    """One client's request raises (RAISE) or crashes (CRASH) its handler:
    who loses their connection, and who goes on being served?  A survivor
    is a client whose connection did not end in an error and that was
    served after the fault (its replies, from the settle time on), or, if
    it had not been served yet, still waits while the server serves others."""
    def one(key: str) -> Verdict:
        probe = ctx.probe()
        send = "CRASH" if key == "crash_takes" else "RAISE"
        act = a.action(probe.results, send)
        need(act is not None and act.get("sent_t") is not None, f"{send} was never sent")
        assert act is not None
        need(act.get("outcome") not in ("not-connected", "not-run"), f"{send} never reached the server "
                                                                     f"({act.get('outcome')})")
        finite(act["sent_t"], f"{send}'s send time")
        timeline_in_order(probe.results)  # who was served after it: replies after their sends
        asked, connected = ctx.asked(), len(a.conns_of(probe.results))
        need(connected == asked, f"only {connected} of {asked} clients connected")
        distinct_clients(probe.results.get("connections", []))
        others = [c for c in probe.results.get("connections", []) if c["client"] != act["client"]]
        need(others, "no other client to survive the fault")
        dropped = act.get("outcome") in ("eof", "reset")
        after, served, before, ended = _after_fault(probe.results, act, others, ctx.tol["fault_settle_s"])
        # A survivor's connection ends without an error, and it goes on being
        # served; one still waiting its turn (a blocking server, a full pool)
        # must still be waiting while the server serves someone else.
        serving = any(served.values())
        survived = [c for c in served if ended[c] not in a.ERROR_KINDS and (served[c] or (serving and not before[c]))]
        lost = [c for c in served if not served[c] and ended[c] in a.ERROR_KINDS]
        want = ctx.expect(key)
        ok = dropped and (len(survived) == len(others) if want == "connection" else len(lost) == len(others))
        alive = ctx.target.alive()
        restarted = [e for e in ctx.events(probe) if e["ev"] in ("worker-start", "child-exit", "worker-exit")
                     and e["t"] > act["sent_t"]]
        observed = (f"client {act['client']} {'dropped' if dropped else 'not dropped'} ({act.get('outcome')}); "
                    f"{len(survived)} of {len(others)} others survived it (kept their connection, served after "
                    f"it or still waiting their turn), {len(lost)} lost theirs; server {'alive' if alive else 'gone'}")
        return ctx.verdict(key, f"takes {'only that connection' if want == 'connection' else 'every connection'}",
                           observed, ok, dropped=dropped, others_ended=ended, others_served_before=before,
                           others_served_after=served,
                           others_replies_after=after, server_alive=alive,
                           supervisor_events=[e["ev"] for e in restarted])

    return ctx.each((ctx.scenario.expect,), one)


def _after_fault(results: dict[str, Any], act: dict[str, Any], others: list[dict[str, Any]],
                 settle_s: float) -> tuple[dict[int, int], dict[int, bool], dict[int, bool], dict[int, Any]]:
    """For each other client: its replies once the fault settled, whether it
    was served after it, whether it had been served before it, how it ended."""
    settled = act["sent_t"] + settle_s
    after = a.replies_after(results, settled)
    served = {c["client"]: (c.get("last_reply") or 0) > settled or after.get(c["client"], 0) > 0 for c in others}
    before = {c["client"]: c.get("first_reply") is not None and c["first_reply"] < act["sent_t"] for c in others}
    return after, served, before, {c["client"]: c.get("close") for c in others}


@judge(host_cpu=True,
       needs=("the clients asked, and the server's trace of what it accepted",
              "holds: the active set's latency, with a p99 >= 0", "threads: the threads at the peak (at least one)",
              "pids-limit: the processes at the peak and the container's task limit",
              "backlog: an active set, peak_served declared, and connections held to the end (the rest waiting)",
              "what the host could give meanwhile, when the active set was slow",
              "thread_count: the process table read at the peak, with connections open"))
def c10k(ctx: Context) -> list[Verdict]:
    """Ten thousand connections: how many the server took and kept, how fast
    the small active set stayed meanwhile, and what each connection cost.
    Where declared, thread_count too: a coroutine, a greenlet or an asyncio
    task costs no kernel task, so the threads at the peak are still N."""
    seen: dict[str, Any] = {}

    def figures_of(probe: Any, reading: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        if "figures" not in seen:  # once for both verdicts: 10,000 connections' events
            seen["figures"] = _c10k_figures(ctx, probe, reading)
        return dict(seen["figures"][0]), seen["figures"][1]

    def one(key: str) -> Verdict:
        figures, found = figures_of(ctx.probe(), ctx.readings.get("main", {}))
        need(figures["asked"] > 0, "the scenario asked for no clients")
        need(figures["accepted"] > 0, "the server's trace shows no accepted connection")
        ok, expected = _c10k_claim(ctx, ctx.expect(key), figures, found["latency"])
        return ctx.verdict(key, expected, _c10k_observed(figures, _p99_ms(found["latency"])), ok, **figures)

    def thread_count(key: str) -> Verdict:
        probe, reading = ctx.probe(), ctx.readings.get("main", {})
        peak = reading.get("peak_sample")
        need(peak is not None, "the server's process table was not read at the peak")
        need(peak.per_process, "the reading at the peak found none of the server's processes")
        need_threads([peak], "the reading at the peak")
        figures, _ = figures_of(probe, reading)
        held, asked = figures["open_at_peak"], figures["asked"]
        need(held > 0, "the server's trace shows no connection open when it was read at the peak")
        most, want = max(peak.per_process.values()), ctx.expect(key)
        per_conn = figures["memory_per_connection"] or {}
        return ctx.verdict(key, f"{want} per process at the peak, whatever the connections",
                           f"at most {most} per process with {held:,} of {asked:,} connections open"
                           + (f"; {per_conn['pss'] / 1024:.1f} KiB PSS per connection" if "pss" in per_conn else ""),
                           most == want, max_threads=most, processes_at_peak=peak.processes, open_at_peak=held,
                           asked=asked, memory_per_connection=figures["memory_per_connection"])

    keys = ctx.scenario.judges
    return ctx.each(("c10k",), one) + (ctx.each(("thread_count",), thread_count) if "thread_count" in keys else [])


def _p99_ms(latency: dict[str, Any]) -> float | None:
    """The active set's p99 in ms, where it is a latency at all (finite, >= 0)."""
    p99 = latency.get("p99_us") if latency.get("count") else None
    ok = isinstance(p99, (int, float)) and not isinstance(p99, bool) and 0 <= p99 < float("inf")
    return p99 / 1000 if ok else None


def _c10k_claim(ctx: Context, want: str, figures: dict[str, Any], latency: dict[str, Any]) -> tuple[bool, str]:
    """(held, expected in words) for the declared c10k value; Missing where
    the evidence is (a slow active set on a busy host: host_check's figures
    are added to ``figures``)."""
    asked, accepted, kept = figures["asked"], figures["accepted"], figures["kept_to_the_end"]
    errors, answered, pids = figures["server_errors"], figures["active_answered"], figures["pids_limit"]
    if want == "holds":
        need(latency.get("count"), "no latency was measured for the active set")
        need(latency.get("p99_us") is not None, f"the active set's latency ({latency['count']} replies) has no p99")
        p99 = need_in(latency["p99_us"], 0, None, "the active set's p99 latency", "µs") / 1000
        reason, host = ctx.host_check("main", "free_cores_latency_min")
        figures.update(host)
        limit = ctx.tol["c10k_p99_ms_max"]
        if accepted >= asked and kept >= asked and p99 > limit and reason:  # slow, maybe for want of CPU
            raise Missing(f"{reason}; the active set's p99 was {p99:.0f} ms", **figures)
        return accepted >= asked and kept >= asked and p99 <= limit, f"holds all {asked}, active p99 <= {limit} ms"
    if want == "threads":
        need(figures["threads_at_peak"] is not None, "the server's threads at the peak were not read")
        threads = need_count(figures["threads_at_peak"], "the server's threads at the peak")
        need(threads >= 1, "the reading at the peak found no thread: the process table was not read")
        return accepted >= asked and threads >= asked, f"holds all {asked} with a thread each"
    if want == "fd-limit":
        return (errors.get("fd_setsize", 0) > 0 and kept < asked and answered > 0,
                "fails at its descriptor limit, says so, serves the rest")
    if want == "pids-limit":
        need(pids, "the container has no task limit (PidsLimit) to be bounded by")
        need(figures["processes_at_peak"] is not None, "the server's processes at the peak were not read")
        return (errors.get("fork", 0) > 0 and figures["processes_at_peak"] <= pids,
                f"bounded by the container's task limit ({pids})")
    # backlog: a few served, the rest wait in the listen backlog (or the pool's queue)
    need(figures["active"], "no client of the active set")
    declared = ctx.model.expect.get("peak_served")
    need(declared is not None, "backlog is judged against peak_served, which is not declared")
    peak_served = {1: 1, "all": asked, "workers": ctx.workers}.get(declared, declared)
    # "the rest wait" needs some that waited: connections held to the end (in the backlog)
    need(kept > 0, f"no connection of {asked} was held to the end, so nothing shows the rest waiting")
    return 0 < answered <= peak_served and kept > answered, (
        f"serves {peak_served} at once; the rest wait (backlog {figures['backlog']}, somaxconn "
        f"{figures['somaxconn']})")


def _c10k_observed(figures: dict[str, Any], p99: float | None) -> str:
    per_conn, overflow, errors = figures["memory_per_connection"], figures["listen_queue"], figures["server_errors"]
    return (f"{figures['accepted']} accepted, {figures['kept_to_the_end']} kept of {figures['asked']}; "
            f"active {figures['active_answered']}/{figures['active']} answered"
            + (f", p99 {p99:.1f} ms" if p99 is not None else "")
            + (f"; {per_conn['pss'] / 1024:.1f} KiB PSS per connection" if per_conn and "pss" in per_conn else "")
            + (f"; errors {errors}" if errors else "")
            + (f"; listen queue {overflow}" if any(overflow.values()) else ""))


def _c10k_figures(ctx: Context, probe: Any, reading: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every figure the c10k check records (lab compare shows them too)."""
    s = probe.summary
    events = ctx.events(probe)
    accepted = sum(1 for e in events if e["ev"] == "accept")
    errors: dict[str, int] = {}
    for e in events:
        if e["ev"] == "error":
            errors[e.get("kind", "?")] = errors.get(e.get("kind", "?"), 0) + 1
    conns = probe.results.get("connections", [])
    kept = sum(1 for c in conns if c.get("connect_end") and c.get("close") not in a.ERROR_KINDS)
    active = [c for c in conns if c.get("role") != "hold"]
    answered = sum(1 for c in active if c.get("replies"))
    latency = s.get("latency") or {}
    base, peak = reading.get("before", {}), reading.get("peak", {})
    open_at_peak = reading.get("peak_sample")
    holding, per_conn = _per_connection(events, reading)
    before, after = reading.get("cpu_before"), reading.get("cpu_after")
    cpu = a.cores(before, after) if before is not None and after is not None else None
    overflow = {k: v - reading.get("netstat_before", {}).get(k, 0)
                for k, v in reading.get("netstat_peak", {}).items()}
    start = next(iter(ctx.target.events.matching(lambda e: e["ev"] == "start")), {})
    limits = ctx.target.container.limits()
    figures = {
        "asked": ctx.asked(), "connected": s.get("connections", {}).get("connected"), "accepted": accepted,
        "open_at_peak": holding,
        "kept_to_the_end": kept, "ramp_s": s.get("connections", {}).get("connect_all_s"),
        "active": len(active), "active_answered": answered, "latency_us": latency,
        "memory_per_connection": per_conn, "memory_peak": peak, "memory_idle": base,
        "threads_at_peak": open_at_peak.threads if open_at_peak else None,
        "processes_at_peak": open_at_peak.processes if open_at_peak else None,
        "cpu_cores": round(cpu, 3) if cpu is not None else None, "server_errors": errors,
        "listen_queue": overflow, "backlog": start.get("backlog"), "somaxconn": start.get("somaxconn"),
        "nofile": start.get("nofile"), "pids_limit": limits.pids,
        "swarm_errors": s.get("errors"), "swarm_warnings": probe.results.get("warnings"),
        "port_range": probe.results.get("environment", {}).get("ip_local_port_range"),
    }
    return figures, {"latency": latency}


def _per_connection(events: list[dict[str, Any]], reading: dict[str, Any]) -> tuple[int, dict[str, int] | None]:
    """The connections the server held when it was read at the peak (accepted
    and not yet closed: select has closed most of its own), and its memory
    (PSS, USS, RSS, and the whole cgroup's, kernel socket buffers included)
    divided among them."""
    base, peak, before = reading.get("before", {}), reading.get("peak", {}), reading.get("cpu_before")
    peak_t = reading.get("peak_t", float("inf"))
    holding = max(sum(1 for e in events if e["t"] <= peak_t and e["ev"] == "accept")
                  - sum(1 for e in events if e["t"] <= peak_t and e["ev"] == "close"), 0)
    per_conn = {k: round((peak.get(k, 0) - base.get(k, 0)) / max(holding, 1))
                for k in ("pss", "uss", "rss")} if peak and "error" not in peak and "error" not in base else None
    cgroup = reading.get("cgroup_peak")
    if cgroup is not None and cgroup.memory is not None and before is not None and before.memory is not None \
            and holding:
        per_conn = {**(per_conn or {}), "cgroup": round((cgroup.memory - before.memory) / holding)}
    return holding, per_conn
