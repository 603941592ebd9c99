"""The C10K section's tables: who got how far (each connection counter
once, defined beside it), how fast the busy clients stayed, and what a
connection cost; each narrow enough for a page (short labels, defined
under the table).  Every figure is its check's (lab/checks/judges.py `c10k`)
or compare's own counters (SCHEMA.md, `counters`)."""

from __future__ import annotations

from ioschema import COMPARE_SCHEMAS

from . import data
from .data import PARTIAL, Run, Spread
from .tables import DASH, Table, below_idle, count, kib, marked, model_cell, ms, num, ratio, spread

LISTEN = {"ListenOverflows": "ovf", "ListenDrops": "drop", "TCPBacklogDrop": "bl drop"}  # the kernel's counters
# Each counter once, short enough for a page: each label is defined under the table.
COUNTERS = (("connected", "conn"), ("accepted", "acc"), ("accepted_after_end", "acc late"),
            ("open_at_peak", "open@peak"), ("kept", "kept"), ("waited_unaccepted", "never acc"))


def c10k(run: Run, w: data.Workload) -> tuple[Table, Table, Table]:
    """What 10,000 connections did to each model (its check's figures): who
    was taken and kept; how fast the busy ones stayed; what it cost.  Three
    tables, so each fits a page."""
    return c10k_connections(run, w), c10k_busy(run, w), c10k_costs(run, w)


def c10k_connections(run: Run, w: data.Workload) -> Table:
    asked = count(w.flags.get("clients"))
    t = Table(["model", *[label for _, label in COUNTERS], "ramp s", "listen queue"], align="l" + "r" * 7 + "l")
    disagree = []
    for m in run.models:
        if _skipped(run, m, w, t):
            continue
        got = lambda f: run.spread(m, w.name, f)  # noqa: E731
        counters = {key: got(data.c10k_counter(key)) for key, _ in COUNTERS}
        disagree += [f"{m}: {why}" for why in _inconsistent(counters)]
        t.add([m, *[spread(counters[key], num) for key, _ in COUNTERS],
               spread(got(data.figure("ramp_s")), lambda v: num(v, 1)), _listen(run, m, w.name)],
              _failed(run, m, w.name))
    t.notes.append(
        f"Medians over the repeats (range where they differ), each of {asked} connections asked. In the "
        "order a connection goes: conn: the swarm's handshakes that completed (the kernel completes a "
        "handshake before the server accepts it, while the listen backlog has room); acc: the server's "
        "accept events while the clients were there (up to the swarm's end); acc late: accepts "
        "logged once the clients had left (a server draining its backlog of connections already closed; it can "
        "exceed conn, since the kernel also completes handshakes of attempts the swarm had given up on "
        "and retried); "
        "open@peak: accepted and not yet closed when the server was read at the peak (memory per "
        "connection is divided by this); kept: connected and held by the swarm to its end without an error "
        "(for a connection never accepted, that time was spent in the backlog); never acc: conn "
        "minus acc. So open@peak ≤ acc ≤ conn and kept ≤ conn. ramp: from the first "
        "connect to the last (–: not all connected). listen queue: the kernel's counters that grew by the "
        "peak, medians (ovf: ListenOverflows, drop: ListenDrops, bl drop: TCPBacklogDrop; –: none).")
    if run.version == COMPARE_SCHEMAS[0]:
        t.notes.append(f"This run's results ({COMPARE_SCHEMAS[0]}) have the check's figures only: its accepted counted "
                       "the server's log to the end, after the clients had left too, so the split into acc "
                       "and acc late, and never acc, are not known (–).")
    if disagree:
        t.notes.append("The counters disagree with their definitions: " + "; ".join(disagree) + ".")
    return t


def c10k_busy(run: Run, w: data.Workload) -> Table:
    """The busy clients (pingpong through the hold): answered at all, how fast; and the verdict."""
    t = Table(["model", "answered", "p50 ms", "p99 ms", "max ms", "model.yaml"], align="lrrrrl")
    for m in run.models:
        if _skipped(run, m, w, t):
            continue
        got = lambda f: run.spread(m, w.name, f)  # noqa: E731
        busy = PARTIAL if data.busy_partial(run, m, w.name) else ""
        t.add([m, marked(ratio(got(data.figure("active_answered")), got(data.figure("active"))), busy),
               *[marked(spread(got(data.check_latency_ms(k)), ms), busy) for k in ("p50_us", "p99_us", "max_us")],
               _held(run, m, w.name)], _failed(run, m, w.name))
    t.notes.append(
        f"The {count(w.flags.get('active'))} busy clients, in pingpong through the hold: answered: how many got "
        f"a reply at all; their latency after the {w.warmup_s:g} s warm-up, medians over the repeats (range "
        f"where they differ; {PARTIAL}: some busy clients were never answered, so the latency is of the few "
        "that were). model.yaml: the model's declared `c10k:`, judged as "
        f"`lab check --scenario {w.scenario}` judges it.")
    return t


