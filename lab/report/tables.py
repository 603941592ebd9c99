"""The report's tables, built once from a Run and rendered three ways: HTML,
Markdown and (the summary) a rich table in the terminal.

Cells are plain strings, formatted here, so every rendering shows the same
digits.  A figure over several repeats is shown as its median, with the
range (min-max) where the repeats disagree.  Marks travel in the text, so
every rendering shows them: † a model that served only some of its
connections (its figure is theirs, never the best), ‡ a throughput figure
the server did not limit (the load generator or the host did).  The best
figure of a column is a cell class ("best"), given only to a model that
served every connection and was not held back by the load generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ioschema import DEFAULT_PORT

from . import data
from .data import PARTIAL, Record, Run, Spread

DASH = "–"  # en dash, for ranges and "not measured"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""  # one letter per column: l or r (default: first l, rest r)
    row_class: list[str] = field(default_factory=list)  # per row: "", "fail", "ceiling"
    notes: list[str] = field(default_factory=list)
    cell_class: dict[tuple[int, int], str] = field(default_factory=dict)  # best | ok | fail | unknown

    def add(self, cells: list[str], cls: str = "") -> int:
        self.rows.append(cells)
        self.row_class.append(cls)
        return len(self.rows) - 1

    def aligns(self) -> str:
        return self.align or "l" + "r" * (len(self.columns) - 1)

    def cls(self, row: int, col: int) -> str:
        return self.cell_class.get((row, col), "")


# -- number formats ---------------------------------------------------------------

def num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return DASH
    return f"{v:,.{digits}f}"


def short(v: float | None) -> str:
    """Compact: 950, 9.5k, 22.0k, 1.2M."""
    if v is None:
        return DASH
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 1e3:
        return f"{v / 1e3:.2f}k"
    return f"{v:.0f}"


def count(v: Any) -> str:
    """A count from the flags: 10,000 (or as it was written, if not a number)."""
    return f"{v:,}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v if v is not None else "?")


BELOW_IDLE = "<idle"  # memory per connection that came out negative: never shown as a negative size


def kib(v: float | None, whole: bool = False) -> str:
    """KiB per connection: a decimal where it matters (0.7 against 21).
    Memory under load below the idle server's is no negative size: the
    connections' cost is lost in the reading's noise (BELOW_IDLE)."""
    if v is None:
        return DASH
    if v < 0 and round(v, 1) < 0:
        return BELOW_IDLE
    if whole:
        return num(max(v, 0.0), 0)
    if round(v, 1) == 0:
        return "0.0"  # not -0.0: memory that shrank by less than shows
    return f"{v:,.1f}" if abs(v) < 10 else f"{v:,.0f}"


def ms(v: float | None) -> str:
    if v is None:
        return DASH
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def pct(v: float | None) -> str:
    if v is None:
        return DASH
    return f"{v:.0%}" if v >= 0.01 else "<1%"


def spread(s: Spread | None, fmt: Callable[[float | None], str] = short, ranges: bool = True) -> str:
    if s is None:
        return DASH
    if not ranges or len(s.values) == 1 or fmt(s.min) == fmt(s.max):
        return fmt(s.median)
    return f"{fmt(s.median)} ({fmt(s.min)}{DASH}{fmt(s.max)})"


def ratio(a: Spread | None, b: Spread | None) -> str:
    if a is None or b is None:
        return DASH
    return f"{a.median:.0f}/{b.median:.0f}"


def marked(text: str, *marks: str) -> str:
    """A figure with its marks (PARTIAL, LIMITED) after it; a dash stays bare."""
    found = "".join(m for m in marks if m)
    return f"{text} {found}" if found and text != DASH else text


def _median(s: Spread | None) -> float | None:
    return None if s is None else s.median


# -- the best of a column: only where the figure is the model's own ------------------

def eligible(run: Run, model: str, workload: str, throughput: bool = False) -> bool:
    """May this model's figure in ``workload`` be called the best?  Not the
    reference's (a ruler, not a contestant), not one of a model that served
    only some connections, and for throughput not one the load generator set."""
    if run.kind_of(model) == "reference" or data.partial(run, model, workload):
        return False
    lim = data.limit_of(run, model, workload) if throughput else None
    return not (lim and lim.by == "swarm")


def highlight_best(t: Table, col: int, candidates: list[tuple[int, float | None, bool]], higher: bool) -> None:
    """Give the best-figure class to the best eligible value of a column
    (ties all get it); (row, value, eligible) per row."""
    values = [v for _, v, ok in candidates if ok and v is not None and math.isfinite(v)]  # inf is no best
    if len(values) < 2:  # a best of one is no comparison
        return
    best = max(values) if higher else min(values)
    for row, v, ok in candidates:
        if ok and v == best:
            t.cell_class[(row, col)] = "best"


def below_idle(t: Table) -> str:
    """What BELOW_IDLE means, for the notes under a table that shows it."""
    if not any(BELOW_IDLE in c for row in t.rows for c in row):
        return ""
    return (f" {BELOW_IDLE}: memory under load came out below the idle server's, so what a connection costs "
            "is lost in the noise of the reading (it is never a negative size).")


def legend(t: Table, run: Run, best: bool = True) -> str:
    """The marks' meaning, for the notes under a table that uses them."""
    text = ""
    cells = [c for row in t.rows for c in row]
    if any(PARTIAL in c for c in cells):
        text += (f" {PARTIAL}: the model served only some of its connections (served/connected"
                 + ("; C10K: held at the peak, or busy clients answered" if run.of_kind("c10k") else "")
                 + "): the figure is of those, never the best.")
    if any(c.endswith(data.LIMITED) for c in cells):  # marks come last (marked())
        text += (f" {data.LIMITED}: the server did not set this pace: the load generator or the host did "
                 "(see Throughput, limited by).")
    text += below_idle(t)
    if best and any(v == "best" for v in t.cell_class.values()):
        text += (" Highlighted: the best in its column among the models that served every connection and "
                 "were not held back by the load generator.")
    return text


