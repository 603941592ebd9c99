"""lab logs [SERVICE]: the events of a run, server and swarm on one time axis.

Events are printed as `seconds service event connection details`, times
relative to the first event shown (all containers of a machine share
CLOCK_MONOTONIC; a Swarm node's events are moved onto this machine's clock
by its measured offset).
A `start` record shows what it is in short (what the server listens with,
what the swarm was asked to do); --long shows every field it carries.
--raw prints the JSON lines as the containers wrote them.
"""

from __future__ import annotations

import argparse
import json

from ..console import out
from ..run.context import inventory
from ..run.runs import follow, log_lines, pick, units_of
from . import _args

SKIP = {"t", "ev", "model", "pid", "tid", "conn"}
# A start record carries every flag and limit (the swarm's, some 40): these say what it is
START_SHORT = ("target", "protocol", "clients", "pattern", "interval_ms", "message", "duration", "count",
               "port", "backlog", "somaxconn", "nofile", "workers", "trace")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="show a run's events (server and swarm)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("service", nargs="?", help="only this service (a model name, or swarm)")
    p.add_argument("--run", help="run id or prefix (default: the newest run `lab up` left up)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--raw", action="store_true", help="print the JSON lines unchanged")
    p.add_argument("--long", action="store_true", help="every field of a start record (default: the few that "
                                                      "say what it is)")
    p.add_argument("--tail", type=_args.number(int, 0), default=None, help="only the last N events of each container")
    _args.orchestrator_seen(p)
    p.set_defaults(func=run)


def fields(event: dict, long: bool) -> dict:
    """The fields a line shows: all but the common ones; of a start record, in
    short, those that say what it is, and how many more --long would show."""
    shown = {k: v for k, v in event.items() if k not in SKIP}
    if long or event.get("ev") != "start":
        return shown
    short = {k: shown[k] for k in START_SHORT if shown.get(k) is not None}
    more = sum(1 for k, v in shown.items() if k not in short and v not in (None, [], {}))
    return {**short, **({"…": f"{more} more with --long"} if more else {})}


def render(service: str, line: bytes, origin: list[float], raw: bool, offset: float = 0.0,
           long: bool = False) -> str:
    """One line as printed; ``offset``: the unit's clock ahead of ours (a
    Swarm node's), taken off so every service is on one time axis."""
    text = line.decode(errors="replace")
    if raw:
        return text
    try:
        event = json.loads(text)
        t = float(event["t"]) - offset
    except (ValueError, KeyError, TypeError):
        return f"{'':>9}  {service:<10} {text}"
    if event.get("ev") == "results":
        return ""  # the swarm's results document in parts (Swarm mode): --raw shows them
    if not origin:
        origin.append(t)
    details = " ".join(f"{k}={json.dumps(v, ensure_ascii=False) if isinstance(v, str) and ' ' in v else v}"
                       if k != "…" else f"({v})" for k, v in fields(event, long).items())
    return f"{t - origin[0]:9.3f}  {service:<10} {event.get('ev', '?'):<8} {event.get('conn', ''):<22} {details}"


def run(args: argparse.Namespace) -> int:
    units = units_of(pick(inventory(), args.run), args.service)
    lines = follow(units) if args.follow else iter(log_lines(units, args.tail))
    origin: list[float] = []
    try:
        for service, line, off in lines:  # following: until Ctrl-C, as the user asked
            if shown := render(service, line, origin, args.raw, off, args.long):
                out.print(shown, markup=False)
    except KeyboardInterrupt:  # the way to stop following: nothing was started, nothing to remove
        if not args.follow:
            raise
    return 0
