"""The report's figures, drawn with matplotlib (Agg, no pyplot state) and
saved as SVG that is the same, byte for byte, every time the same run is
rendered: a fixed hash salt for the SVG ids, no date in the metadata,
glyphs as paths (no dependence on the reader's fonts).

Each function takes a Run and returns SVG bytes, or None when the run has
nothing for that figure (e.g. no timeline workload was run).
"""

from __future__ import annotations

import io
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from . import data  # noqa: E402
from .data import Run, Spread  # noqa: E402
from .tables import kib  # noqa: E402

STYLE = {
    "svg.hashsalt": "iolab-report",
    "svg.fonttype": "path",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}
WIDTH = 10.0  # inches
SERVED = "#1b7f79"  # a request answered: send -> reply
WAITING = "#f4b6a7"  # a request sent and never answered
KINDS = {"closed": ["#2a6fb0", "#7fb0de", "#1c4770"], "open": ["#e07b24", "#f2b278"],
         "timeline": ["#6b6b6b"]}
OTHER = ["#8c6bb1", "#74a57f", "#c9a227"]
SWARM, THREADS, PROCESSES = "#c8c8c8", "#5b8e7d", "#c9a227"
MARKERS = {"p50": "o", "p90": "s", "p99": "D", "p99.9": "^", "max": "X"}


def _svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.1,
                    metadata={"Date": None, "Creator": "lab report (matplotlib)"})
    return buf.getvalue()


def _figure(height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(WIDTH, height))


def colour(run: Run, workload: str) -> str:
    """Each workload keeps one colour in every figure: closed ones in blues,
    open ones in oranges."""
    w = next(w for w in run.workloads if w.name == workload)
    same = [x.name for x in run.workloads if x.kind == w.kind]
    palette = KINDS.get(w.kind, OTHER)
    return palette[same.index(workload) % len(palette)]


# -- (1) who was served when -------------------------------------------------------

def timeline(run: Run, workload: str) -> bytes | None:
    found = [(m, tl) for m in run.models if (tl := run.timeline(m, workload))]
    if not found:
        return None
    rows = sum(len(conns) for _, (conns, _) in found)
    with matplotlib.rc_context(STYLE):
        height = 0.75 + 0.62 * len(found) + 0.2 * rows
        fig = _figure(height)
        axes = fig.subplots(len(found), 1, sharex=True, squeeze=False,
                            gridspec_kw={"height_ratios": [max(1, len(c)) for _, (c, _) in found]})[:, 0]
        end = max(d for _, (_, d) in found)
        tick = end * 0.0035  # the narrowest bar drawn: a sub-millisecond reply must still show
        for ax, (model, (conns, duration)) in zip(axes, found):
            for y, c in enumerate(conns):
                ax.broken_barh([(s, max(r - s, tick)) for s, r in c.answered], (y - 0.32, 0.64),
                               color=SERVED, linewidth=0)
                waiting = [s for s, r in c.pairs if r is None]
                if waiting:
                    ax.broken_barh([(min(waiting), duration - min(waiting))], (y - 0.32, 0.64),
                                   facecolor=WAITING, edgecolor="#d9694f", linewidth=0.5, hatch="////")
            ax.set_ylim(len(conns) - 0.5, -0.5)
            ax.set_yticks(range(len(conns)), [f"client {c.client}" for c in conns])
            ax.tick_params(axis="y", length=0)
            ax.grid(axis="y", visible=False)
            peak = data.peak_served(conns)
            ax.set_title(f"{model}:  {peak} of {len(conns)} served at once", loc="left", fontsize=9.5,
                         color="#b03a2e" if peak < len(conns) else "#222222")
            ax.set_xlim(0, end)
        axes[-1].set_xlabel("seconds since the swarm started")
        fig.legend(handles=[Patch(color=SERVED, label="request answered (send → reply)"),
                            Patch(facecolor=WAITING, edgecolor="#d9694f", hatch="////",
                                  label="waiting: sent, never answered")],
                   loc="upper right", ncol=2, bbox_to_anchor=(1.0, 1.0))
        fig.subplots_adjust(top=1 - 0.55 / height, bottom=0.45 / height, hspace=0.9)
    return _svg(fig)


