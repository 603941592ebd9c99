"""Before and after: each figure of a run against the same figure of another
run (`lab report RUN --baseline OTHER`), with the spread of both.

The rule for noise: each side's figure is its median over its repeats, and
its spread is the range (min-max) of those repeats.  A change is within the
noise when the two ranges overlap: another repeat could have drawn either
figure.  It is beyond the noise when they do not; with fewer than two
repeats on a side its spread is unknown, and the change is said to be
unjudged rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import data
from .data import PARTIAL, Record, Run, Spread
from .tables import DASH, Table, kib, legend, marked, ms, num, short

Getter = Callable[[Run, str, str], Spread | None]
Marks = Callable[[Run, str, str], str]  # the marks a figure carries in a run (PARTIAL, LIMITED)


def _swarm(figure: Callable[[Record, Record], float | None]) -> Getter:
    return lambda run, m, w: run.spread(m, w, figure)


def _wrk(key: str) -> Getter:
    def get(run: Run, m: str, w: str) -> Spread | None:
        return data.wrk_spread(run, m, w, lambda r: r.get(key) if key == "requests_per_s"
                               else (r.get("latency_ms") or {}).get(key))
    return get


def _partial(run: Run, m: str, w: str) -> str:
    """† where the model served only some of its connections: its figure is theirs."""
    return PARTIAL if data.partial(run, m, w) else ""


def _throughput(run: Run, m: str, w: str) -> str:
    lim = data.limit_of(run, m, w)
    return _partial(run, m, w) + (lim.mark if lim else "")


def _wrk_marks(run: Run, m: str, w: str) -> str:
    lim = data.wrk_limit(run, m, w)
    return _partial(run, m, w) + (lim.mark if lim else "")


def _none(run: Run, m: str, w: str) -> str:
    return ""


@dataclass(frozen=True)
class Figure:
    name: str
    kinds: tuple[str, ...]  # the workload kinds it applies to
    get: Getter
    fmt: Callable[[float | None], str]
    better: str  # higher | lower | "" (neither: a cost that buys throughput)
    marks: Marks = _partial  # as the report's own tables mark it


FIGURES = (
    Figure("replies/s", ("closed",), _swarm(data.replies_per_s), short, "higher", _throughput),
    Figure("p50 ms", ("closed", "open"), _swarm(data.latency_ms("p50_us")), ms, "lower"),
    Figure("p99 ms", ("closed", "open"), _swarm(data.latency_ms("p99_us")), ms, "lower"),
    Figure("µs CPU/reply", ("closed",), _swarm(data.us_per_reply), lambda v: num(v, 1), "lower"),
    Figure("server cores", ("closed", "open"), _swarm(data.server_cores), lambda v: num(v, 2), ""),
    Figure("KiB/conn", ("open",), _swarm(data.memory_per_conn_kib), lambda v: kib(v, whole=True), "lower"),
    Figure("wrk requests/s", ("closed",), _wrk("requests_per_s"), short, "higher", _wrk_marks),
    Figure("wrk p99 ms", ("closed",), _wrk("p99"), ms, "lower"),
    Figure("open at peak", ("c10k",), _swarm(data.c10k_counter("open_at_peak")), num, "higher", _none),
    Figure("busy p99 ms", ("c10k",), _swarm(data.check_latency_ms("p99_us")), ms, "lower",
           lambda run, m, w: PARTIAL if data.busy_partial(run, m, w) else ""),
    Figure("PSS KiB/conn", ("c10k",), _swarm(data.per_connection_kib("pss")), kib, "lower",
           lambda run, m, w: PARTIAL if data.c10k_partial(run, m, w) else ""),
)


def verdict(base: Spread, now: Spread, better: str,
            fmt: Callable[[float | None], str] = lambda v: repr(v)) -> tuple[str, str]:
    """(words, cell class) for a change from ``base`` to ``now``; figures
    that read the same as shown (``fmt``) are the same, whatever digits
    below what is shown say."""
    if len(base.values) < 2 or len(now.values) < 2:
        return "spread unknown (1 repeat)", "unknown"
    if now.min <= base.max and base.min <= now.max:
        return "within the noise", ""
    if fmt(base.median) == fmt(now.median):  # apart only in digits the table does not show
        return "the same, as shown", ""
    up = now.median > base.median
    if not better:
        return ("higher" if up else "lower") + ", beyond the noise", ""
    good = up == (better == "higher")
    return ("better" if good else "worse") + ", beyond the noise", "ok" if good else "fail"


def _cell(s: Spread | None, fmt: Callable[[float | None], str], marks: str = "") -> str:
    if s is None:
        return DASH
    rng = f" ({fmt(s.min)}{DASH}{fmt(s.max)})" if len(s.values) > 1 else ""
    return marked(f"{fmt(s.median)}{rng} ×{len(s.values)}", marks)


def change(before: Spread, now: Spread, marks: str) -> str:
    """The change of the medians in per cent, where a percentage means
    something: not of a figure of only some connections (†), nor from or
    to a figure at or below zero."""
    if PARTIAL in marks or before.median <= 0 or now.median < 0:
        return DASH
    return f"{now.median / before.median - 1:+.0%}"


def comparable(run: Run, base: Run, workload: str) -> str | None:
    """Why a workload cannot be set against the baseline's, or None."""
    mine = next((w for w in run.workloads if w.name == workload), None)
    theirs = next((w for w in base.workloads if w.name == workload), None)
    if mine is None or theirs is None:
        return "not in both runs"
    if mine.flags != theirs.flags:
        return "its swarm flags differ"
    if (mine.warmup_s, mine.measure_s) != (theirs.warmup_s, theirs.measure_s):
        return f"measured {theirs.measure_s:g} s then, {mine.measure_s:g} s now"
    return None


