"""The workloads compare runs: one row each; a new scenario is one more row.

A swarm workload is its name, the kind of report section it feeds and the
swarm flags that make it; default=False keeps it out of a plain `lab
compare`.  A workload with `scenario=` takes its flags, server flags and
timing from that file in scenarios/ instead (the single source, shared with
`lab check` and `lab run`), and is measured the way the checks measure it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..errors import UsageError
from ..plan import scenarios


@dataclass(frozen=True)
class Workload:
    """One swarm run against each model.

    kind says which parts of the report use it: ``timeline`` (the Gantt
    chart of who was served when), ``closed`` (closed-loop throughput and
    latency), ``open`` (open-loop latency at a fixed rate), ``c10k`` (its own
    section).  ``flags`` are the swarm's flags (swarm.py --help), ``warmup``
    is left out of every figure, ``measure`` is the measured time after it
    (--duration replaces it, except for a scenario's).  ``wrk``: with
    --client wrk, wrk runs its HTTP twin (keep-alive GETs, one in flight per
    connection) on the same server.
    """

    name: str
    title: str
    kind: str
    about: str
    flags: dict[str, Any]
    warmup: float = 0.5
    measure: float = 1.5
    default: bool = True
    wait_extra: float = 30.0  # seconds past the planned end before the swarm counts as stuck
    scenario: str | None = None  # defined by scenarios/<scenario>.yaml (its probe `main`)
    wrk: bool = False


OPEN_RATE = 1000  # requests/s: well below the slowest concurrent model's closed-loop capacity


WORKLOADS: tuple[Workload, ...] = (
    Workload("classic", "classic: 3 clients, a message every 50 ms", "timeline",
             "The article's experiment: three clients, each sending a short message every 50 ms "
             "(open loop). Its request/reply pairs draw the timeline.",
             {"clients": 3, "pattern": "interval", "interval": 50}),
    Workload("pingpong", "pingpong: 50 connections, 1 in flight", "closed",
             "Closed loop: 50 connections, each with one 64-byte request in flight; a reply buys "
             "the next request. Throughput is what the server sustains; latency hides stalls "
             "(nobody sends while waiting).",
             {"clients": 50, "pattern": "pingpong", "pipeline": 1, "size": 64}, measure=1.5, wrk=True),
    Workload("pipelined", "pipelined: 50 connections, 8 in flight", "closed",
             "Closed loop with pipelining: 50 connections, 8 requests in flight on each.",
             {"clients": 50, "pattern": "pingpong", "pipeline": 8, "size": 64}, measure=1.5),
    Workload("rate", f"rate: 50 connections, {OPEN_RATE:,} requests/s", "open",
             f"Open loop: {OPEN_RATE:,} requests/s spread over 50 connections whatever the replies "
             "do; latency counts from each request's intended send time, so stalls show "
             "(coordinated omission corrected).",
             {"clients": 50, "pattern": "rate", "rate": OPEN_RATE, "size": 64}, measure=1.5),
    Workload("c10k", "c10k: 10,000 connections, 100 of them busy", "c10k", "", {}, default=False,
             scenario="c10k"),
    Workload("syscalls", "cost per reply: system calls (traced) and context switches (untraced)", "cost", "", {},
             default=False, scenario="syscalls"),
)


def pick_workloads(text: str | None) -> list[Workload]:
    """The workloads named (NAME[,NAME...]), or every default one when ``text`` is None."""
    if text is None:
        return [w for w in WORKLOADS if w.default]
    by_name = {w.name: w for w in WORKLOADS}
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    if not wanted:  # `--scenario ''` (an unset variable): never the whole default set
        raise UsageError(f"--scenario {text!r} names no workload: name some ({', '.join(by_name)}), or leave "
                         "the flag out for the default ones")
    for name in wanted or [text]:
        if name not in by_name:
            raise UsageError(f"unknown scenario '{name}'; the scenarios are: {', '.join(by_name)}")
    return [from_scenario(by_name[n]) for n in dict.fromkeys(wanted)]


def from_scenario(w: Workload) -> Workload:
    """A scenario's workload with its flags, warm-up and length from the
    scenario file (the swarm gets ProbeSpec.flags(workers) at run time)."""
    if not w.scenario:
        return w
    scenario = scenarios.get(w.scenario)
    probe = scenario.probes["main"]
    warmup = float(probe.number("warmup", 0, 0))
    return replace(w, about=scenario.claim, warmup=warmup,
                   measure=float(probe.number("duration", 0)) - warmup,
                   flags={k: v for k, v in probe.values.items() if k not in scenarios.OPTIONS})