# -- the sections -----------------------------------------------------------------

def _first(run: Run, kind: str) -> data.Workload | None:
    found = run.of_kind(kind)
    return found[0] if found else None


def model_cell(run: Run, model: str) -> str:
    return f"{model} (ceiling)" if run.kind_of(model) == "reference" else model


def throughput_cell(run: Run, model: str, workload: str, ranges: bool = False) -> str:
    """replies/s with its share of the ceiling, and its marks."""
    skipped = run.skipped(model, workload)
    s = run.spread(model, workload, data.replies_per_s)
    if s is None:
        return "skipped" if skipped else DASH
    share = data.fraction_of_reference(run, model, workload, data.replies_per_s)
    lim = data.limit_of(run, model, workload)
    text = spread(s, ranges=ranges) + (f" ({pct(share)})" if share is not None else "")
    return marked(text, PARTIAL if data.partial(run, model, workload) else "", lim.mark if lim else "")


PROMISE_CLASS = {"held": "ok", "failed": "fail", "not judged": "unknown", "not checked": ""}


@dataclass
class _Glance:
    """The workloads the summary's columns are about."""

    timelines: list[data.Workload]
    closed: list[data.Workload]
    main: data.Workload | None  # the first closed loop
    opened: data.Workload | None
    cpu: data.Workload | None  # whose CPU is shown
    snap: data.Workload | None  # whose memory and tasks are shown
    c10k: data.Workload | None

    @classmethod
    def of(cls, run: Run) -> "_Glance":
        closed, opened = run.of_kind("closed"), _first(run, "open")
        main = closed[0] if closed else None
        return cls(run.of_kind("timeline"), closed, main, opened, main or opened, data.snapshot_workload(run),
                   _first(run, "c10k"))

    def columns(self) -> list[str]:
        cols = ["model", "model.yaml promises"] + [f"{w.name}: served at once" for w in self.timelines]
        cols += [f"{w.name} replies/s" for w in self.closed]
        if self.main:
            cols += [f"{self.main.name} served", f"{self.main.name} p99 ms"]
        if self.opened:
            cols += [f"{self.opened.name} p99 ms", f"{self.opened.name} requests unanswered"]
        if self.cpu:
            cols += [f"server cores ({self.cpu.name})", f"swarm cores ({self.cpu.name})"]
        if self.snap:
            cols += [f"KiB/conn ({self.snap.name})", f"threads/procs ({self.snap.name})"]
        if self.c10k:
            cols += [f"{self.c10k.name} open at peak", f"{self.c10k.name} KiB/conn"]
        return cols


