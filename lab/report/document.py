"""What the report says, independent of how it is rendered: a list of
sections, each with paragraphs, figures and tables.  html.py and md.py turn
it into report.html and report.md.

Paragraph text may use `code` and **bold**, as in Markdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import c10k as c10k_tables, cost as cost_tables, data, tables
from .data import Run
from .tables import Table


@dataclass
class Figure:
    file: str  # under plots/
    alt: str


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[str, Table]] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]


def _names(models: list[str]) -> str:
    return ", ".join(f"**{m}**" for m in models) if models else "none"


def build(run: Run, plot_files: list[str], baseline: Run | None = None) -> Document:
    """The report's sections, in order; a section a run has nothing for is left out."""
    number = Numbers()
    sections = [_glance(run)]
    sections += [_timeline(run, w, plot_files, number) for w in run.of_kind("timeline")]
    sections += [s for s in (_throughput(run, plot_files, number), _latency(run, plot_files, number)) if s]
    no_wrk = f" {run.reference} speaks only the line protocol, so it has no wrk figures." if run.reference else ""
    sections += _table_sections(number, [("clients", "Two clients: the swarm and wrk", tables.clients(run),
                                          ABOUT_CLIENTS + no_wrk)])
    if run.sampled:
        sections.append(resources(run, plot_files, number.next()))
    for w in run.of_kind("c10k"):
        sections.append(c10k(run, w, plot_files, number.next()))
    for w in run.of_kind("cost"):
        sections.append(cost(run, w, plot_files, number.next()))
    sections += _table_sections(number, [("checks", "Behaviour checks", tables.checks(run), ABOUT_CHECKS),
                                         ("classification", "Classification", tables.classification(run),
                                          ABOUT_CLASSES)])
    if baseline is not None:
        from . import baseline as against
        sections += _table_sections(number, [("baseline", "Against the baseline", against.table(run, baseline),
                                              against.about(run, baseline))])
    s = Section("environment", f"{number.next()}. Environment")
    s.tables.append(("", tables.environment(run)))
    s.tables.append(("Workloads", tables.workloads(run)))
    s.tables.append(("Servers", tables.servers(run)))
    sections.append(s)
    return Document("I/O models compared", _subtitle(run), sections)


def _subtitle(run: Run) -> str:
    doc = run.doc
    params = doc.get("params") or {}
    started = (doc.get("run") or {}).get("started_wall")
    when = datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if started else "?"
    return (f"Run `{(doc.get('run') or {}).get('id', '?')}`, {when}: {len(run.models)} "
            f"model{'' if len(run.models) == 1 else 's'}, "
            f"{params.get('repeat', '?')} repeat(s) each, workloads "
            f"{', '.join(w.name for w in run.workloads)}.")


def _glance(run: Run) -> Section:
    glance = Section("summary", "At a glance")
    glance.paragraphs.append(
        "Each model ran in its own fresh server container for every repeat, alone on the engine, with "
        "the swarm (the lab's load generator) in a container beside it. Warm-up is left out of every "
        "figure. The sections below show who was served when, how much each model sustains, how long "
        "clients waited, and what it cost.")
    if run.reference:
        glance.paragraphs.append(
            f"**{run.reference}** is the ceiling row: a small C epoll echo server, the lab's ruler rather than "
            "a model. It shows what this host and this load generator can do at all; every model's throughput "
            "is also given as a share of it, measured in the same run."
            + (f" Skipped for it: {_skips(run, run.reference)}." if _skips(run, run.reference) else ""))
    glance.paragraphs.append(
        f"Nothing here flatters: a figure of a model that served only some of its connections is marked "
        f"{data.PARTIAL} wherever it appears, and is never called the best; a throughput figure that the load "
        f"generator or the host limited, rather than the server, is marked {data.LIMITED} (the Throughput "
        "section says which, and why).")
    glance.tables.append(("", tables.summary(run)))
    if run.errors:
        glance.paragraphs.append("**Problems:** " + "; ".join(run.errors))
    return glance


