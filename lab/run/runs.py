"""The lab's runs on the engine, whichever orchestrator started them: what
status shows, what down removes, what logs reads.

    describe(res)                   one run as `lab status` lists it
    pick(inventory, wanted)         the run `lab logs` reads
    remove(inventory, wanted, ...)  `lab down`: its logs kept, its run.json marked, then gone
    log_lines(units, tail)          every unit's events, one time axis
    follow(units)                   the same, as they come (until Ctrl-C)

Runs are found by their labels (lab/engine/inventory.py), never by a flag
remembered from an earlier command.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .. import config
from ..console import say
from ..engine import (OWNER, RUNDIR, SERVICE, VERB, Engine, EngineError, Inventory, RunResources, Unit,
                      owner_alive)
from ..errors import LabError, UsageError
from ..plan import compose
from . import rundir

Line = tuple[str, bytes, float]  # service, the line as written, its machine's clock offset


# -- status --------------------------------------------------------------------------------

def describe(res: RunResources) -> dict[str, Any]:
    """One run as `lab status` shows it (and prints with --json)."""
    labels = res.labels
    alive = owner_alive(labels.get(OWNER))
    rows = []
    for u in [u for part in (res, *res.also) for u in part.units]:
        try:
            s = u.state()
        except EngineError:  # removed meanwhile
            continue
        rows.append({"name": u.name, "service": u.labels.get(SERVICE, "?"), "state": s.status,
                     "health": s.health, "exit": s.exit_code, "ip": s.ip, "created": s.created,
                     **({"node": s.node} if s.node else {})})
    return {"run": res.run, "orchestrator": res.orchestrator, "verb": labels.get(VERB, "compose"), "kept": res.kept,
            "owner": "lab up (kept)" if res.kept else
            {True: "running", False: "dead", None: "unknown"}[alive],
            "containers": rows, "networks": [n.name for n in res.networks],
            "volumes": [v.name for v in res.volumes], **({"configs": [c.name for c in res.others]}
                                                        if res.others else {})}


# -- down ----------------------------------------------------------------------------------

def choose(wanted: list[str], everything: dict[str, RunResources], every: bool) -> dict[str, RunResources]:
    """The runs named (by id, prefix or model), all of them, or those `lab up` left."""
    if every:
        return everything
    if not wanted:
        return {r: res for r, res in everything.items() if res.labels.get(VERB) == "up"}
    chosen = {}
    for want in wanted:
        by_id = rundir.match(want, everything)
        hits = by_id or [r for r, res in everything.items() if any(u.labels.get(SERVICE) == want for u in res.units)]
        if not hits or len(by_id) > 1:
            raise UsageError(f"no single run matches '{want}' (a run id, a unique prefix, or a model with a "
                             "run); `lab status` lists them")
        chosen.update({r: everything[r] for r in hits})
    return chosen


def remove(inv: Inventory, wanted: list[str], every: bool, images: bool, said: Callable[[str], None]) -> int:
    """Remove the runs chosen (and, with ``images``, every image the lab
    made), telling ``said`` what went as it goes; how many things went."""
    removed = 0
    grace = _grace()
    for run_id, res in choose(wanted, inv.runs(), every).items():
        for part in (res, *res.also):
            inv.engine(part.orchestrator).stop(part.units, grace)
        _keep_logs(res)
        things = inv.remove(res)
        _mark_removed(res)
        removed += len(things)
        said(f"removed run {run_id} ({res.orchestrator}): {what(things)}")
    if images:
        removed += _remove_images(inv.engine("local"), said)
    return removed


def _remove_images(eng: Engine, said: Callable[[str], None]) -> int:
    removed = 0
    for image in eng.images(every_lab=True):  # one cache, shared by every lab name
        try:
            eng.remove_image(image.id)
            removed += 1
            said(f"removed image {', '.join(image.tags) or image.short_id}")
        except EngineError as exc:
            say(f"kept image {image.short_id}: {exc.explanation}")
    return removed


def what(things: list[str]) -> str:
    """'2 services, 3 containers, 1 network' from ['service a', ...]."""
    counts: dict[str, int] = {}
    for thing in things:
        kind = thing.split(" ", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items()) or "nothing left"


def _keep_logs(res: RunResources) -> None:
    """Save each unit's log into its run directory before it goes."""
    for u in [u for part in (res, *res.also) for u in part.units]:
        folder = Path(u.labels.get(RUNDIR, "")) / "logs"
        if not u.labels.get(RUNDIR) or not folder.is_dir():
            continue
        try:
            rundir.write_atomic(folder / f"{u.labels.get(SERVICE, u.name)}.log", u.logs()[: rundir.LOG_CAP])
        except (OSError, EngineError):
            pass