def summary(run: Run) -> Table:
    """At a glance: one row per model (the ceiling first)."""
    g = _Glance.of(run)
    cols = g.columns()
    t = Table(cols, align="ll" + "r" * (len(cols) - 2))
    best: dict[tuple[int, bool], list[tuple[int, float | None, bool]]] = {}  # (column, higher is better)
    for m in run.models:
        promise = data.promise(run, m)
        failed = any(r.get("error") for r in run.repeats(m))
        i = t.add(_summary_row(run, m, g, len(t.rows), best, promise.text),
                  "fail" if failed else "ceiling" if run.kind_of(m) == "reference" else "")
        t.cell_class[(i, 1)] = PROMISE_CLASS[promise.state]
    for (col, higher), candidates in best.items():
        highlight_best(t, col, candidates, higher)
    t.notes.append(_summary_note(run, g.main, g.snap, g.c10k) + legend(t, run) + _coarse(t) + above_ceiling(run))
    return t


def _summary_row(run: Run, m: str, g: _Glance, index: int,
                 best: dict[tuple[int, bool], list[tuple[int, float | None, bool]]],
                 promise: str) -> list[str]:
    """One model's cells; each rankable figure is put among ``best``'s candidates of its column."""
    row = [model_cell(run, m), promise] + [_at_once(run, m, w.name) for w in g.timelines]
    for w in g.closed:
        best.setdefault((len(row), True), []).append(
            (index, _median(run.spread(m, w.name, data.replies_per_s)), eligible(run, m, w.name, True)))
        row.append(throughput_cell(run, m, w.name))
    for w in [g.main, g.opened]:
        if w is None:
            continue
        if w is g.main:
            row.append(ratio(run.spread(m, w.name, data.served), run.spread(m, w.name, data.connected)))
        p99 = _median(run.spread(m, w.name, data.latency_ms("p99_us")))
        best.setdefault((len(row), False), []).append((index, p99, eligible(run, m, w.name)))
        row.append(marked(ms(p99), PARTIAL if data.partial(run, m, w.name) else ""))
        if w is g.opened:
            row.append(_share(run.spread(m, w.name, data.unanswered), run.spread(m, w.name, data.sent)))
    if g.cpu:
        row += [cores(run, m, g.cpu.name), num(_median(run.spread(m, g.cpu.name, data.swarm_cores)), 2)]
    if g.snap:
        row += [kib(_median(run.spread(m, g.snap.name, data.memory_per_conn_kib)), whole=True),
                ratio(run.spread(m, g.snap.name, data.load_figure("threads")),
                      run.spread(m, g.snap.name, data.load_figure("processes")))]
    if g.c10k:
        row += [_c10k_open(run, m, g.c10k),
                marked(kib(_median(run.spread(m, g.c10k.name, data.per_connection_kib("pss")))),
                       PARTIAL if data.c10k_partial(run, m, g.c10k.name) else "")]
    return row


def above_ceiling(run: Run) -> str:
    """Say so where a model beat the ceiling: the ceiling's own run was held back."""
    over = sorted({m for m in run.studied for w in run.of_kind("closed")
                   if (data.fraction_of_reference(run, m, w.name, data.replies_per_s) or 0) > 1})
    if not over:
        return ""
    return (f" Above 100% of the ceiling ({', '.join(over)}): the ceiling's own run was held back (see what "
            "limited it), so in this run the shares are no measure of what the host can do.")


