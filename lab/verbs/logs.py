"""lab logs [SERVICE]: the events of a run, server and swarm on one time axis.

Events are printed as `seconds service event connection details`, times
relative to the first event shown (all containers share CLOCK_MONOTONIC).
--raw prints the JSON lines as the containers wrote them.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
from typing import Any, Iterable

from ..console import out
from ..context import engine
from ..engine import SERVICE, VERB, Engine
from ..errors import UsageError

SKIP = {"t", "ev", "model", "pid", "tid", "conn"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("logs", help="show a run's events (server and swarm)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("service", nargs="?", help="only this service (a model name, or swarm)")
    p.add_argument("--run", help="run id or prefix (default: the newest run `lab up` left up)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    p.add_argument("--raw", action="store_true", help="print the JSON lines unchanged")
    p.add_argument("--tail", type=int, default=None, help="only the last N events of each container")
    p.set_defaults(func=run)


def pick_run(eng: Engine, wanted: str | None) -> Any:
    runs = eng.runs()
    if wanted:
        hits = [r for r in runs if r == wanted or r.startswith(wanted)]
        if len(hits) != 1:
            raise UsageError(f"no single run matches '{wanted}'; `lab status` lists them")
        return runs[hits[0]]
    ups = sorted((r for r in runs.values() if r.labels.get(VERB) == "up"), key=lambda r: r.run)
    if not ups:
        raise UsageError("no lab is up; start one with `lab up MODEL`")
    return ups[-1]


def render(service: str, line: bytes, origin: list[float], raw: bool) -> str:
    text = line.decode(errors="replace")
    if raw:
        return text
    try:
        event = json.loads(text)
        t = float(event["t"])
    except (ValueError, KeyError, TypeError):
        return f"{'':>9}  {service:<10} {text}"
    if not origin:
        origin.append(t)
    details = " ".join(f"{k}={json.dumps(v) if isinstance(v, str) and ' ' in v else v}"
                       for k, v in event.items() if k not in SKIP)
    return f"{t - origin[0]:9.3f}  {service:<10} {event.get('ev', '?'):<8} {event.get('conn', ''):<22} {details}"


def _sort_key(line: bytes) -> float:
    try:
        return float(json.loads(line)["t"])
    except (ValueError, KeyError, TypeError):
        return float("inf")


def run(args: argparse.Namespace) -> int:
    eng = engine()
    res = pick_run(eng, args.run)
    containers = [c for c in res.containers if not args.service or c.labels.get(SERVICE) == args.service]
    if not containers:
        names = ", ".join(sorted(c.labels.get(SERVICE, c.name) for c in res.containers))
        raise UsageError(f"run {res.run} has no service '{args.service}' (it has: {names})")
    origin: list[float] = []
    if not args.follow:
        lines: list[tuple[float, str, bytes]] = []
        for c in containers:
            got = c.logs(tail=args.tail if args.tail is not None else "all").splitlines()
            lines += [(_sort_key(line), c.labels.get(SERVICE, c.name), line) for line in got]
        lines.sort(key=lambda x: x[0])
        for _, service, line in lines:
            out.print(render(service, line, origin, args.raw), markup=False)
        return 0
    feed: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def pump(c: Any, lines: Iterable[bytes]) -> None:
        for line in lines:
            feed.put((c.labels.get(SERVICE, c.name), line))

    for c in containers:
        threading.Thread(target=pump, args=(c, Engine.log_stream(c)), daemon=True).start()
    while True:  # until Ctrl-C: following is what the user asked for
        service, line = feed.get()
        out.print(render(service, line, origin, args.raw), markup=False)