def _timeline(run: Run, w: data.Workload, plot_files: list[str], number: "Numbers") -> Section:
    s = Section(f"timeline-{w.name}", f"{number.group('timeline')}. Timeline: {w.title}")
    s.paragraphs.append(w.about + " Each row is one connection; a bar is a request from the "
                        "moment it was sent to its reply, hatched where requests were sent and "
                        "never answered (the first repeat of each model).")
    partial, full = [], []
    for m in run.models:
        tl = run.timeline(m, w.name)
        if tl:
            (full if data.peak_served(tl[0]) >= len(tl[0]) else partial).append(m)
    if partial:
        s.paragraphs.append(f"Served fewer clients at once than were connected: {_names(partial)}. "
                            f"Served every client at once: {_names(full)}.")
    if f"timeline-{w.name}.svg" in plot_files:
        s.figures.append(Figure(f"timeline-{w.name}.svg", f"Timeline of the {w.name} workload per model"))
    s.tables.append(("", tables.timeline(run)))
    return s


def _throughput(run: Run, plot_files: list[str], number: "Numbers") -> Section | None:
    closed = run.of_kind("closed")
    if not closed:
        return None
    s = Section("throughput", f"{number.next()}. Throughput")
    s.paragraphs.append(" ".join(w.about for w in closed))
    s.paragraphs.append("A model that serves one connection at a time still shows a rate here: the "
                        f"rate of that one connection, while the others wait (see served/connected); it "
                        f"is marked {data.PARTIAL}.")
    cpus = (run.environment.get("engine") or {}).get("cpus")
    s.paragraphs.append(
        "The swarm is the lab's load generator (in the app image its ping-pong runs in C, at about the "
        f"native client's cost per reply), and it shares the engine's {cpus or '?'} cores with the server. So for every "
        "figure the lab says "
        "what set the pace (limited by): the swarm, when its processes used nearly all the cores they "
        "can use (one per worker); the host, when the server and the swarm together, or everything "
        "on the machine, used nearly all the engine's cores; otherwise the server. Only the last ranks "
        f"the model; the others are marked {data.LIMITED}.")
    if "throughput.svg" in plot_files:
        s.figures.append(Figure("throughput.svg", "Replies per second per model"))
    s.tables.append(("", tables.throughput(run)))
    return s


def _latency(run: Run, plot_files: list[str], number: "Numbers") -> Section | None:
    closed, opened = run.of_kind("closed"), run.of_kind("open")
    if not (closed or opened):
        return None
    s = Section("latency", f"{number.next()}. Latency, closed loop and open loop")
    s.paragraphs.append(
        "In a closed loop a client sends its next request only after the last reply, so while the "
        "server stalls nobody sends and the stall is measured once: the percentiles look better than "
        "what a steady stream of users would see. The open loop sends on a fixed schedule whatever "
        "the server does and measures each request from its intended send time, so a stall shows "
        "in every request it delayed. Requests that were never answered are in no percentile: "
        "their share is marked beside the model.")
    s.paragraphs.extend(w.about for w in opened)
    if "latency.svg" in plot_files:
        s.figures.append(Figure("latency.svg", "Latency percentiles per model, closed and open loop"))
    s.tables.append(("", tables.latency(run)))
    return s


ABOUT_CLIENTS = ("The same workload driven by a second, independent load generator: wrk (C, HTTP/1.1), run from a "
                 "tools container on the run's network, against the same server. Where the two agree, the figure "
                 "is the server's; where wrk gets much more, the swarm was the limit.")
ABOUT_CHECKS = ("From `checks.json` (written by `lab compare --checks` or `lab check` into this "
                "run directory): each model's declared behaviour (model.yaml), checked against what "
                "its live containers did. Not judged: the lab could not measure what the check needs "
                "(the host too busy, evidence missing): neither held nor failed.")
ABOUT_CLASSES = ("`lab classify`'s probes, on a fresh server of each target: the concurrency model "
                 "inferred from what the server did, beside the one its model.yaml declares. The "
                 "evidence behind each is in results.json (models.<target>.classification).")


def _table_sections(number: "Numbers", wanted: list[tuple[str, str, Table | None, str]]) -> list[Section]:
    """A numbered section of one paragraph and one table for each (id, title,
    table, about) where the run has the table."""
    found = []
    for sid, title, table, about in wanted:
        if table is not None:
            s = Section(sid, f"{number.next()}. {title}")
            s.paragraphs.append(about)
            s.tables.append(("", table))
            found.append(s)
    return found


def _skips(run: Run, model: str) -> str:
    return "; ".join(f"{w}: {why}" for w, why in (run.doc["models"][model].get("skipped") or {}).items())