def _summary_note(run: Run, main: data.Workload | None, snap: data.Workload | None,
                  c10k: data.Workload | None) -> str:
    text = "Medians over the repeats."
    if run.reference:
        text += (f" {run.reference} (ceiling) is the native C echo server: this host's limit with this "
                 "load generator; a model's replies/s is followed by its share of the ceiling's, measured "
                 "in the same run.")
    text += (" model.yaml promises: the behaviour checks' verdicts for the model (checks.json, from "
             "`lab compare --checks` or `lab check`, and the C10K check when it ran); not checked when none ran.")
    if main:
        text += " served: connections that got at least one reply, of those connected."
    if run.of_kind("open"):
        text += (" requests unanswered: the share of the requests sent that had no reply when the run "
                 "ended.")
    if snap:
        text += " KiB/conn: memory under load minus idle, per connection."
    if c10k:
        text += (f" {c10k.name} open at peak: connections the server had accepted and not closed when it was "
                 f"read at the peak, of {count(c10k.flags.get('clients'))}; KiB/conn: PSS at the peak over the "
                 "idle server per connection open then (see C10K).")
    return text


def _c10k_open(run: Run, model: str, w: data.Workload) -> str:
    if run.skipped(model, w.name):
        return "skipped"
    return num(_median(run.spread(model, w.name, data.c10k_counter("open_at_peak"))))


def _coarse(t: Table) -> str:
    return COARSE_NOTE if any(cell.startswith("≈") for row in t.rows for cell in row) else ""


COARSE = 0.25  # seconds between CPU readings beyond which a figure is marked approximate
COARSE_NOTE = (" ≈: the lab itself was kept off the CPU near the ends of the measured window (its "
               "readings more than 0.25 s apart), so the figure is approximate.")


def cores(run: Run, model: str, workload: str) -> str:
    """Server cores, marked ≈ where the readings around the window were far apart."""
    s = run.spread(model, workload, data.server_cores)
    coarse = any(((rec.get("server_cpu") or {}).get("resolution_s") or 0) > COARSE
                 for _, rec in run.records(model, workload))
    return ("≈" if coarse and s else "") + num(_median(s), 2)


def _at_once(run: Run, model: str, workload: str) -> str:
    tl = run.timeline(model, workload)
    return f"{data.peak_served(tl[0])} of {len(tl[0])}" if tl else DASH


def _share(part: Spread | None, whole: Spread | None) -> str:
    if part is None or whole is None or not whole.median:
        return DASH
    share = part.median / whole.median
    if share == 0:
        return "0%"
    return f"{share:.0%}" if share >= 0.01 else "<1%"


def throughput(run: Run) -> Table:
    cols = ["model", "workload", "replies/s (median)", "min", "max", "repeats"]
    cols += ["of the ceiling"] if run.reference else []
    cols += ["served/connected", "limited by", "requests unanswered", "errors"]
    t = Table(cols, align="llrrrr" + ("r" if run.reference else "") + "rlrr")
    for w in run.of_kind("closed"):
        candidates = []
        for m in run.models:
            s = run.spread(m, w.name, data.replies_per_s)
            if s is None and run.skipped(m, w.name):
                t.add([model_cell(run, m), w.name, f"skipped: {run.skipped(m, w.name)}"] + [""] * (len(cols) - 3),
                      "ceiling" if run.kind_of(m) == "reference" else "")
                continue
            errors = sum(sum(rec["swarm"]["summary"]["errors"].values()) for _, rec in run.records(m, w.name))
            lim = data.limit_of(run, m, w.name)
            part = PARTIAL if data.partial(run, m, w.name) else ""
            row = [model_cell(run, m), w.name, marked(num(s.median) if s else DASH, part, lim.mark if lim else ""),
                   num(s.min) if s else DASH, num(s.max) if s else DASH, str(len(s.values)) if s else "0"]
            if run.reference:
                row.append(pct(data.fraction_of_reference(run, m, w.name, data.replies_per_s))
                           if m != run.reference else "ceiling")
            row += [marked(ratio(run.spread(m, w.name, data.served), run.spread(m, w.name, data.connected)), part),
                    f"{lim.by or 'not judged'}: {lim.why}" if lim else DASH,
                    num(_median(run.spread(m, w.name, data.unanswered))), num(errors)]
            candidates.append((t.add(row, "ceiling" if run.kind_of(m) == "reference" else ""),
                               s.median if s else None, eligible(run, m, w.name, True)))
        highlight_best(t, 2, candidates, higher=True)
    t.notes.append(
        "limited by: what set the pace (SCHEMA.md, Which limit): the swarm, when its processes used nearly "
        f"({data.NEAR:.0%} or more of) all the cores its workers can; the host, when server and swarm (or "
        f"everything on the machine) used nearly all the engine's cores; else the server. A figure the "
        "swarm or the host limited ranks them, not the model; over several repeats the worst is shown. "
        "requests unanswered: requests sent that had no reply when the run ended (median; a closed loop always "
        "ends with its last requests in flight, one per connection and pipeline slot)."
        + legend(t, run) + above_ceiling(run))
    return t


