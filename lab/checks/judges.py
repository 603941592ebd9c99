"""The judges: what each check measures, and how it compares with model.yaml.

A judge reads what its scenario's probes recorded (the swarm's results, the
server's trace, samples of the server's cgroup and process table) and turns
it into verdicts: expected (from model.yaml), observed (a figure, in words),
and whether they agree within the tolerances (services/tolerances.yaml, or
a model's own `tolerances:`).  No expected value is written here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from . import analysis as a

if TYPE_CHECKING:
    from . import Context, Verdict

Judge = Callable[["Context"], list["Verdict"]]
JUDGES: dict[str, Judge] = {}


def judge(fn: Judge) -> Judge:
    JUDGES[fn.__name__] = fn
    return fn


@judge
def idle_cpu(ctx: "Context") -> list["Verdict"]:
    """CPU with no client at all, from the container's cgroup counters."""
    used = a.cores(*ctx.idle) if len(ctx.idle) == 2 else None
    if used is None:
        return [ctx.unknown("idle_cpu", "no two readings of the idle server's CPU")]
    want = ctx.expect("idle_cpu")
    if want == "busy":
        ok, bound = used >= ctx.tol["busy_cores_min"], f">= {ctx.tol['busy_cores_min']} cores"
    else:
        ok, bound = used <= ctx.tol["idle_cores_max"], f"<= {ctx.tol['idle_cores_max']} cores"
    return [ctx.verdict("idle_cpu", f"{want} ({bound})", f"{used:.3f} cores with no client", ok,
                        cores=round(used, 4), window_s=round(ctx.idle[1].t - ctx.idle[0].t, 2))]


@judge
def served_at_once(ctx: "Context") -> list["Verdict"]:
    """Peak clients served at once, from the server's own trace: a client is
    served from the server's first read of its request until its close.  When
    fewer are served than connected, the rest must wait until one leaves.
    Also, where declared, the threads in each server process meanwhile."""
    probe = ctx.probes["main"]
    conns = a.conns_of(probe.results)
    ctx.settle(conns)
    spans = a.served_spans(ctx.events(probe), conns, probe.ended)
    peak = a.peak_overlap(spans.values())
    clients = len(conns)
    want = ctx.expect("peak_served")
    expected = {1: 1, "all": clients, "workers": ctx.workers}.get(want, want)
    ok = peak == expected and len(spans) == clients
    observed = f"{peak} of {clients} at once"
    waited = None
    if expected < clients and spans:
        order = sorted(spans.values())
        first_leave = min(end for _, end in order[:expected])
        waited = all(start >= first_leave for start, _ in order[expected:])
        ok = ok and waited
        observed += "; the rest waited until one left" if waited else "; a waiting client was served early"
    verdicts = [ctx.verdict("peak_served", f"{want} ({expected} of {clients})", observed, ok,
                            peak=peak, clients=clients, served=len(spans), waited=waited,
                            spans={c: [round(s - probe.began, 3), round(e - probe.began, 3)]
                                   for c, (s, e) in spans.items()})]
    if ctx.declares("thread_count") and ctx.samples.get("main"):
        most = max(max(s.per_process.values(), default=0) for s in ctx.samples["main"])
        want_threads = ctx.expect("thread_count")
        verdicts.append(ctx.verdict(
            "thread_count", f"{want_threads} per process", f"at most {most} while serving {clients}",
            most == want_threads, max_threads=most, samples=len(ctx.samples["main"])))
    return verdicts


@judge
def growth(ctx: "Context") -> list["Verdict"]:
    """Threads and processes as clients connect and leave (ps -eLf of the
    container: the classic `ps huH p PID | wc -l`, per process)."""
    probe = ctx.probes["main"]
    samples = ctx.samples.get("main", [])
    conns = a.conns_of(probe.results)
    ctx.settle(conns)
    after = ctx.target.sample()
    if not samples:
        return [ctx.unknown("threads", "no samples")]
    base = samples[0]
    clients = len(conns)
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
            before=measure(base), peak=peak, after=measure(after), clients=clients,
            series=[[round(s.t - probe.began, 2), measure(s)] for s in samples]))
    return verdicts


@judge
def would_block(ctx: "Context") -> list["Verdict"]:
    """EAGAIN instead of waiting: the server's own count of non-blocking
    calls that found nothing to do, against the requests it served."""
    before, after = ctx.stats.get("main:before"), ctx.stats.get("main:after")
    if not before or not after:
        return [ctx.unknown("wouldblock_counter", "STATS did not answer")]
    grew = after.get("wouldblock", 0) - before.get("wouldblock", 0)
    served = ctx.probes["main"].summary.get("replies", 0)
    ok = grew >= max(served, 1)
    return [ctx.verdict("wouldblock_counter", f"at least one EAGAIN per request ({served})",
                        f"{grew} EAGAIN returns for {served} requests", ok,
                        wouldblock=grew, requests=served)]