# -- (2) throughput ----------------------------------------------------------------

def _grouped_barh(ax: Any, run: Run, workloads: list[str],
                  figure: Callable[[str, str], Spread | None], fmt: Callable[[float], str],
                  labels: bool = True, note: Callable[[str, str], str] | None = None) -> None:
    """Horizontal bars, one group per model (top to bottom in run order),
    one bar per workload: the median, a line from min to max, a dot per repeat.
    A model that served only some connections gets a pale, hatched bar;
    ``note(model, workload)`` is written after the value."""
    n = max(1, len(workloads))
    height = 0.8 / n
    for i, m in enumerate(run.models):
        for j, w in enumerate(workloads):
            s = figure(m, w)
            y = i - 0.4 + height * (j + 0.5)
            if s is None:
                why = "skipped" if run.skipped(m, w) else "not measured"
                ax.text(0, y, f"  {why}", va="center", fontsize=7.5, color="#999999")
                continue
            part = data.partial(run, m, w)
            ax.barh(y, s.median, height=height * 0.9, color=colour(run, w), alpha=0.35 if part else 1.0,
                    hatch="////" if part else None, edgecolor=colour(run, w) if part else None,
                    linewidth=0.6 if part else 0, label=w if i == 0 else None)
            if len(s.values) > 1:
                ax.plot([s.min, s.max], [y, y], color="#333333", linewidth=1.1, solid_capstyle="butt")
                ax.plot(list(s.values), [y] * len(s.values), linestyle="none", marker="o", markersize=2.6,
                        color="#222222")
            if labels:
                extra = note(m, w) if note else ""
                ax.annotate(fmt(s.median) + (f"  {extra}" if extra else ""), (max(s.max, s.median), y),
                            xytext=(4, 0), textcoords="offset points", va="center", fontsize=7.5,
                            color="#b03a2e" if part else "#333333")
    ax.set_yticks(range(len(run.models)), [_label(run, m) for m in run.models])
    ax.set_ylim(len(run.models) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="y", visible=False)


def _label(run: Run, model: str) -> str:
    return f"{model} (ceiling)" if run.kind_of(model) == "reference" else model


def throughput_note(run: Run, model: str, workload: str) -> str:
    """What the throughput figure's label says besides the number: its share
    of the ceiling, who was served, what limited it."""
    parts = []
    share = data.fraction_of_reference(run, model, workload, data.replies_per_s)
    if share is not None:
        parts.append(f"{share:.0%} of {run.reference}")
    got = data.served_of(run, model, workload)
    if got and got.partial:
        parts.append(f"{data.PARTIAL} {got} served")
    lim = data.limit_of(run, model, workload)
    if lim and lim.mark:
        parts.append(f"{data.LIMITED} {lim.by}-bound")
    return ", ".join(parts)


def throughput(run: Run) -> bytes | None:
    closed = [w.name for w in run.of_kind("closed")]
    if not closed:
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(0.9 + 0.42 * len(run.models) * max(1, len(closed)) ** 0.5)
        ax = fig.subplots()
        _grouped_barh(ax, run, closed, lambda m, w: run.spread(m, w, data.replies_per_s),
                      lambda v: f"{v:,.0f}", note=lambda m, w: throughput_note(run, m, w))
        for w in closed:  # the ceiling of each workload, across every model's bars
            ceiling = run.spread(run.reference, w, data.replies_per_s) if run.reference else None
            if ceiling:
                ax.axvline(ceiling.median, color=colour(run, w), linestyle="--", linewidth=0.9, zorder=0)
        ax.set_xlabel("replies per second, after the warm-up (bar: median; line: min–max; dots: repeats; "
                      f"hatched: {data.PARTIAL} served only some connections; {data.LIMITED}: limited by the "
                      "swarm or the host"
                      + ("; dashed: the ceiling" if run.reference else "") + ")")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _k(v)))
        ax.margins(x=0.45)
        ax.set_xlim(left=0)
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(closed))
        ax.set_title("Closed-loop throughput", loc="left")
    return _svg(fig)