def latency(run: Run) -> Table:
    t = Table(["model", "workload", "loop", *[f"{p} ms" for p, _ in data.PERCENTILES], "replies",
               "served/connected", "requests unanswered"], align="lll" + "r" * (len(data.PERCENTILES) + 3))
    p99 = 3 + [p for p, _ in data.PERCENTILES].index("p99")
    candidates: dict[str, list[tuple[int, float | None, bool]]] = {}
    for m in run.models:
        for w in run.of_kind("closed") + run.of_kind("open"):
            if run.spread(m, w.name, data.replies_per_s) is None and run.skipped(m, w.name):
                continue
            part = PARTIAL if data.partial(run, m, w.name) else ""
            values = [_median(run.spread(m, w.name, data.latency_ms(key))) for _, key in data.PERCENTILES]
            n = run.spread(m, w.name, lambda rep, rec: rec["swarm"]["summary"]["latency"]["count"])
            i = t.add([model_cell(run, m), w.name, w.kind, *[marked(ms(v), part) for v in values],
                       num(_median(n)), marked(ratio(run.spread(m, w.name, data.served),
                                                     run.spread(m, w.name, data.connected)), part),
                       _share(run.spread(m, w.name, data.unanswered), run.spread(m, w.name, data.sent))],
                      "ceiling" if run.kind_of(m) == "reference" else "")
            candidates.setdefault(w.name, []).append((i, values[p99 - 3], eligible(run, m, w.name)))
    for found in candidates.values():
        highlight_best(t, p99, found, higher=False)
    t.notes.append("Median of each percentile over the repeats, after the warm-up. Requests never answered "
                   "are in no percentile: served/connected counts the connections that got any reply, "
                   "requests unanswered is the share of the requests sent still waiting when the run ended (a "
                   "closed loop always ends with its last requests in flight)." + legend(t, run))
    return t


def resources(run: Run) -> Table:
    t = Table(["model", "workload", "server cores", "µs CPU/reply", "swarm cores", "processes",
               "threads", "memory MiB", "KiB/conn", "USS KiB/conn"], align="llrrrrrrrr")
    for m in run.models:
        idle = [rep.get("idle") or {} for rep in run.repeats(m)]
        idle_p, idle_t = _idle(idle, "processes"), _idle(idle, "threads")
        for w in run.sampled:
            if run.spread(m, w.name, data.replies_per_s) is None and run.skipped(m, w.name):
                continue
            mem = run.spread(m, w.name, lambda rep, rec: data.memory_kib(data.under_load(rec))[0])
            t.add([model_cell(run, m), marked(w.name, PARTIAL if data.partial(run, m, w.name) else ""),
                   cores(run, m, w.name), num(_median(run.spread(m, w.name, data.us_per_reply)), 1),
                   num(_median(run.spread(m, w.name, data.swarm_cores)), 2),
                   _from(idle_p, run.spread(m, w.name, data.load_figure("processes"))),
                   _from(idle_t, run.spread(m, w.name, data.load_figure("threads"))),
                   num(mem.median / 1024, 1) if mem else DASH,
                   kib(_median(run.spread(m, w.name, data.memory_per_conn_kib)), whole=True),
                   kib(_median(run.spread(m, w.name, data.uss_per_conn_kib)), whole=True)],
                  "ceiling" if run.kind_of(m) == "reference" else "")
    t.notes.append(f"Memory: {data.memory_source(run)}, summed over the model's processes under load "
                   "(–: no snapshot fell inside the measured window, the lab being kept off the CPU). "
                   "processes and threads: idle → under load. Cores: CPU time over the measured window "
                   "(1.00 = one core busy all the time); swarm cores: the swarm's own CPU (its container's "
                   "cgroup over the same window where the engine is local)." + _coarse(t) + legend(t, run))
    return t