class Numbers:
    """Section numbers in the order the sections come; several sections of
    one group (one timeline per timeline workload) share a number."""

    def __init__(self) -> None:
        self.n = 0
        self.groups: dict[str, int] = {}

    def next(self) -> int:
        self.n += 1
        return self.n

    def group(self, name: str) -> int:
        if name not in self.groups:
            self.groups[name] = self.next()
        return self.groups[name]


def resources(run: Run, plot_files: list[str], number: int) -> Section:
    s = Section("resources", f"{number}. Resources")
    cpus = (run.environment.get("engine") or {}).get("cpus")
    s.paragraphs.append(
        "Server CPU is the server container's cgroup CPU time over the swarm's measured window; swarm "
        "CPU is the load generator's own (its container's cgroup over the same window where the engine is "
        "local, else its workers' user and system time over its run). "
        + (f"Both share the engine's {cpus} cores: where their sum nears {cpus}, the machine, not the "
           "model, was the limit. " if cpus else "")
        + f"Memory is {data.memory_source(run)}, summed over the model's processes (the container's "
        "init left out), read half-way through the measured window with every client connected; per "
        "connection it is the growth over the idle server, divided by the connections the swarm had "
        "open. RSS counts a page shared by several processes once per process, so PSS (shared pages "
        "split between their sharers) is the fair figure for a forking server.")
    if "resources.svg" in plot_files:
        s.figures.append(Figure("resources.svg", "CPU, CPU per reply, memory per connection, threads and processes"))
    s.tables.append(("", tables.resources(run)))
    return s


def _opened(w: data.Workload, title: str, plot_files: list[str], caption: str, how: str) -> Section:
    """A per-model workload's section, begun: what it is about, how it ran, and its figure if drawn."""
    s = Section(w.name, title)
    s.paragraphs += [w.about, how]
    if f"{w.name}.svg" in plot_files:
        s.figures.append(Figure(f"{w.name}.svg", caption))
    return s


def _fresh(w: data.Workload, load: str, how: str) -> str:
    """The opening every per-model workload section shares: what each model ran against."""
    return (f"Each model got a fresh server of its own (`{' '.join(w.server_flags)}`) and {load} of "
            f"`scenarios/{w.scenario}.yaml`, run and {how}")


def c10k(run: Run, w: data.Workload, plot_files: list[str], number: int) -> Section:
    clients, active = tables.count(w.flags.get("clients")), tables.count(w.flags.get("active"))
    how = _fresh(w, "the swarm", f"read as `lab check --scenario {w.scenario}` runs them") + (
        f": {clients} connections opened at {tables.count(w.flags.get('ramp'))} a second, the run lasting "
        f"{w.warmup_s + w.measure_s:g} s in all, the first {active} clients in pingpong throughout; their "
        f"latency counts after the first {w.warmup_s:g} s (the ramp). Each connection counter is defined "
        "under the first table, in the order a connection goes through them. Memory is read once, at the peak "
        "(when the server had accepted every client, or when the scenario's bound ran out), against the "
        "same server idle. The cgroup figure includes what the kernel holds for each socket, which PSS "
        "and USS (the processes' own pages) do not.")
    s = _opened(w, f"{number}. C10K: {clients} connections, {active} of them busy", plot_files,
                "C10K: memory per connection and the busy clients' latency", how)
    connections, busy, costs = c10k_tables.c10k(run, w)
    s.tables += [("Connections", connections), ("The busy clients", busy), ("What a connection costs", costs)]
    return s


def cost(run: Run, w: data.Workload, plot_files: list[str], number: int) -> Section:
    how = _fresh(w, "the probes", f"judged as `lab run {w.scenario}` runs them") + (
        ". System calls are counted by a tracing sidecar (strace in the tools image, holding only "
        "SYS_PTRACE, in the server's PID namespace, on no network); tracing slows the server, so nothing "
        "here is a throughput figure, and "
        "the context switches come from a run without it. io_uring is drawn beside epoll "
        "(the lab's docs/cost.md says how each figure is read).")
    s = _opened(w, f"{number}. Cost per reply: system calls and context switches", plot_files,
                "System calls per reply by name, and context switches per reply", how)
    s.tables.append(("", cost_tables.table(run, w)))
    return s