def _k(v: float) -> str:
    """Axis numbers: 0, 500, 50k, 1.5M."""
    if abs(v) >= 1e6:
        return f"{v / 1e6:g}M"
    if abs(v) >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


# -- (3) latency: closed and open loop side by side --------------------------------

def latency(run: Run) -> bytes | None:
    series = [w.name for w in run.of_kind("closed") + run.of_kind("open")]
    if not series:
        return None
    n = len(series)
    with matplotlib.rc_context(STYLE):
        fig = _figure(1.1 + 0.34 * len(run.models) * max(2, n) ** 0.8)
        ax = fig.subplots()
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        for i, m in enumerate(run.models):
            for j, w in enumerate(series):
                _percentiles(ax, run, m, w, i - 0.36 + 0.72 * (j + 0.5) / n)
        ax.set_yticks(range(len(run.models)), [_label(run, m) for m in run.models])
        ax.set_ylim(len(run.models) - 0.5, -0.5)
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="y", visible=False)
        for i in range(1, len(run.models)):
            ax.axhline(i - 0.5, color="#eeeeee", linewidth=0.8, zorder=0)
        ax.margins(x=0.08)
        ax.set_xlim(right=ax.get_xlim()[1] * 12)  # room for the "never answered" notes
        ax.set_xlabel("latency, ms (log scale), after the warm-up; median of each percentile over the repeats")
        handles = [Line2D([], [], color=colour(run, w), linewidth=2,
                          label=f"{w} ({next(x.kind for x in run.workloads if x.name == w)} loop)")
                   for w in series]
        handles += [Line2D([], [], color="#555555", marker=mk, linestyle="none", label=p)
                    for p, mk in MARKERS.items()]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0, -0.5 / (0.78 * fig.get_figheight())),
                  ncol=min(len(handles), 5 + len(series)) if len(series) <= 3 else 5)
        ax.set_title("Latency percentiles: closed loop and open loop", loc="left")
    return _svg(fig)


def _percentiles(ax: Any, run: Run, m: str, w: str, y: float) -> None:
    """One model's percentiles of one workload, on a line at ``y``, with what they leave out."""
    points = [(p, run.spread(m, w, data.latency_ms(key))) for p, key in data.PERCENTILES]
    got = [(p, s.median) for p, s in points if s is not None]
    if not got:
        ax.text(1, y, "skipped" if run.skipped(m, w) else "no replies", va="center", fontsize=7.5, color="#999999",
                transform=ax.get_yaxis_transform())
        return
    ax.plot([v for _, v in got], [y] * len(got), color=colour(run, w), linewidth=1.6, zorder=2)
    for p, v in got:
        ax.plot([v], [y], marker=MARKERS[p], color=colour(run, w), markersize=5.2,
                markeredgecolor="white", markeredgewidth=0.6, linestyle="none", zorder=3)
    note = _unserved(run, m, w)
    if note:
        ax.annotate(note, (got[-1][1], y), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=7.5, color="#b03a2e")


def _unserved(run: Run, model: str, workload: str) -> str:
    """What the percentiles leave out: connections never served, and (open
    loop) requests never answered."""
    got = data.served_of(run, model, workload)
    parts = []
    if got and got.partial:
        parts.append(f"{data.PARTIAL} {got} connections served")
    kind = next(w.kind for w in run.workloads if w.name == workload)
    lost, sent = run.spread(model, workload, data.unanswered), run.spread(model, workload, data.sent)
    if kind == "open" and lost and sent and sent.median and lost.median / sent.median >= 0.005:
        parts.append(f"{lost.median / sent.median:.0%} never answered")
    return ", ".join(parts)