def _idle(snapshots: list[Record], key: str) -> Spread | None:
    """``key`` (processes, threads) of the idle server over the repeats that read it."""
    values = tuple(i[key] for i in snapshots if i.get(key) is not None)
    return Spread(values) if values else None


def _from(idle: Spread | None, load: Spread | None) -> str:
    if load is None:
        return DASH
    if idle is None:
        return num(load.median)
    return f"{idle.median:.0f} → {load.median:.0f}"


def timeline(run: Run) -> Table:
    t = Table(["model", "workload", "connections", "peak served at once", "replies per connection",
               "requests unanswered"], align="llrrrr")
    for w in run.of_kind("timeline"):
        for m in run.models:
            tl = run.timeline(m, w.name)
            if tl is None:
                t.add([model_cell(run, m), w.name, DASH, DASH, DASH, DASH], "fail")
                continue
            conns, _ = tl
            t.add([model_cell(run, m), w.name, str(len(conns)), str(data.peak_served(conns)),
                   " / ".join(str(len(c.answered)) for c in conns),
                   str(sum(len(c.pairs) - len(c.answered) for c in conns))],
                  "ceiling" if run.kind_of(m) == "reference" else "")
    t.notes.append("The first repeat's timeline. replies per connection: each connection's answered requests; "
                   "requests unanswered: requests sent, of all the connections, that had no reply when the run "
                   "ended.")
    return t


def clients(run: Run) -> Table | None:
    """The same workload from two clients: the swarm (line protocol) and wrk (HTTP)."""
    shown = [w for w in run.sampled if any(rec.get("wrk") for m in run.models for _, rec in run.records(m, w.name))]
    if not shown:
        return None
    t = Table(["model", "workload", "swarm replies/s", "swarm p50 ms", "swarm p99 ms", "swarm limited by",
               "wrk requests/s", "wrk p50 ms", "wrk p90 ms", "wrk p99 ms", "wrk errors", "wrk limited by"],
              align="llrrrlrrrrrl")
    for w in shown:
        candidates = []
        for m in run.models:
            part = PARTIAL if data.partial(run, m, w.name) else ""
            lim = data.limit_of(run, m, w.name)
            swarm = [marked(short(_median(run.spread(m, w.name, data.replies_per_s))), part, lim.mark if lim else ""),
                     *[marked(ms(_median(run.spread(m, w.name, data.latency_ms(k)))), part) for k in ("p50_us", "p99_us")],
                     lim.by or "not judged" if lim else DASH]
            skipped = run.skipped(m, f"{w.name}/wrk")
            got = data.wrk_records(run, m, w.name)
            if not got:
                tried = [rec["wrk"] for _, rec in run.records(m, w.name) if rec.get("wrk")]
                why = skipped or (tried[0].get("error") if tried else None) or "not run"
                t.add([model_cell(run, m), w.name, *swarm, f"{'skipped' if skipped else 'failed'}: {why}",
                       "", "", "", "", ""], "ceiling" if run.kind_of(m) == "reference" else "")
                continue
            rps = data.wrk_spread(run, m, w.name, lambda r: r["requests_per_s"])
            wlim = data.wrk_limit(run, m, w.name)
            errors = sum(sum((r.get("errors") or {}).values()) + int(r.get("non_2xx") or 0) for r in got)
            row = [model_cell(run, m), w.name, *swarm,
                   marked(spread(rps), part, wlim.mark if wlim else ""),
                   *[marked(ms(_median(data.wrk_spread(run, m, w.name, lambda r, k=k: (r.get("latency_ms") or {}).get(k)))),
                            part) for k in ("p50", "p90", "p99")],
                   num(errors), (wlim.by or "not judged") if wlim else DASH]
            candidates.append((t.add(row, "ceiling" if run.kind_of(m) == "reference" else ""),
                               rps.median if rps else None, eligible(run, m, w.name, True) and not
                               (wlim and wlim.by == "wrk")))
        highlight_best(t, 6, candidates, higher=True)
    t.notes.append(
        "The swarm speaks the lab's line protocol; wrk speaks HTTP/1.1 (keep-alive GET, one request in flight "
        "per connection, the same number of connections), on the same server right after the swarm's run. "
        "wrk cannot say which connections it served: a model the swarm found serving only some connections "
        f"is marked {PARTIAL} in both. wrk's latency is over its whole run (it has no warm-up), from its own "
        "report (--latency); errors: socket errors and non-2xx answers. Its limit follows the same rule, "
        "with wrk's threads as its workers." + legend(t, run))
    return t