def table(run: Run, base: Run) -> Table:
    t = Table(["model", "workload", "figure", "baseline", "this run", "change", "verdict"], align="lllrrrl")
    not_compared: list[str] = []
    for w in run.workloads:
        why = comparable(run, base, w.name)
        if why:
            not_compared.append(f"{w.name} ({why})")
            continue
        for m in [m for m in run.models if m in base.models]:
            for f in FIGURES:
                if w.kind not in f.kinds:
                    continue
                before, now = f.get(base, m, w.name), f.get(run, m, w.name)
                if before is None and now is None:
                    continue
                was, is_ = f.marks(base, m, w.name) if before else "", f.marks(run, m, w.name) if now else ""
                if before is None or now is None:
                    t.add([m, w.name, f.name, _cell(before, f.fmt, was), _cell(now, f.fmt, is_), DASH,
                           "measured in one run only"])
                    continue
                words, cls = verdict(before, now, f.better, f.fmt)
                i = t.add([m, w.name, f.name, _cell(before, f.fmt, was), _cell(now, f.fmt, is_),
                           change(before, now, was + is_), words])
                t.cell_class[(i, 6)] = cls
    t.notes.append(
        "Each side: median (min–max) ×repeats. Within the noise: the two runs' ranges overlap, so another "
        "repeat could have given either figure; beyond the noise: they do not; with one repeat on a side its "
        "spread is unknown, so the change is not judged. Better or worse by the figure's own sense (more "
        "replies, less latency, less CPU or memory per unit); server cores is neither. Figures that read the "
        "same as shown are the same. The marks are the report's own: no change in per cent is given for a "
        f"figure marked {PARTIAL} (of only some connections), nor from a figure at or below zero."
        + legend(t, run))
    if not_compared:
        t.notes.append("Not compared: " + "; ".join(not_compared) + ".")
    models = [m for m in run.models if m not in base.models]
    if models:
        t.notes.append("Not in the baseline: " + ", ".join(models) + ".")
    return t


def about(run: Run, base: Run) -> str:
    """One paragraph: what the baseline is, and what differs around the figures."""
    def facts(r: Run) -> tuple[str, str, str]:
        env = r.environment
        return (str(env.get("git_commit") or "unknown"), str((env.get("engine") or {}).get("cpus") or "?"),
                str((r.doc.get("params") or {}).get("repeat", "?")))
    (c0, cpu0, rep0), (c1, cpu1, rep1) = facts(base), facts(run)
    text = (f"Against `{(base.doc.get('run') or {}).get('id', '?')}` (the baseline, {base.version}): commit "
            f"`{c0}` then, `{c1}` now; {rep0} repeat(s) then, {rep1} now.")
    if cpu0 != cpu1:
        text += f" The engine had {cpu0} cores then and {cpu1} now: throughput is not comparable across them."
    return text