# -- (4) resources -----------------------------------------------------------------

def resources(run: Run) -> bytes | None:
    closed = run.of_kind("closed")
    loads = [w.name for w in run.sampled if w.kind != "timeline"] or [w.name for w in run.sampled]
    if not loads:
        return None
    main = closed[0].name if closed else loads[0]
    snap = (data.snapshot_workload(run) or run.workloads[0]).name
    cpus = (run.environment.get("engine") or {}).get("cpus")
    with matplotlib.rc_context(STYLE):
        fig = _figure(1.9 + 0.34 * max(4, len(run.models)) * 2 * max(1.0, len(loads) / 3) ** 0.5)
        (a, b), (c, d) = fig.subplots(2, 2)
        handles: list[Any] = [Patch(color=colour(run, w), label=w) for w in loads]

        handles += _cpu_panel(a, run, main, cpus)

        # b: server CPU per reply, per workload
        _grouped_barh(b, run, loads, lambda m, w: run.spread(m, w, data.us_per_reply), lambda v: f"{v:,.0f}")
        b.set_title("server CPU per reply, µs (log scale)", loc="left")
        _log_axis(b)

        # c: memory per connection
        _grouped_barh(c, run, loads, lambda m, w: run.spread(m, w, data.memory_per_conn_kib),
                      lambda v: f"{v:,.0f}")
        c.set_title(f"memory per connection, KiB ({_mem_kind(run)}, log scale)", loc="left")
        _log_axis(c)
        c.axvline(0, color="#888888", linewidth=0.6)

        handles += _tasks_panel(d, run, snap)
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.06, 1.0), ncol=4)
        height = fig.get_figheight()
        axes_height = (height * (1 - 0.75 / height - 0.11)) / 2  # inches per row of panels
        fig.subplots_adjust(top=1 - 0.75 / height, hspace=0.75 / axes_height, wspace=0.28)
    return _svg(fig)


def _cpu_panel(a: Any, run: Run, main: str, cpus: int | None) -> list[Any]:
    """Server and swarm CPU, stacked, against the machine's cores; the legend's entries."""
    for i, m in enumerate(run.models):
        srv = run.spread(m, main, data.server_cores)
        sw = run.spread(m, main, data.swarm_cores)
        s_v = srv.median if srv else 0.0
        w_v = sw.median if sw else 0.0
        a.barh(i, s_v, color=colour(run, main), height=0.6)
        a.barh(i, w_v, left=s_v, color=SWARM, height=0.6, hatch="///", edgecolor="white", linewidth=0)
    handles: list[Any] = [Patch(facecolor=SWARM, hatch="///", edgecolor="white", label="swarm (stacked on the server)")]
    if cpus:
        a.axvline(cpus, color="#b03a2e", linestyle="--", linewidth=1)
        a.set_xlim(0, cpus * 1.08)
        handles.append(Line2D([], [], color="#b03a2e", linestyle="--", label=f"the engine's {cpus} cores"))
    _models_axis(a, run)
    a.set_title(f"CPU during {main}, cores", loc="left")
    return handles


def _tasks_panel(d: Any, run: Run, snap: str) -> list[Any]:
    """Threads and processes under load; the legend's entries."""
    for i, m in enumerate(run.models):
        th = run.spread(m, snap, data.load_figure("threads"))
        pr = run.spread(m, snap, data.load_figure("processes"))
        for off, s, col in ((-0.17, th, THREADS), (0.17, pr, PROCESSES)):
            if s is None:
                continue
            d.barh(i + off, s.median, height=0.32, color=col)
            d.annotate(f"{s.median:.0f}", (s.median, i + off), xytext=(3, 0), textcoords="offset points",
                       va="center", fontsize=7)
    _models_axis(d, run)
    d.set_title(f"threads and processes during {snap}", loc="left")
    d.margins(x=0.15)
    return [Patch(color=THREADS, label="threads"), Patch(color=PROCESSES, label="processes")]