def checks(run: Run) -> Table | None:
    if not run.checks:
        return None
    t = Table(["model", "check", "claim", "expected", "observed", "result"], align="llllll")
    for c in sorted(run.checks.get("checks") or [], key=lambda c: (str(c.get("model")), str(c.get("check")))):
        ok = c.get("ok")
        i = t.add([str(c.get("model", "")), str(c.get("check", "")), str(c.get("claim", "")),
                   _text(c.get("expected")), _text(c.get("observed")),
                   "held" if ok is True else "FAILED" if ok is False else "not judged"],
                  "fail" if ok is False else "")
        t.cell_class[(i, 5)] = "ok" if ok is True else "fail" if ok is False else "unknown"
    n = len(t.rows)
    failed = sum(1 for c in run.checks.get("checks") or [] if c.get("ok") is False)
    unknown = sum(1 for c in run.checks.get("checks") or [] if c.get("ok") is None)
    held = n - failed - unknown
    t.notes.append((f"{held} of {n} checks held" + (f", {failed} failed" if failed else "")
                    + (f", {unknown} not judged (the lab could not measure what the check needs: see observed)"
                       if unknown else "") + ".") if n else "No checks recorded.")
    return t


def classification(run: Run) -> Table | None:
    """Each classified target: what `lab classify`'s probes inferred, beside
    what its model.yaml declares (results.json's models.<m>.classification)."""
    found = {m: run.doc["models"][m].get("classification") for m in run.models}
    found = {m: c for m, c in found.items() if c}
    if not found:
        return None
    t = Table(["target", "declared", "inferred", "confidence", "", "why"], align="llllll")
    for m, c in found.items():
        if c.get("error"):
            t.add([m, "", "not classified", "", "", str(c["error"])], "fail")
            continue
        declared = c.get("declared") or {}
        d = declared.get("summary") or declared.get("class") or "not declared"
        agrees = c.get("agrees")
        i = t.add([m, d, str(c.get("summary", "")), str(c.get("confidence", "")),
                   {True: "agrees", False: "differs", None: ""}[agrees], str((c.get("evidence") or [""])[-1])],
                  "fail" if agrees is False else "")
        t.cell_class[(i, 4)] = "ok" if agrees else "fail" if agrees is False else "unknown"
    t.notes.append("Inferred from observation alone (who was served at once, what grew with the clients, which "
                   "threads did the work, what one slow request did to the others): model.yaml is never an "
                   "input, only what it is compared with.")
    return t


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    import json
    return json.dumps(v, sort_keys=True)


def environment(run: Run) -> Table:
    env = run.environment
    host, eng, cont = env.get("host") or {}, env.get("engine") or {}, env.get("containers") or {}
    params = run.doc.get("params") or {}
    mem = eng.get("memory_bytes")
    pythons = cont.get("python") or {}
    rows = [
        ("engine CPU", f"{eng.get('cpu_model') or '?'}, {eng.get('cpus') or '?'} cores"),
        ("engine kernel", str(eng.get("kernel") or "?")),
        ("engine", f"Docker {eng.get('version') or '?'} (API {eng.get('api_version') or '?'}; "
                   f"client API {eng.get('client_api_version') or '?'}), {eng.get('os') or '?'}, "
                   f"cgroup v{eng.get('cgroup_version') or '?'}"
                   + (f", {mem / 2**30:.1f} GiB" if mem else "")),
        ("host", f"{host.get('platform') or '?'}; {host.get('cpu_model') or '?'}, {host.get('cpus') or '?'} cores"),
        ("Python (host)", str(host.get("python") or "?")),
        ("Python (servers)", ", ".join(sorted(set(map(str, pythons.values())))) or "?"),
        ("Python (swarm)", str(cont.get("swarm_python") or "?")),
        ("image", f"{cont.get('image') or '?'} on {cont.get('base_image') or '?'}"),
        ("lab", f"{env.get('lab_version') or '?'}, commit {env.get('git_commit') or 'unknown'}"),
        ("command", " ".join(params.get("argv") or [])),
        ("run", f"{(run.doc.get('run') or {}).get('id', '?')} ({run.version})"),
        ("repeats", str(params.get("repeat", "?"))),
        ("server trace level", str(params.get("server_trace", "?"))),
    ]
    if params.get("clients"):
        rows.append(("clients", ", ".join(params["clients"])))
    t = Table(["", ""], align="ll")
    for k, v in rows:
        t.add([k, v])
    return t


