"""What a reply costs: system calls (counted by the tracing sidecar) and context switches.

scenarios/syscalls.yaml runs four probes on one server: `main` (8 clients
in ping-pong over kept connections, untraced: context switches from /proc
and the server's CPU per reply), `idle` (the same 8 beside 900 idle held
connections, untraced: CPU per reply again), `traced` and `traced-idle`
(the same 8 beside 64 idle, with strace counting every system call).
Traced runs are slower (each system call stops the server twice), so
nothing here is a throughput figure and the context switches come from the
untraced run.  A traced server is slower than its clients, so a ping-pong
client's next request is often there before the server reads again: an
edge-triggered loop then meets EAGAIN seldom per reply, yet still about
once per readiness wait, which is what drains_to_eagain judges.

    eagain_per_reply        many: at least eagain_many_min EAGAIN returns per reply,
                            and eagain_growth_min times more with idle connections;
                            few: under eagain_few_max
    drains_to_eagain        true: at least drain_eagain_per_wait_min EAGAIN returns per
                            readiness wait (select, poll, epoll_wait): its reads go on
                            until EAGAIN; false: at most level_eagain_per_wait_max
    scan_cost               per-descriptor: CPU per reply grows by scan_growth_min with
                            the idle connections; per-ready: by no more than scan_flat_max
    switches_per_reply      per-reply: switches_per_reply_min or more voluntary switches
                            (the server's own waits) per reply; fewer: less
    uring_enter_per_reply   fewer-than-one: under one io_uring_enter per reply

decide() holds the rules alone, so a flipped declaration can be judged
again on the same evidence (no second run).
"""

from __future__ import annotations

from typing import Any

from ..measure.strace import per_reply
from .context import Context
from .domain import finite, need_count, need_in
from .registry import judge
from .verdict import Missing, Verdict, need

KEYS = ("eagain_per_reply", "drains_to_eagain", "scan_cost", "switches_per_reply", "uring_enter_per_reply")
WINDOW_MIN_S = 0.5  # a sampled window shorter than this holds too few replies to divide by


def traced_costs(ctx: Context, probe: str) -> dict[str, float]:
    """Calls per reply by the article's names, over the traced probe: every
    reply the swarm got (strace was attached before it began and stopped after it ended)."""
    traced = ctx.traces.get(probe)
    need(traced is not None, f"the {probe} probe was not traced")
    if isinstance(traced, str):  # ptrace refused: why
        raise Missing(traced)
    need(traced.counts is not None and traced.counts.total > 0, f"strace counted no system call in {probe}")
    replies = need_count(ctx.probe(probe).summary.get("replies"), f"replies in the {probe} probe")
    need(replies > 0, f"no reply in the {probe} probe")
    return per_reply(traced.counts, replies)


def measured_window(ctx: Context, probe: str) -> tuple[float, float, int]:
    """The swarm's measured window (after its warm-up) and its replies."""
    results = ctx.probe(probe).results
    start = finite((results.get("started") or {}).get("monotonic"), f"the {probe} swarm's start")
    end = finite((results.get("ended") or {}).get("monotonic"), f"the {probe} swarm's end")
    warmup = need_in(results.get("warmup_s", 0), 0, end - start, f"the {probe} warm-up", "s")
    replies = need_count(ctx.probe(probe).summary.get("replies_measured"), f"replies measured in {probe}")
    need(replies > 0, f"no reply measured in the {probe} probe")
    return start + warmup, end, replies


def switches_per_reply(ctx: Context) -> dict[str, float]:
    """Voluntary and involuntary switches per reply, untraced: each task from
    its first to its last sample in the measured window; the replies in it
    are the swarm's rate times its length (ping-pong holds a steady rate)."""
    sampler = ctx.switches.get("main")
    need(sampler is not None, "the server's tasks were not sampled")
    start, end, replies = measured_window(ctx, "main")
    window = sampler.window(start, end)
    need(window is not None, "fewer than two samples of the server's tasks in the measured window")
    seconds = need_in(window.seconds, WINDOW_MIN_S, end - start + 0.2, "the sampled window", "s")
    vol = need_in(window.voluntary, 0, None, "voluntary switches (a counter only grows)")
    invol = need_in(window.involuntary, 0, None, "involuntary switches (a counter only grows)")
    in_window = replies / (end - start) * seconds
    return {"voluntary": round(vol / in_window, 4), "involuntary": round(invol / in_window, 4),
            "total": round((vol + invol) / in_window, 4), "tasks": window.tasks, "seconds": round(seconds, 2)}


def cpu_per_reply(ctx: Context, probe: str) -> float:
    """The server's CPU microseconds per reply over the measured window (untraced)."""
    start, end, replies = measured_window(ctx, probe)
    cores = ctx.cores(probe, start, end)
    need(cores is not None, f"the server's CPU was not read during {probe}")
    used = need_in(cores, 0, ctx.cores_bound(probe), f"the server's CPU in {probe}", "cores")
    return round(used * (end - start) / replies * 1e6, 2)


