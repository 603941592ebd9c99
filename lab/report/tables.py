"""The report's tables, built once from a Run and rendered three ways: HTML,
Markdown and (the summary) a rich table in the terminal.  Also results.csv.

Cells are plain strings, formatted here, so every rendering shows the same
digits.  A figure over several repeats is shown as its median, with the
range (min-max) where the repeats disagree.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any, Callable

from . import data
from .data import Run, Spread

DASH = "–"  # en dash, for ranges and "not measured"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    align: str = ""  # one letter per column: l or r (default: first l, rest r)
    row_class: list[str] = field(default_factory=list)  # per row: "", "ok", "fail", "note"
    notes: list[str] = field(default_factory=list)

    def add(self, cells: list[str], cls: str = "") -> None:
        self.rows.append(cells)
        self.row_class.append(cls)

    def aligns(self) -> str:
        return self.align or "l" + "r" * (len(self.columns) - 1)


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


def kib(v: float | None) -> str:
    """KiB per connection: a decimal where it matters (0.7 against 21)."""
    if v is None:
        return DASH
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


# -- the sections -----------------------------------------------------------------

def _first(run: Run, kind: str) -> data.Workload | None:
    found = run.of_kind(kind)
    return found[0] if found else None


def summary(run: Run) -> Table:
    """At a glance: one row per model."""
    closed, opened = run.of_kind("closed"), _first(run, "open")
    main = closed[0] if closed else None
    timelines = run.of_kind("timeline")
    cols = ["model"] + [f"{w.name}: served at once" for w in timelines] + [f"{w.name} replies/s" for w in closed]
    if main:
        cols += [f"{main.name} served", f"{main.name} p99 ms"]
    if opened:
        cols += [f"{opened.name} p99 ms", f"{opened.name} unanswered"]
    cpu = main or opened
    snap = data.snapshot_workload(run)
    if cpu:
        cols += [f"server cores ({cpu.name})", f"swarm cores ({cpu.name})"]
    if snap:
        cols += [f"KiB/conn ({snap.name})", f"threads/procs ({snap.name})"]
    c10k = _first(run, "c10k")
    if c10k:
        cols += [f"{c10k.name} kept", f"{c10k.name} KiB/conn"]
    t = Table(cols)
    for m in run.models:
        row = [m] + [_at_once(run, m, w.name) for w in timelines]
        row += [spread(run.spread(m, w.name, data.replies_per_s), ranges=False) for w in closed]
        if main:
            row += [ratio(run.spread(m, main.name, data.served), run.spread(m, main.name, data.connected)),
                    ms(_median(run.spread(m, main.name, data.latency_ms("p99_us"))))]
        if opened:
            row += [ms(_median(run.spread(m, opened.name, data.latency_ms("p99_us")))),
                    _share(run.spread(m, opened.name, data.unanswered), run.spread(m, opened.name, data.sent))]
        if cpu:
            row += [cores(run, m, cpu.name), num(_median(run.spread(m, cpu.name, data.swarm_cores)), 2)]
        if snap:
            row += [num(_median(run.spread(m, snap.name, data.memory_per_conn_kib)), 0),
                    ratio(run.spread(m, snap.name, data.load_figure("threads")),
                          run.spread(m, snap.name, data.load_figure("processes")))]
        if c10k:
            row += [num(_median(run.spread(m, c10k.name, data.figure("kept_to_the_end")))),
                    kib(_median(run.spread(m, c10k.name, data.per_connection_kib("pss"))))]
        t.add(row, "fail" if any(r.get("error") for r in run.repeats(m)) else "")
    t.notes.append("Medians over the repeats."
                   + (" served: connections that got at least one reply, of those connected." if main else "")
                   + (" KiB/conn: memory under load minus idle, per connection." if snap else "")
                   + (f" {c10k.name}: connections kept of {count(c10k.flags.get('clients'))}, PSS at the "
                      "peak over the idle server per connection (see C10K)." if c10k else "") + _coarse(t))
    return t


def _coarse(t: Table) -> str:
    return COARSE_NOTE if any(cell.startswith("≈") for row in t.rows for cell in row) else ""


COARSE = 0.25  # seconds between CPU readings beyond which a figure is marked approximate
COARSE_NOTE = (" ≈: the lab itself was kept off the CPU near the ends of the measured window (its "
               "readings more than 0.25 s apart), so the figure is approximate.")


def cores(run: Run, model: str, workload: str) -> str:
    """Server cores, marked ≈ where the readings around the window were far apart."""
    s = run.spread(model, workload, data.server_cores)
    coarse = any((rec.get("server_cpu") or {}).get("resolution_s", 0) > COARSE
                 for _, rec in run.records(model, workload))
    return ("≈" if coarse and s else "") + num(_median(s), 2)


def _at_once(run: Run, model: str, workload: str) -> str:
    tl = run.timeline(model, workload)
    return f"{data.peak_served(tl[0])} of {len(tl[0])}" if tl else DASH


def _median(s: Spread | None) -> float | None:
    return None if s is None else s.median


def _share(part: Spread | None, whole: Spread | None) -> str:
    if part is None or whole is None or not whole.median:
        return DASH
    share = part.median / whole.median
    if share == 0:
        return "0%"
    return f"{share:.0%}" if share >= 0.01 else "<1%"


def throughput(run: Run) -> Table:
    t = Table(["model", "workload", "replies/s (median)", "min", "max", "repeats", "served/connected",
               "unanswered", "errors"], align="llrrrrrrr")
    for w in run.of_kind("closed"):
        for m in run.models:
            s = run.spread(m, w.name, data.replies_per_s)
            errors = sum(sum(rec["swarm"]["summary"]["errors"].values()) for _, rec in run.records(m, w.name))
            t.add([m, w.name, num(s.median) if s else DASH, num(s.min) if s else DASH,
                   num(s.max) if s else DASH, str(len(s.values)) if s else "0",
                   ratio(run.spread(m, w.name, data.served), run.spread(m, w.name, data.connected)),
                   num(_median(run.spread(m, w.name, data.unanswered))), num(errors)])
    return t


def latency(run: Run) -> Table:
    t = Table(["model", "workload", "loop", *[f"{p} ms" for p, _ in data.PERCENTILES], "replies",
               "served/connected", "unanswered"], align="lll" + "r" * (len(data.PERCENTILES) + 3))
    for m in run.models:
        for w in run.of_kind("closed") + run.of_kind("open"):
            cells = [ms(_median(run.spread(m, w.name, data.latency_ms(key)))) for _, key in data.PERCENTILES]
            count = run.spread(m, w.name, lambda rep, rec: rec["swarm"]["summary"]["latency"]["count"])
            t.add([m, w.name, w.kind, *cells, num(_median(count)),
                   ratio(run.spread(m, w.name, data.served), run.spread(m, w.name, data.connected)),
                   _share(run.spread(m, w.name, data.unanswered), run.spread(m, w.name, data.sent))])
    t.notes.append("Median of each percentile over the repeats, after the warm-up. Requests never answered "
                   "are in no percentile: served/connected counts the connections that got any reply, "
                   "unanswered is the share of requests still waiting when the run ended (a closed loop "
                   "always ends with its last requests in flight).")
    return t


def resources(run: Run) -> Table:
    t = Table(["model", "workload", "server cores", "µs CPU/reply", "swarm cores", "processes",
               "threads", "memory MiB", "KiB/conn", "USS KiB/conn"], align="llrrrrrrrr")
    for m in run.models:
        idle = [rep.get("idle") or {} for rep in run.repeats(m)]
        idle_p = Spread(tuple(i["processes"] for i in idle if "processes" in i)) if any("processes" in i for i in idle) else None
        idle_t = Spread(tuple(i["threads"] for i in idle if "threads" in i)) if any("threads" in i for i in idle) else None
        for w in run.sampled:
            mem = run.spread(m, w.name, lambda rep, rec: data.memory_kib(data.under_load(rec))[0])
            t.add([m, w.name, cores(run, m, w.name),
                   num(_median(run.spread(m, w.name, data.us_per_reply)), 1),
                   num(_median(run.spread(m, w.name, data.swarm_cores)), 2),
                   _from(idle_p, run.spread(m, w.name, data.load_figure("processes"))),
                   _from(idle_t, run.spread(m, w.name, data.load_figure("threads"))),
                   num(mem.median / 1024, 1) if mem else DASH,
                   num(_median(run.spread(m, w.name, data.memory_per_conn_kib)), 0),
                   num(_median(run.spread(m, w.name, data.uss_per_conn_kib)), 0)])
    t.notes.append(f"Memory: {data.memory_source(run)}, summed over the model's processes under load "
                   "(–: no snapshot fell inside the measured window, the lab being kept off the CPU). "
                   "processes and threads: idle → under load. Cores: CPU time over the measured window "
                   "(1.00 = one core busy all the time)." + _coarse(t))
    return t


def _from(idle: Spread | None, load: Spread | None) -> str:
    if load is None:
        return DASH
    if idle is None:
        return num(load.median)
    return f"{idle.median:.0f} → {load.median:.0f}"


def timeline(run: Run) -> Table:
    t = Table(["model", "workload", "connections", "peak served at once", "replies per connection",
               "unanswered"], align="llrrrr")
    for w in run.of_kind("timeline"):
        for m in run.models:
            tl = run.timeline(m, w.name)
            if tl is None:
                t.add([m, w.name, DASH, DASH, DASH, DASH], "fail")
                continue
            conns, _ = tl
            t.add([m, w.name, str(len(conns)), str(data.peak_served(conns)),
                   " / ".join(str(len(c.answered)) for c in conns),
                   str(sum(len(c.pairs) - len(c.answered) for c in conns))])
    return t


LISTEN = {"ListenOverflows": "overflows", "ListenDrops": "drops", "TCPBacklogDrop": "backlog drops"}


def c10k(run: Run, w: data.Workload) -> tuple[Table, Table]:
    """What 10,000 connections did to each model (its check's figures): who
    was taken and kept and how fast the busy ones stayed; then what it cost."""
    return c10k_connections(run, w), c10k_costs(run, w)


def c10k_connections(run: Run, w: data.Workload) -> Table:
    t = Table(["model", f"accepted of {count(w.flags.get('clients'))}", "kept", "ramp s", "busy answered",
               "busy p50 ms", "busy p99 ms", "busy max ms", "listen queue", "model.yaml"], align="lrrrrrrrll")
    for m in run.models:
        got = lambda f: run.spread(m, w.name, f)  # noqa: E731
        t.add([m, spread(got(data.figure("accepted")), num), spread(got(data.figure("kept_to_the_end")), num),
               spread(got(data.figure("ramp_s")), lambda v: num(v, 1)),
               ratio(got(data.figure("active_answered")), got(data.figure("active"))),
               *[spread(got(data.check_latency_ms(k)), ms) for k in ("p50_us", "p99_us", "max_us")],
               _listen(run, m, w.name), _held(run, m, w.name)], _failed(run, m, w.name))
    t.notes.append(
        "Medians over the repeats (range where they differ). accepted: the server's own accept events; kept: "
        "connections still open when the swarm ended; ramp: from the first connect to the last (–: not all "
        f"connected). busy: the {count(w.flags.get('active'))} clients in pingpong (answered: how many got a "
        f"reply at all), their latency after the {w.warmup_s:g} s warm-up: during the hold. Listen queue: the kernel's overflow counters that grew "
        "by the peak (–: none). model.yaml: the model's declared `c10k:`, judged as `lab check --scenario "
        f"{w.scenario}` judges it.")
    return t


def c10k_costs(run: Run, w: data.Workload) -> Table:
    t = Table(["model", "PSS KiB/conn", "USS KiB/conn", "cgroup KiB/conn", "threads at peak",
               "processes at peak", "server cores"], align="lrrrrrr")
    for m in run.models:
        got = lambda f: run.spread(m, w.name, f)  # noqa: E731
        t.add([m, *[spread(got(data.per_connection_kib(k)), kib) for k in ("pss", "uss", "cgroup")],
               spread(got(data.at_peak("threads")), num), spread(got(data.at_peak("processes")), num),
               spread(got(data.figure("cpu_cores")), lambda v: num(v, 2))], _failed(run, m, w.name))
    t.notes.append(
        "Memory per connection: at the peak (once the server had accepted every client, or when the "
        "scenario's bound ran out) minus the same server idle, per connection the server had open. PSS and USS are "
        "summed over the model's processes; cgroup is everything charged to the container, the kernel's "
        "socket buffers included. Threads and processes: the model's at the peak (`docker top -eLf`). "
        "Server cores: its cgroup CPU from just before the swarm started to its end, the ramp included.")
    settings = next((data.check_figures(rec) for m in run.models for _, rec in run.records(m, w.name)), {})
    if settings:
        ports = settings.get("port_range") or []
        t.notes.append(f"Settings in force: server flags {' '.join(w.server_flags) or DASH}; listen backlog "
                       f"{settings.get('backlog')}, net.core.somaxconn {settings.get('somaxconn')}, open files "
                       f"{count(settings.get('nofile'))}; the swarm's ports {'-'.join(map(str, ports)) or '?'}.")
    return t


def _failed(run: Run, model: str, workload: str) -> str:
    return "fail" if any(rec.get("error") for rec in _tried(run, model, workload)) else ""


def _tried(run: Run, model: str, workload: str) -> list[dict[str, Any]]:
    return [rec for rep in run.repeats(model) if (rec := (rep.get("workloads") or {}).get(workload))]


def _listen(run: Run, model: str, workload: str) -> str:
    """Each overflow counter that grew in some repeat: its growth over the repeats."""
    grown = [data.listen_queue(rep, rec) for rep, rec in run.records(model, workload)]
    names = [k for k in LISTEN if any(k in g for g in grown)]
    return "; ".join(f"{LISTEN[k]} {spread(Spread(tuple(g.get(k, 0) for g in grown)), num)}"
                     for k in names) or DASH


def _held(run: Run, model: str, workload: str) -> str:
    verdicts = [(rec.get("check") or {}).get("ok") for _, rec in run.records(model, workload)]
    want = (run.doc["models"][model].get("expect") or {}).get("c10k", "?")
    if not verdicts:
        return f"{want}: not measured"
    held = sum(1 for v in verdicts if v)
    return f"{want}: " + ("held" if held == len(verdicts) else "did not hold" if not held
                          else f"held {held} of {len(verdicts)}")


def checks(run: Run) -> Table | None:
    if not run.checks:
        return None
    t = Table(["model", "check", "claim", "expected", "observed", "result"], align="llllll")
    for c in sorted(run.checks.get("checks") or [], key=lambda c: (str(c.get("model")), str(c.get("check")))):
        ok = bool(c.get("ok"))
        t.add([str(c.get("model", "")), str(c.get("check", "")), str(c.get("claim", "")),
               _text(c.get("expected")), _text(c.get("observed")), "held" if ok else "FAILED"],
              "ok" if ok else "fail")
    n = len(t.rows)
    failed = sum(1 for c in t.row_class if c == "fail")
    t.notes.append(f"{n - failed} of {n} checks held." if n else "No checks recorded.")
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
        ("run", str((run.doc.get("run") or {}).get("id", "?"))),
        ("repeats", str(params.get("repeat", "?"))),
        ("server trace level", str(params.get("server_trace", "?"))),
    ]
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
        t.notes.append(f"Swarm command: {base} --target=MODEL:12345 ... (each run's exact command is in "
                       "results.json).")
    for w in run.workloads:
        if w.scenario:
            t.notes.append(f"{w.name}: from scenarios/{w.scenario}.yaml, as `lab check` runs it: the swarm by "
                           "exec in an idle swarm container, on a server of its own with "
                           f"{' '.join(w.server_flags) or 'its usual flags'}.")
    return t


def servers(run: Run) -> Table:
    t = Table(["model", "server command", "backlog", "somaxconn", "workers"], align="llrrr")
    for m in run.models:
        start = next((rep.get("server_start") for rep in run.repeats(m) if rep.get("server_start")), None)
        if start is not None or not any(w.scenario for w in run.workloads):
            t.add([m, " ".join(run.doc["models"][m].get("server_command") or []), _opt((start or {}).get("backlog")),
                   _opt((start or {}).get("somaxconn")), _opt((start or {}).get("workers"))])
        for w in run.workloads:  # a scenario's own server
            server = next((rec["server"] for _, rec in run.records(m, w.name) if rec.get("server")), None)
            if server:
                start = server.get("start") or {}
                t.add([f"{m} ({w.name})", " ".join(server.get("command") or []), _opt(start.get("backlog")),
                       _opt(start.get("somaxconn")), _opt(start.get("workers"))])
    return t


def _opt(v: Any) -> str:
    return DASH if v is None else str(v)


# -- results.csv --------------------------------------------------------------------

CSV_COLUMNS = [
    "model", "workload", "kind", "repeat", "error", "pattern", "clients", "connected", "served",
    "requests_sent", "replies_measured", "replies_per_s", "unanswered", "errors",
    "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms", "server_cpu_s", "server_window_s",
    "server_cores", "server_us_per_reply", "swarm_cores", "processes", "threads",
    "memory_source", "pss_kib", "uss_kib", "rss_kib", "idle_pss_kib", "idle_rss_kib",
    "memory_per_conn_kib", "accepted", "kept", "ramp_s", "peak_threads", "peak_processes",
    "pss_per_conn_kib", "uss_per_conn_kib", "cgroup_per_conn_kib", "listen_overflows", "check_held",
]


def csv_bytes(run: Run) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for m in run.models:
        for rep in run.repeats(m):
            for wl in run.workloads:
                rec = (rep.get("workloads") or {}).get(wl.name)
                if rec is None:
                    continue
                w.writerow([_csv(v) for v in csv_row(m, wl, rep, rec)])
    return buf.getvalue().encode()


def csv_row(model: str, wl: data.Workload, rep: dict[str, Any], rec: dict[str, Any]) -> list[Any]:
    sw = rec.get("swarm")
    if not sw:
        return [model, wl.name, wl.kind, rep["repeat"], rec.get("error")] + [None] * (len(CSV_COLUMNS) - 5)
    s, lat = sw["summary"], sw["summary"]["latency"]
    cpu, load, idle = rec.get("server_cpu") or {}, data.under_load(rec) or {}, rep.get("idle") or {}
    pct = [lat[key] / 1000 if lat.get("count") else None for _, key in data.PERCENTILES]
    return [model, wl.name, wl.kind, rep["repeat"], rec.get("error"), s["pattern"], s["clients"],
            s["connections"]["connected"], data.served(rep, rec), s["requests_sent"], s["replies_measured"],
            s["replies_per_s"], s["unanswered"], sum(s["errors"].values()), *pct, cpu.get("cpu_s"),
            cpu.get("window_s"), cpu.get("cores"), cpu.get("us_per_reply"), sw["cpu"].get("per_s"),
            load.get("processes"), load.get("threads"), load.get("memory_source"), load.get("pss_kib"),
            load.get("uss_kib"), load.get("rss_kib"), idle.get("pss_kib"), idle.get("rss_kib"),
            _round(data.memory_per_conn_kib(rep, rec), 2), *check_columns(rep, rec)]


def check_columns(rep: dict[str, Any], rec: dict[str, Any]) -> list[Any]:
    """A scenario workload's own figures (c10k); empty for the others."""
    if not rec.get("check"):
        return [None] * 10
    return [data.figure("accepted")(rep, rec), data.figure("kept_to_the_end")(rep, rec),
            data.figure("ramp_s")(rep, rec), data.at_peak("threads")(rep, rec),
            data.at_peak("processes")(rep, rec),
            *[_round(data.per_connection_kib(k)(rep, rec), 2) for k in ("pss", "uss", "cgroup")],
            (data.check_figures(rec).get("listen_queue") or {}).get("ListenOverflows"), rec["check"].get("ok")]


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)


def _csv(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(round(v, 6))
    return v


# -- the terminal ---------------------------------------------------------------------

def rich_table(t: Table, title: str | None = None) -> Any:
    """The table for the terminal, its notes below it (a rich caption wider
    than the table would squeeze the first column away)."""
    from rich.console import Group
    from rich.table import Table as RichTable
    from rich.text import Text

    rt = RichTable(title=title, show_header=True, header_style="bold", title_justify="left")
    for i, (col, a) in enumerate(zip(t.columns, t.aligns())):
        rt.add_column(col, justify="right" if a == "r" else "left", no_wrap=a == "r" or i == 0)
    for row, cls in zip(t.rows, t.row_class):
        rt.add_row(*row, style="red" if cls == "fail" else None)
    return Group(rt, *[Text(n, style="dim") for n in t.notes])