def workloads(run: Run) -> Table:
    base = " ".join((run.doc.get("params") or {}).get("swarm_base_command") or [])
    t = Table(["workload", "kind", "warm-up s", "measured s", "swarm flags"], align="llrrl")
    for w in run.workloads:
        flags = " ".join(f"--{k}={v}" for k, v in sorted(w.flags.items()))
        t.add([w.name, w.kind, f"{w.warmup_s:g}", f"{w.measure_s:g}", flags])
    if base:
        t.notes.append(f"Swarm: {base} with the flags above, --target=MODEL:{DEFAULT_PORT}, --warmup, --duration, "
                       "--trace and --out, each once (each run's exact command is in results.json).")
    for w in run.workloads:
        if w.scenario:
            t.notes.append(f"{w.name}: from scenarios/{w.scenario}.yaml, as `lab check` runs it: the swarm by "
                           "exec in an idle swarm container, on a server of its own with "
                           f"{' '.join(w.server_flags) or 'its usual flags'}.")
    skipped = sorted({f"{m} {w}: {why}" for m in run.models
                      for w, why in (run.doc["models"][m].get("skipped") or {}).items()})
    if skipped:
        t.notes.append("Skipped: " + "; ".join(skipped) + ".")
    return t


def servers(run: Run) -> Table:
    t = Table(["model", "server command", "backlog", "somaxconn", "workers"], align="llrrr")
    for m in run.models:
        start = next((rep.get("server_start") for rep in run.repeats(m) if rep.get("server_start")), None)
        if start is not None or not any(w.scenario for w in run.workloads):
            t.add([model_cell(run, m), " ".join(run.doc["models"][m].get("server_command") or []),
                   _opt((start or {}).get("backlog")), _opt((start or {}).get("somaxconn")),
                   _opt((start or {}).get("workers"))])
        for w in run.workloads:  # a scenario's own server
            server = next((rec["server"] for _, rec in run.records(m, w.name) if rec.get("server")), None)
            if server:
                start = server.get("start") or {}
                t.add([f"{m} ({w.name})", " ".join(server.get("command") or []), _opt(start.get("backlog")),
                       _opt(start.get("somaxconn")), _opt(start.get("workers"))])
    return t


def _opt(v: Any) -> str:
    return DASH if v is None else str(v)


# -- the terminal ---------------------------------------------------------------------

STYLE = {"best": "bold green", "ok": "green", "fail": "bold red", "unknown": "yellow"}


def rich_table(t: Table, title: str | None = None) -> Any:
    """The table for the terminal, its notes below it (a rich caption wider
    than the table would squeeze the first column away)."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    rt = RichTable(title=title, show_header=True, header_style="bold", title_justify="left")
    for i, (col, a) in enumerate(zip(t.columns, t.aligns())):
        rt.add_column(col, justify="right" if a == "r" else "left", no_wrap=a == "r" or i == 0)
    for r, (row, cls) in enumerate(zip(t.rows, t.row_class)):
        cells = [Text(v, style=STYLE.get(t.cls(r, c), "")) for c, v in enumerate(row)]
        rt.add_row(*cells, style="red" if cls == "fail" else "dim" if cls == "ceiling" else None)
    return Group(rt, *[Text(n, style="dim") for n in t.notes])