def _skipped(run: Run, model: str, w: data.Workload, t: Table) -> bool:
    """A target that did not run the workload: a short row, and why in a note."""
    why = run.skipped(model, w.name)
    if why:
        t.add([model_cell(run, model), "skipped"] + [""] * (len(t.columns) - 2), "ceiling")
        t.notes.append(f"{model}: skipped: {why}.")
    return bool(why)


def _inconsistent(c: dict[str, Spread | None]) -> list[str]:
    """Where the medians break open at peak ≤ accepted ≤ connected, kept ≤ connected."""
    m = {k: s.median for k, s in c.items() if s is not None}
    out = []
    for small, big in (("open_at_peak", "accepted"), ("accepted", "connected"), ("kept", "connected")):
        if small in m and big in m and m[small] > m[big]:
            out.append(f"{small.replace('_', ' ')} {m[small]:,.0f} > {big} {m[big]:,.0f}")
    return out


def c10k_costs(run: Run, w: data.Workload) -> Table:
    t = Table(["model", "PSS KiB/conn", "USS KiB/conn", "cgroup KiB/conn", "threads at peak",
               "processes at peak", "server cores"], align="lrrrrrr")
    for m in run.models:
        if run.skipped(m, w.name):
            continue
        got = lambda f: run.spread(m, w.name, f)  # noqa: E731
        few = PARTIAL if data.c10k_partial(run, m, w.name) else ""
        t.add([m, *[marked(spread(got(data.per_connection_kib(k)), kib), few) for k in ("pss", "uss", "cgroup")],
               spread(got(data.at_peak("threads")), num), spread(got(data.at_peak("processes")), num),
               spread(got(data.figure("cpu_cores")), lambda v: num(v, 2))], _failed(run, m, w.name))
    t.notes.append(
        "Memory per connection: at the peak (once the server had accepted every client, or when the "
        "scenario's bound ran out) minus the same server idle, per connection open at the peak. PSS and USS are "
        "summed over the model's processes; cgroup is everything charged to the container, the kernel's "
        f"socket buffers included ({PARTIAL}: the server held only some of the connections at the peak, so "
        "the growth is divided among those few, and is no measure of a connection among ten thousand). "
        "Threads and processes: the model's at the peak (`docker top -eLf`). "
        "Server cores: its cgroup CPU from just before the swarm started to its end, the ramp included."
        + below_idle(t))
    settings = next((data.check_figures(rec) for m in run.models for _, rec in run.records(m, w.name)), {})
    if settings:
        ports = settings.get("port_range") or []
        t.notes.append(f"Settings in force: server flags {' '.join(w.server_flags) or DASH}; listen backlog "
                       f"{settings.get('backlog')}, net.core.somaxconn {settings.get('somaxconn')}, open files "
                       f"{count(settings.get('nofile'))}; the swarm's ports {'-'.join(map(str, ports)) or '?'}.")
    return t


def _failed(run: Run, model: str, workload: str) -> str:
    tried = [rec for rep in run.repeats(model) if (rec := (rep.get("workloads") or {}).get(workload))]
    return "fail" if any(rec.get("error") for rec in tried) else ""


def _listen(run: Run, model: str, workload: str) -> str:
    """Each overflow counter that grew in some repeat: its median growth over the repeats."""
    grown = [data.listen_queue(rep, rec) for rep, rec in run.records(model, workload)]
    names = [k for k in LISTEN if any(k in g for g in grown)]
    return ", ".join(f"{LISTEN[k]} {spread(Spread(tuple(g.get(k, 0) for g in grown)), num, ranges=False)}"
                     for k in names) or DASH


def _held(run: Run, model: str, workload: str) -> str:
    verdicts = [(rec.get("check") or {}).get("ok") for _, rec in run.records(model, workload)]
    want = (run.doc["models"][model].get("expect") or {}).get("c10k", "?")
    if not verdicts:
        return f"{want}: not measured"
    held = sum(1 for v in verdicts if v is True)
    unknown = sum(1 for v in verdicts if v is None)
    if unknown and not held and unknown == len(verdicts):
        return f"{want}: not judged"
    return f"{want}: " + ("held" if held == len(verdicts) else "did not hold" if not held
                          else f"held {held} of {len(verdicts)}")