def _mark_removed(res: RunResources) -> None:
    """A kept run (`lab up`) ends here: say so in its run.json."""
    folder = res.labels.get(RUNDIR)
    meta = Path(folder) / "run.json" if folder else None
    if meta is None or not meta.is_file():
        return
    try:
        doc = json.loads(meta.read_text())
        doc.update(status="removed", ended=time.time())
        rundir.write_atomic(meta, json.dumps(doc, indent=2, sort_keys=True).encode())
    except (OSError, ValueError):
        pass


def _grace() -> Callable[[Unit], float]:
    """Each unit's stop_grace_period from compose.yaml (Compose's default if unknown)."""
    try:
        services = compose.load_topology(config.compose_file()).services
    except LabError:
        services = {}

    def grace(u: Unit) -> float:
        service = services.get(u.labels.get(SERVICE, ""))
        return compose.grace(service) if service is not None else compose.DEFAULT_GRACE
    return grace


# -- logs ----------------------------------------------------------------------------------

def pick(inv: Inventory, wanted: str | None) -> RunResources:
    """The run named (an id or a unique prefix), else the newest `lab up` left up."""
    runs = inv.runs()
    if wanted:
        hits = rundir.match(wanted, runs)
        if len(hits) != 1:
            raise UsageError(f"no single run matches '{wanted}'; `lab status` lists them")
        return runs[hits[0]]
    ups = sorted((r for r in runs.values() if r.labels.get(VERB) == "up"), key=lambda r: r.run)
    if not ups:
        raise UsageError("no lab is up; start one with `lab up MODEL`")
    return ups[-1]


def units_of(res: RunResources, service: str | None) -> list[Unit]:
    """The run's units, or those of one service (a UsageError naming the others if none)."""
    found = [u for u in res.units if not service or u.labels.get(SERVICE) == service]
    if not found:
        names = ", ".join(sorted(u.labels.get(SERVICE, u.name) for u in res.units))
        raise UsageError(f"run {res.run} has no service '{service}' (it has: {names})")
    return found


def log_lines(units: list[Unit], tail: int | None) -> list[Line]:
    """Every line the units wrote (the last ``tail`` of each), sorted by their
    events' times on this machine's clock (a line that is no event, last)."""
    lines: list[tuple[float, str, bytes, float]] = []
    for u in units:
        off = offset(u)
        got = u.logs(tail=tail if tail is not None else "all").splitlines()
        lines += [(_sort_key(line, off), u.labels.get(SERVICE, u.name), line, off) for line in got]
    lines.sort(key=lambda x: x[0])
    return [(service, line, off) for _, service, line, off in lines]


def follow(units: list[Unit]) -> Iterator[Line]:
    """Each line as a unit writes it, from every unit at once (never ends by itself)."""
    feed: queue.Queue[Line] = queue.Queue()

    def pump(u: Unit, lines: Iterable[bytes], off: float) -> None:
        for line in lines:
            feed.put((u.labels.get(SERVICE, u.name), line, off))

    for u in units:
        threading.Thread(target=pump, args=(u, Engine.log_stream(u), offset(u)), daemon=True).start()
    while True:
        yield feed.get()


def offset(unit: Unit) -> float:
    """How far the unit's machine's monotonic clock is ahead of ours (0 when unknown)."""
    try:
        return float(unit.clock().offset_s)
    except EngineError:
        return 0.0


def _sort_key(line: bytes, offset: float = 0.0) -> float:
    try:
        return float(json.loads(line)["t"]) - offset
    except (ValueError, KeyError, TypeError):
        return float("inf")