def decide(key: str, declared: Any, f: dict[str, Any], tol: dict[str, Any]) -> tuple[str, str, bool]:
    """(expected, observed, held) of one key, from the figures alone."""
    if key == "eagain_per_reply":
        r, grown = f["traced"]["eagain"], f["traced_idle"]["eagain"]
        held = r >= tol["eagain_many_min"] and grown >= r * tol["eagain_growth_min"] if declared == "many" \
            else r < tol["eagain_few_max"]
        return (f"{declared} EAGAIN per reply" + (", more with idle connections" if declared == "many" else ""),
                f"{r:.2f} per reply, {grown:.2f} with {f['idle_connections']} idle", held)
    if key == "drains_to_eagain":
        per_wait = f["eagain_per_wait"]
        held = per_wait >= tol["drain_eagain_per_wait_min"] if declared else \
            per_wait <= tol["level_eagain_per_wait_max"]
        return (f"reads {'until' if declared else 'not until'} EAGAIN after each readiness wait",
                f"{per_wait:.2f} EAGAIN per wait", held)
    if key == "scan_cost":
        ratio = f["cpu_us_per_reply_idle"] / f["cpu_us_per_reply"]
        held = ratio >= tol["scan_growth_min"] if declared == "per-descriptor" else ratio <= tol["scan_flat_max"]
        return (f"{declared}: CPU per reply with {f['idle_connections_untraced']} idle connections",
                f"x{ratio:.2f} ({f['cpu_us_per_reply']:.0f} -> {f['cpu_us_per_reply_idle']:.0f} us)", held)
    if key == "switches_per_reply":
        s = f["switches"]["voluntary"]  # the server's own waits; involuntary ones are the host's doing
        held = (s >= tol["switches_per_reply_min"]) == (declared == "per-reply")
        return (f"{declared}: voluntary context switches per reply",
                f"{s:.2f} per reply (untraced; {f['switches']['involuntary']:.2f} involuntary)", held)
    u = f["traced"]["io_uring_enter"]
    return "fewer than one io_uring_enter per reply", f"{u:.3f} per reply", u < 1.0 and declared == "fewer-than-one"


WAITS = ("select", "poll", "epoll_wait")  # the readiness waits


def eagain_per_wait(traced: dict[str, float]) -> float:
    waits = sum(traced[w] for w in WAITS)
    need(waits > 0, "no readiness wait (select, poll, epoll_wait) was counted")
    return round(traced["eagain"] / waits, 4)


def evidence(ctx: Context, key: str) -> dict[str, Any]:
    """The figures ``key`` is judged from (each raises Missing when it cannot be had)."""
    f: dict[str, Any] = {"idle_connections": ctx.asked("traced-idle") - ctx.asked("traced"),
                         "idle_connections_untraced": ctx.asked("idle") - ctx.asked("main")}
    if key in ("eagain_per_reply", "uring_enter_per_reply", "drains_to_eagain"):
        f["traced"] = traced_costs(ctx, "traced")
    if key == "drains_to_eagain":
        f["eagain_per_wait"] = eagain_per_wait(f["traced"])
    if key == "eagain_per_reply":
        f["traced_idle"] = traced_costs(ctx, "traced-idle")
    if key == "scan_cost":
        f["cpu_us_per_reply"] = cpu_per_reply(ctx, "main")
        f["cpu_us_per_reply_idle"] = cpu_per_reply(ctx, "idle")
        need(f["cpu_us_per_reply"] > 0, "the server used no CPU for its replies")
    if key == "switches_per_reply":
        f["switches"] = switches_per_reply(ctx)
    return f


def report_figures(ctx: Context) -> dict[str, Any]:
    """Every cost figure that could be had, for the report (whatever was declared)."""
    out: dict[str, Any] = {}
    for name, fn in (("calls_per_reply", lambda: traced_costs(ctx, "traced")),
                     ("calls_per_reply_idle", lambda: traced_costs(ctx, "traced-idle")),
                     ("switches_per_reply", lambda: switches_per_reply(ctx))):
        try:
            out[name] = fn()
        except (Missing, ValueError) as why:
            out[f"{name}_missing"] = str(why)
    return out


@judge(needs=("the traced probes' strace summaries (ptrace allowed on this host)",
              "replies in each probe, counted once by the swarm (> 0)",
              "the server's tasks sampled from /proc over the untraced window, counters only growing",
              "the server's CPU read over both untraced windows"))
def syscalls(ctx: Context) -> list[Verdict]:
    """Each declared cost key, judged by decide() from evidence()."""
    shared = report_figures(ctx)

    def one(key: str) -> Verdict:
        try:
            f = evidence(ctx, key)
        except ValueError as why:  # an impossible denominator (per_reply)
            raise Missing(str(why)) from None
        for value in _numbers(f):
            finite(value, f"a {key} figure")
        expected, observed, ok = decide(key, ctx.expect(key), f, ctx.tol)
        return ctx.verdict(key, expected, observed, ok, **f, **shared)

    return ctx.each(KEYS, one)


def _numbers(f: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    for value in f.values():
        out += _numbers(value) if isinstance(value, dict) else [value]
    return out