@judge
def stalls(ctx: "Context") -> list["Verdict"]:
    """One client asks for BLOCK 500, later for SLEEP 500: how late are the
    other clients' replies meanwhile (from the swarm's request/reply pairs)?"""
    results = ctx.probes["main"].results
    verdicts = []
    for key, send in (("block_stalls_others", "BLOCK 500"), ("sleep_stalls_others", "SLEEP 500")):
        act = a.action(results, send)
        if act is None or act.get("sent_t") is None:
            verdicts.append(ctx.unknown(key, f"{send} was never sent"))
            continue
        worst = a.others_worst_ms(results, act["client"], act["sent_t"], 0.5)
        if worst is None:
            verdicts.append(ctx.unknown(key, "no other requests in the window"))
            continue
        stalled, free = worst >= ctx.tol["stall_ms_min"], worst <= ctx.tol["free_ms_max"]
        want = ctx.expect(key)
        ok = stalled if want else free
        verdicts.append(ctx.verdict(
            key, f"others {'stalled' if want else 'not stalled'} by {send}",
            f"others' worst wait {worst:.0f} ms" + ("" if stalled or free else " (in between)"), ok,
            worst_ms=round(worst, 1), own_ms=act.get("latency_ms"), outcome=act.get("outcome")))
    return verdicts


