"""lab logs [SERVICE]: the events of a run, server and swarm on one time axis.

Events are printed as `seconds service event connection details`, times
relative to the first event shown (all containers of a machine share
CLOCK_MONOTONIC; a Swarm node's events are moved onto this machine's clock
by its measured offset).
--raw prints the JSON lines as the containers wrote them.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
from typing import Any, Iterable

from ..console import out
from ..engine import SERVICE, VERB, Engine, EngineError, Inventory
from ..errors import UsageError
from ..run import rundir as run_ids
from ..run.context import inventory
from . import _args

SKIP = {"t", "ev", "model", "pid", "tid", "conn"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="show a run's events (server and swarm)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("service", nargs="?", help="only this service (a model name, or swarm)")
    p.add_argument("--run", help="run id or prefix (default: the newest run `lab up` left up)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--raw", action="store_true", help="print the JSON lines unchanged")
    p.add_argument("--tail", type=_args.number(int, 0), default=None, help="only the last N events of each container")
    _args.orchestrator_seen(p)
    p.set_defaults(func=run)


def pick_run(inv: Inventory, wanted: str | None) -> Any:
    runs = inv.runs()
    if wanted:
        hits = run_ids.match(wanted, runs)
        if len(hits) != 1:
            raise UsageError(f"no single run matches '{wanted}'; `lab status` lists them")
        return runs[hits[0]]
    ups = sorted((r for r in runs.values() if r.labels.get(VERB) == "up"), key=lambda r: r.run)
    if not ups:
        raise UsageError("no lab is up; start one with `lab up MODEL`")
    return ups[-1]


def render(service: str, line: bytes, origin: list[float], raw: bool, offset: float = 0.0) -> str:
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
    details = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
                       for k, v in event.items() if k not in SKIP)
    return f"{t - origin[0]:9.3f}  {service:<10} {event.get('ev', '?'):<8} {event.get('conn', ''):<22} {details}"


def _sort_key(line: bytes, offset: float = 0.0) -> float:
    try:
        return float(json.loads(line)["t"]) - offset
    except (ValueError, KeyError, TypeError):
        return float("inf")


def run(args: argparse.Namespace) -> int:
    res = pick_run(inventory(), args.run)
    containers = [u for u in res.units if not args.service or u.labels.get(SERVICE) == args.service]
    if not containers:
        names = ", ".join(sorted(u.labels.get(SERVICE, u.name) for u in res.units))
        raise UsageError(f"run {res.run} has no service '{args.service}' (it has: {names})")
    origin: list[float] = []
    if not args.follow:
        lines: list[tuple[float, str, bytes, float]] = []
        for c in containers:
            off = _offset(c)
            got = c.logs(tail=args.tail if args.tail is not None else "all").splitlines()
            lines += [(_sort_key(line, off), c.labels.get(SERVICE, c.name), line, off) for line in got]
        lines.sort(key=lambda x: x[0])
        for _, service, line, off in lines:
            if shown := render(service, line, origin, args.raw, off):
                out.print(shown, markup=False)
        return 0
    feed: queue.Queue[tuple[str, bytes, float]] = queue.Queue()

    def pump(c: Any, lines: Iterable[bytes], off: float) -> None:
        for line in lines:
            feed.put((c.labels.get(SERVICE, c.name), line, off))

    for c in containers:
        threading.Thread(target=pump, args=(c, Engine.log_stream(c), _offset(c)), daemon=True).start()
    try:
        while True:  # until Ctrl-C: following is what the user asked for
            service, line, off = feed.get()
            if shown := render(service, line, origin, args.raw, off):
                out.print(shown, markup=False)
    except KeyboardInterrupt:  # the way to stop following: nothing was started, nothing to remove
        return 0


def _offset(unit: Any) -> float:
    """How far the unit's machine's monotonic clock is ahead of ours (0 when unknown)."""
    try:
        return float(unit.clock().offset_s)
    except EngineError:
        return 0.0
