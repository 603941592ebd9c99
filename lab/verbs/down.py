"""lab down: remove what the lab started (its logs are kept in the run directory).

RUN is a run id, a unique prefix of one, or a model's name (every run that
has that service).  With no argument, every run `lab up` left up.  --all:
every resource carrying this lab's labels (any run, any verb, also ones made
by plain Compose or `docker stack deploy`).  --images: every image the lab
made too (base, app, tools, servers, native, real servers; those of every
lab name: they are one cache).

Runs are found by their labels whichever orchestrator started them: local
containers, and Swarm-mode services when the engine is a Swarm manager.  A
Swarm-mode run is gone when its task containers are: lab down waits for them
(bounded) and says what is still there if they stay.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

from .. import config
from ..console import out, say
from ..engine import RUNDIR, SERVICE, VERB, EngineError, RunResources, Unit
from ..errors import LabError, UsageError
from ..plan import compose
from ..run import rundir as runs
from ..run.context import inventory
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("down", help="remove the lab's containers, networks and volumes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run ids (or unique prefixes), or model names (every run of that model), to remove")
    p.add_argument("--all", action="store_true", help="every resource with this lab's labels")
    p.add_argument("--images", action="store_true", help="also remove every image the lab made (any lab name)")
    _args.orchestrator_seen(p)
    p.set_defaults(func=run)


def _keep_logs(res: RunResources) -> None:
    """Save each unit's log into its run directory before it goes."""
    for u in [u for part in (res, *res.also) for u in part.units]:
        folder = Path(u.labels.get(RUNDIR, "")) / "logs"
        if not u.labels.get(RUNDIR) or not folder.is_dir():
            continue
        try:
            runs.write_atomic(folder / f"{u.labels.get(SERVICE, u.name)}.log", u.logs()[: runs.LOG_CAP])
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
        runs.write_atomic(meta, json.dumps(doc, indent=2, sort_keys=True).encode())
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


def choose(wanted: list[str], everything: dict[str, RunResources], every: bool) -> dict[str, RunResources]:
    """The runs named (by id, prefix or model), all of them, or those `lab up` left."""
    if every:
        return everything
    if not wanted:
        return {r: res for r, res in everything.items() if res.labels.get(VERB) == "up"}
    chosen = {}
    for want in wanted:
        by_id = runs.match(want, everything)
        hits = by_id or [r for r, res in everything.items() if any(u.labels.get(SERVICE) == want for u in res.units)]
        if not hits or len(by_id) > 1:
            raise UsageError(f"no single run matches '{want}' (a run id, a unique prefix, or a model with a "
                             "run); `lab status` lists them")
        chosen.update({r: everything[r] for r in hits})
    return chosen


def what(things: list[str]) -> str:
    """'2 services, 3 containers, 1 network' from ['service a', ...]."""
    counts: dict[str, int] = {}
    for thing in things:
        kind = thing.split(" ", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items()) or "nothing left"


def run(args: argparse.Namespace) -> int:
    inv = inventory()
    chosen = choose(args.runs, inv.runs(), args.all)
    removed = 0
    grace = _grace()
    for run_id, res in chosen.items():
        for part in (res, *res.also):
            inv.engine(part.orchestrator).stop(part.units, grace)
        _keep_logs(res)
        things = inv.remove(res)
        _mark_removed(res)
        removed += len(things)
        out.print(f"removed run {run_id} ({res.orchestrator}): {what(things)}", markup=False)
    if args.images:
        eng = inv.engine("local")
        for image in eng.images(every_lab=True):  # one cache, shared by every lab name
            try:
                eng.remove_image(image.id)
                removed += 1
                out.print(f"removed image {', '.join(image.tags) or image.short_id}", markup=False)
            except EngineError as exc:
                say(f"kept image {image.short_id}: {exc.explanation}")
    if not removed:
        out.print("nothing to remove")
    return 0