@judge
def gil(ctx: "Context") -> list["Verdict"]:
    """CPU-bound WORK from two clients at once: how many cores did the server
    keep busy meanwhile (its cgroup's CPU time over the wall time)?  Two
    processes use two; threads under the GIL, or one loop, use one.  The
    speed-up against one client's WORKs alone is reported too; it is the
    weaker witness, since two vCPUs of a virtual machine may slow each other
    down while both are busy (seen on the 2-core machine this lab grew on)."""
    solo = [got - sent for c in ctx.probes["solo"].results["timeline"]["conns"]
            for sent, got in c["pairs"] if got is not None]
    conns = [c["pairs"] for c in ctx.probes["pair"].results["timeline"]["conns"]]
    pairs = [p for c in conns for p in c]
    if not solo or len(conns) != 2 or any(got is None for _, got in pairs):
        return [ctx.unknown("cpu_parallel", "a WORK went unanswered")]
    start, end = min(sent for sent, _ in pairs), max(got for _, got in pairs)
    # CPU is judged while both clients have WORK under way: from the later
    # first request to the earlier last reply (one client alone would be one core)
    both = (max(c[0][0] for c in conns), min(c[-1][1] for c in conns))
    cores = ctx.cores("pair", *both)
    if cores is None:
        return [ctx.unknown("cpu_parallel", "no CPU readings of the server during the WORKs")]
    one = sorted(solo)[len(solo) // 2]
    speedup = len(pairs) * one / (end - start)
    want = ctx.expect("cpu_parallel")
    ok = cores >= ctx.tol["parallel_cores_min"] if want else cores <= ctx.tol["serial_cores_max"]
    return [ctx.verdict("cpu_parallel", "two cores at once" if want else "one core at a time",
                        f"{cores:.2f} cores busy; speed-up {speedup:.2f}x ({len(pairs)} WORKs from 2 clients "
                        f"in {(end - start) * 1000:.0f} ms, one alone {one * 1000:.0f} ms)", ok,
                        cores=round(cores, 3), both_ms=round((both[1] - both[0]) * 1000, 1),
                        speedup=round(speedup, 3), one_ms=round(one * 1000, 1),
                        pair_ms=round((end - start) * 1000, 1))]


@judge
def shared_counter(ctx: "Context") -> list["Verdict"]:
    """Several clients each add n to a counter with no lock: the counts they
    are told say whether updates were lost, or each had its own counter."""
    probe = ctx.probes["main"]
    n = int(str(ctx.scenario.probes["main"].values["message"]).split()[1])
    counts = [int(t.split()[1]) for texts in a.reply_texts(probe.output).values()
              for t in texts if t.startswith("COUNT ")]
    clients = probe.summary.get("clients", 0)
    if len(counts) < clients or not counts:
        return [ctx.unknown("lost_updates", f"{len(counts)} of {clients} COUNT replies")]
    total, final = n * clients, max(counts)
    want = ctx.expect("lost_updates")
    if want == "per-process":
        ok, observed = all(c == n for c in counts), f"each client saw its own count: {sorted(counts)}"
    elif want:
        ok, observed = final < total, f"final count {final} of {total}: {total - final} updates lost"
    else:
        ok, observed = final == total, f"final count {final} of {total}"
    expected = {"per-process": f"each its own ({n})", True: f"fewer than {total}", False: f"exactly {total}"}[want]
    return [ctx.verdict("lost_updates", expected, observed, ok, counts=counts, total=total)]


@judge
def triggering(ctx: "Context") -> list["Verdict"]:
    """A large pipelined burst on one connection: served completely, and how
    many reads each readiness report led to (level: one; edge: until EAGAIN)."""
    probe = ctx.probes["main"]
    before, after = ctx.stats.get("main:before"), ctx.stats.get("main:after")
    if not before or not after:
        return [ctx.unknown("triggering", "STATS did not answer")]
    events = after.get("events", 0) - before.get("events", 0)
    reads = after.get("reads", 0) - before.get("reads", 0)
    wanted = ctx.scenario.probes["main"].number("count", ctx.workers)
    complete = probe.summary.get("replies") == wanted
    per_report = reads / max(events, 1)
    want = ctx.expect("triggering")
    ok = complete and (per_report <= ctx.tol["level_reads_per_report_max"] if want == "level"
                       else per_report >= ctx.tol["edge_reads_per_report_min"])
    return [ctx.verdict("triggering", f"{want}: " + ("one read per report" if want == "level"
                                                      else "several reads per report, to EAGAIN"),
                        f"{reads} reads / {events} reports = {per_report:.1f}; "
                        f"{probe.summary.get('replies')} of {wanted} answered", ok,
                        reads=reads, reports=events, complete=complete)]


@judge
def many_descriptors(ctx: "Context") -> list["Verdict"]:
    """Over a thousand connections: a readiness API with a descriptor limit
    fails past it in its documented way; the others hold them all."""
    probe = ctx.probes["main"]
    conns = a.conns_of(probe.results)
    errors = [e for e in ctx.events(probe) if e["ev"] == "error" and e.get("kind") == "fd_setsize"]
    refused = sum(1 for c in probe.results.get("connections", []) if c.get("close") in ("eof", "reset"))
    active = probe.results["connections"][0].get("replies", 0) if probe.results.get("connections") else 0
    limit = ctx.expect("fd_limit")
    held = len(conns) - refused
    if limit is None:
        ok = not errors and refused == 0 and active > 0
        expected = f"all {len(conns)} held, the active client served"
    else:
        lowest = min((fd for e in errors for fd in e.get("fds", [])), default=None)
        ok = bool(errors) and lowest is not None and lowest >= limit and active > 0
        expected = f"fails at descriptor {limit}, reported; the rest served"
    return [ctx.verdict("fd_limit", expected,
                        f"{held} of {len(conns)} held, {len(errors)} fd_setsize errors, "
                        f"active client got {active} replies", ok,
                        held=held, connections=len(conns), errors=len(errors), active_replies=active)]


@judge
def faults(ctx: "Context") -> list["Verdict"]:
    """One client's request raises (RAISE) or crashes (CRASH) its handler:
    who loses their connection, and who goes on being served?"""
    key = ctx.scenario.expect
    probe = ctx.probes["main"]
    send = "CRASH" if key == "crash_takes" else "RAISE"
    act = a.action(probe.results, send)
    if act is None or act.get("sent_t") is None:
        return [ctx.unknown(key, f"{send} was never sent")]
    dropped = act.get("outcome") in ("eof", "reset")
    # Did the other connections survive?  They end with the run ("duration")
    # unless the server closed or reset them.
    ends = {c["client"]: c.get("close") for c in probe.results.get("connections", [])
            if c["client"] != act["client"]}
    survived = {c: end for c, end in ends.items() if end not in a.ERROR_KINDS}
    after = a.replies_after(probe.results, act["sent_t"] + ctx.tol["fault_settle_s"])
    alive = ctx.target.alive()
    want = ctx.expect(key)
    ok = dropped and bool(ends) and (len(survived) == len(ends) if want == "connection" else not survived)
    restarted = [e for e in ctx.events(probe) if e["ev"] in ("worker-start", "child-exit", "worker-exit")
                 and e["t"] > act["sent_t"]]
    observed = (f"client {act['client']} {'dropped' if dropped else 'not dropped'} ({act.get('outcome')}); "
                f"{len(survived)} of {len(ends)} others kept their connection; "
                f"server {'alive' if alive else 'gone'}")
    return [ctx.verdict(key, f"takes {'only that connection' if want == 'connection' else 'every connection'}",
                        observed, ok, dropped=dropped, others_ended=ends, others_replies_after=after,
                        server_alive=alive,
                        supervisor_events=[e["ev"] for e in restarted])]


@judge
def c10k(ctx: "Context") -> list["Verdict"]:
    """Ten thousand connections: how many the server took and kept, how fast
    the small active set stayed meanwhile, and what each connection cost."""
    probe, reading = ctx.probes["main"], ctx.readings.get("main", {})
    s = probe.summary
    asked = s.get("clients", 0)
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
    p99 = (latency.get("p99_us") or 0) / 1000 if latency.get("count") else None
    base, peak = reading.get("before", {}), reading.get("peak", {})
    open_at_peak = reading.get("peak_sample")
    # Memory is divided among the connections the server had open when it was
    # read: accepted and not yet closed (select has closed most of its own).
    peak_t = reading.get("peak_t", float("inf"))
    holding = max(sum(1 for e in events if e["t"] <= peak_t and e["ev"] == "accept")
                  - sum(1 for e in events if e["t"] <= peak_t and e["ev"] == "close"), 0)
    per_conn = {k: round((peak.get(k, 0) - base.get(k, 0)) / max(holding, 1))
                for k in ("pss", "uss", "rss")} if peak and "error" not in peak else None
    cpu = a.cores(reading["cpu_before"], reading["cpu_after"]) if "cpu_after" in reading else None
    cgroup = reading.get("cgroup_peak")  # all the container's memory, kernel socket buffers included
    if cgroup is not None and cgroup.memory is not None and reading["cpu_before"].memory is not None \
            and holding:
        per_conn = {**(per_conn or {}), "cgroup": round((cgroup.memory - reading["cpu_before"].memory) / holding)}
    overflow = {k: v - reading.get("netstat_before", {}).get(k, 0)
                for k, v in reading.get("netstat_peak", {}).items()}
    start = next((e for e in ctx.target.events.events if e["ev"] == "start"), {})
    host = ctx.target.container.attrs["HostConfig"]
    figures = {
        "asked": asked, "connected": s.get("connections", {}).get("connected"), "accepted": accepted,
        "open_at_peak": holding,
        "kept_to_the_end": kept, "ramp_s": s.get("connections", {}).get("connect_all_s"),
        "active": len(active), "active_answered": answered, "latency_us": latency,
        "memory_per_connection": per_conn, "memory_peak": peak, "memory_idle": base,
        "threads_at_peak": open_at_peak.threads if open_at_peak else None,
        "processes_at_peak": open_at_peak.processes if open_at_peak else None,
        "cpu_cores": round(cpu, 3) if cpu is not None else None, "server_errors": errors,
        "listen_queue": overflow, "backlog": start.get("backlog"), "somaxconn": start.get("somaxconn"),
        "nofile": start.get("nofile"), "pids_limit": host.get("PidsLimit"),
        "swarm_errors": s.get("errors"), "swarm_warnings": probe.results.get("warnings"),
        "port_range": probe.results.get("environment", {}).get("ip_local_port_range"),
    }
    want = ctx.expect("c10k")
    limit = ctx.tol["c10k_p99_ms_max"]
    peak_served = {1: 1, "all": asked, "workers": ctx.workers}.get(ctx.expect("peak_served"), asked)
    if want == "holds":
        ok = accepted >= asked and kept >= asked and p99 is not None and p99 <= limit
        expected = f"holds all {asked}, active p99 <= {limit} ms"
    elif want == "threads":
        threads = figures["threads_at_peak"] or 0
        ok = accepted >= asked and threads >= asked
        expected = f"holds all {asked} with a thread each"
    elif want == "fd-limit":
        ok = errors.get("fd_setsize", 0) > 0 and kept < asked and answered > 0
        expected = "fails at its descriptor limit, says so, serves the rest"
    elif want == "pids-limit":
        ok = errors.get("fork", 0) > 0 and (figures["processes_at_peak"] or 0) <= (host.get("PidsLimit") or 0)
        expected = f"bounded by the container's task limit ({host.get('PidsLimit')})"
    else:  # backlog: a few served, the rest wait in the listen backlog (or the pool's queue)
        ok = 0 < answered <= peak_served
        expected = f"serves {peak_served} at once; the rest wait (backlog {start.get('backlog')}, " \
                   f"somaxconn {start.get('somaxconn')})"
    observed = (f"{accepted} accepted, {kept} kept of {asked}; active {answered}/{len(active)} answered"
                + (f", p99 {p99:.1f} ms" if p99 is not None else "")
                + (f"; {per_conn['pss'] / 1024:.1f} KiB PSS per connection" if per_conn else "")
                + (f"; errors {errors}" if errors else "")
                + (f"; listen queue {overflow}" if any(overflow.values()) else ""))
    return [ctx.verdict("c10k", expected, observed, ok, **figures)]