# -- (5) c10k ------------------------------------------------------------------------

MEMORY = (("pss", "PSS", "#2a6fb0"), ("uss", "USS", "#7fb0de"),
          ("cgroup", "cgroup (the kernel's socket buffers too)", "#c9a227"))
LATENCY = "#1c4770"


def c10k(run: Run, workload: str) -> bytes | None:
    """Left: memory per connection at the peak (PSS, USS, cgroup), log
    scale.  Right: the busy clients' latency during the hold, and how many
    connections each model kept where it did not keep them all."""
    w = next(x for x in run.workloads if x.name == workload)
    models = [m for m in run.models if not run.skipped(m, workload)]
    if not any(run.spread(m, workload, data.figure("accepted")) for m in models):
        return None
    with matplotlib.rc_context(STYLE):
        fig = _figure(1.5 + 0.42 * max(2, len(models)))
        mem, lat = fig.subplots(1, 2)
        _memory_panel(mem, run, models, workload)
        _hold_latency_panel(lat, run, models, workload, w.flags.get("clients"))
        handles = [Patch(color=c, label=label) for _, label, c in MEMORY]
        handles += [Line2D([], [], color=LATENCY, marker=MARKERS[p], linestyle="none", label=p)
                    for p in ("p50", "p99", "max")]
        fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.06, 1.0), ncol=len(handles))
        height = fig.get_figheight()
        fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.6 / height, wspace=0.08)
    return _svg(fig)


def _memory_panel(mem: Any, run: Run, models: list[str], workload: str) -> None:
    """Memory per connection at the peak (PSS, USS, cgroup), log scale."""
    height = 0.8 / len(MEMORY)
    for i, m in enumerate(models):
        for j, (key, _, col) in enumerate(MEMORY):
            s = run.spread(m, workload, data.per_connection_kib(key))
            if s is None:
                continue
            y = i - 0.4 + height * (j + 0.5)
            mem.barh(y, s.median, height=height * 0.9, color=col)
            few = f" {data.PARTIAL}" if data.c10k_partial(run, m, workload) else ""
            mem.annotate(kib(s.median) + few, (s.median, y),
                         xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    _models_axis(mem, run, models)
    _log_axis(mem)
    mem.set_title("memory per connection at the peak", loc="left")
    mem.set_xlabel("KiB over the idle server (log scale)")


def _hold_latency_panel(lat: Any, run: Run, models: list[str], workload: str, asked: Any) -> None:
    """The busy clients' latency during the hold, and how many connections each
    model held where it did not hold them all."""
    lat.set_xscale("log")
    lat.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    lat.xaxis.set_minor_formatter(NullFormatter())
    for i, m in enumerate(models):
        got = [(p, s.median) for p, key in (("p50", "p50_us"), ("p99", "p99_us"), ("max", "max_us"))
               if (s := run.spread(m, workload, data.check_latency_ms(key)))]
        if got:
            lat.plot([v for _, v in got], [i] * len(got), color=LATENCY, linewidth=1.6, zorder=2)
            for p, v in got:
                lat.plot([v], [i], marker=MARKERS[p], color=LATENCY, markersize=5.2,
                         markeredgecolor="white", markeredgewidth=0.6, linestyle="none", zorder=3)
        held = run.spread(m, workload, data.c10k_counter("open_at_peak"))
        if held is not None and isinstance(asked, int) and held.median < asked:
            # under the model's line, at the right: the latency is of the clients it served
            lat.annotate(f"{held.median:,.0f} of {asked:,} open at peak", (1, i + 0.3),
                         xycoords=("axes fraction", "data"), xytext=(-4, 0), textcoords="offset points",
                         ha="right", va="center", fontsize=7.5, color="#b03a2e")
    _models_axis(lat, run, models)
    lat.tick_params(axis="y", labelleft=False)
    lat.set_title("the busy clients' latency during the hold", loc="left")
    lat.set_xlabel("ms (log scale)")
    lat.margins(x=0.3)


def _log_axis(ax: Any) -> None:
    """A log scale that still takes 0 (and the odd negative: memory can
    shrink between two snapshots): linear below 10."""
    ax.set_xscale("symlog", linthresh=10, linscale=0.5)
    ax.set_xlim(left=0, right=max(100.0, ax.get_xlim()[1] * 3))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _k(v)))


