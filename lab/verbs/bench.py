"""lab bench [up|swarm|calibrate|tour|all]: the lab's own speed and scale, written to a run directory.

  up         time from `lab up` to a healthy server with images already built,
             repeated (the goal: 3 s or less on a 2-core machine)
  tour       `lab tour --no-pause` from end to end: its wall time, as its
             transcript records it (the goal: 6 minutes on a 2-core machine)
  swarm      the swarm's throughput against the epoll server (100 connections,
             64-byte lines, pipelined) with its own CPU, and 10,000 concurrent
             connections from one swarm container against epoll and asyncio
  calibrate  the instrument against the ruler: the native client
             (iolab-pingpong), CPython's floor (iolab-pyfloor, the least a
             Python client spends per reply) and the swarm, each against the
             native server (iolab-echo) and against the epoll model, container
             to container, in alternating rounds; rates, CPU per reply and the
             swarm/native ratios (the goals: 0.8 against native, 0.95 against
             epoll, at most 10 us of swarm CPU per reply), and the swarm/floor
             ratios that tell its own bookkeeping from the interpreter's

Figures are measurements, not pass/fail: they land in bench.json in the run
directory, with the environment they were taken in.
"""


from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from ..bench.calibrate import calibration_lines, unmeasured
from ..bench.session import Request, bench
from ..console import out, say
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the lab itself: start-up time, swarm throughput and scale",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", nargs="?", choices=("up", "swarm", "calibrate", "tour", "all"), default="all")
    p.add_argument("--repeat", type=_args.number(int, 1, 50), default=5, help="start-ups to time (default 5)")
    p.add_argument("--duration", type=_args.duration, default=None,
                   help="seconds of each throughput run (default 8; calibrate: 5, a 1 s warm-up included)")
    p.add_argument("--pipeline", type=_args.number(int, 1, 4096), default=None,
                   help="requests in flight per connection (default 16; calibrate: 1)")
    p.add_argument("--rounds", type=_args.number(int, 1, 20), default=3,
                   help="calibrate: alternating rounds of the six pairs (default 3)")
    p.add_argument("--connections", type=_args.number(int, 1, 19_000), default=10_000,
                   help="concurrent connections in the scale run (default 10000)")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)



def calibration_table(result: dict[str, Any]) -> Table:
    """The six pairs' medians: rates and CPU per reply on both sides."""
    summary = result["summary"]
    table = Table(title=f"calibration: {result['connections']} connections, {result['size']}-byte lines, "
                        f"{result['pipeline']} in flight, {result['rounds']} rounds of {result['duration_s']:g} s "
                        f"(medians)")
    for col in ("client", "server", "replies/s", "min..max", "client CPU us/reply", "server CPU us/reply"):
        table.add_column(col, justify="left" if col in ("client", "server") else "right")
    for pair in summary["pairs"].values():
        rate = pair["replies_per_s"]
        table.add_row(pair["client"], pair["server"], f"{rate:,.0f}" if rate else "-",
                      f"{pair['min']:,.0f}..{pair['max']:,.0f}" if rate else "-",
                      _fmt(pair["client_cpu_us_per_reply"]), _fmt(pair["server_cpu_us_per_reply"]))
    return table



def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def run(args: argparse.Namespace) -> int:
    results, run_dir = bench(Request(args.what, args.repeat, args.duration, args.pipeline, args.rounds,
                                     args.connections, args.orchestrator, args.swarm_replicas),
                             params=vars(args) | {"func": None})
    for key, value in results.items():
        if key == "calibrate":
            out.print(calibration_table(value))
            for line in calibration_lines(value):
                out.print(line)
        else:
            out.print(f"[bold]{key}[/]: {value}")
    out.print(f"written to {run_dir}/bench.json")
    if missing := unmeasured(results):
        say(f"{len(missing)} calibration run(s) measured no replies: "
            + ", ".join(f"{r['client']} -> {r['server']} (round {r['round'] + 1})" for r in missing))
        return 1
    return 0