def _models_axis(ax: Any, run: Run, models: list[str] | None = None) -> None:
    models = run.models if models is None else models
    ax.set_yticks(range(len(models)), [_label(run, m) for m in models])
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.tick_params(axis="y", length=0)
    ax.grid(axis="y", visible=False)


def _mem_kind(run: Run) -> str:
    src = data.memory_source(run)
    return "PSS" if src.startswith("PSS") else "RSS" if src.startswith("RSS") else src


# -- (6) cost per reply --------------------------------------------------------------

CALL_COLOURS = ["#2a6fb0", "#7fb0de", "#e07b24", "#6b6b6b", "#8c6bb1", "#b39ddb", "#1b7f79", "#c9a227",
                "#d62728", "#74a57f"]


def cost(run: Run, workload: str) -> bytes | None:
    """Left: system calls per reply, stacked by name (traced runs).  Right:
    context switches per reply, voluntary and involuntary (untraced)."""
    from . import cost as costs
    models = [m for m in costs.ordered(run)
              if costs.median(run, m, workload, "calls_per_reply", "recv") is not None]
    if not models:
        return None
    fig = _figure(0.35 * len(models) + 1.4)
    calls, switches = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 1]})
    y = list(range(len(models)))[::-1]
    # EAGAIN returns are recv, send and accept calls already: stacked again they would count twice
    _stacked(calls, y, models, [(c, CALL_COLOURS[i]) for i, c in enumerate(costs.CALLS) if c != "eagain"],
             lambda m, c: costs.median(run, m, workload, "calls_per_reply", c))
    _stacked(switches, y, models, [("voluntary", SERVED), ("involuntary", WAITING)],
             lambda m, c: costs.median(run, m, workload, "switches_per_reply", c))
    calls.set_yticks(y, models)
    calls.set_title("system calls per reply (traced: counts, not speeds)")
    switches.set_title("context switches per reply (untraced)")
    calls.legend(ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / len(models)))
    switches.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / len(models)))
    return _svg(fig)


def _stacked(ax: Any, y: list[int], models: list[str], parts: list[tuple[str, str]],
             value: Callable[[str, str], float | None]) -> None:
    left = [0.0] * len(models)
    for name, col in parts:
        widths = [value(m, name) or 0.0 for m in models]
        ax.barh(y, widths, left=left, color=col, label=name, height=0.7)
        left = [a + b for a, b in zip(left, widths)]


def all_plots(run: Run) -> dict[str, bytes]:
    """{file name under plots/: SVG bytes}, in the order the report shows them."""
    found: dict[str, bytes | None] = {}
    for w in run.of_kind("timeline"):
        found[f"timeline-{w.name}.svg"] = timeline(run, w.name)
    found["throughput.svg"] = throughput(run)
    found["latency.svg"] = latency(run)
    found["resources.svg"] = resources(run)
    for w in run.of_kind("c10k"):
        found[f"{w.name}.svg"] = c10k(run, w.name)
    for w in run.of_kind("cost"):
        found[f"{w.name}.svg"] = cost(run, w.name)
    return {k: v for k, v in found.items() if v is not None}
