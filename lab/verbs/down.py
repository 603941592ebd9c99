"""lab down: remove what the lab started (its logs are kept in the run directory).

With no argument, every run `lab up` left up.  --all: every resource carrying
this lab's labels (any run, any verb, also ones made by plain Compose).
--images: the lab's images too (the base and application images).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import docker.errors

from ..console import out, say
from ..context import engine
from ..engine import RUNDIR, SERVICE, VERB
from ..errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("down", help="remove the lab's containers, networks and volumes",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="*", metavar="RUN", help="run ids (or unique prefixes) to remove")
    p.add_argument("--all", action="store_true", help="every resource with this lab's labels")
    p.add_argument("--images", action="store_true", help="also remove the lab's images")
    p.set_defaults(func=run)


def _keep_logs(res) -> None:  # type: ignore[no-untyped-def]
    """Save each container's log into its run directory before it goes."""
    for c in res.containers:
        folder = Path(c.labels.get(RUNDIR, "")) / "logs"
        if not c.labels.get(RUNDIR) or not folder.is_dir():
            continue
        try:
            (folder / f"{c.labels.get(SERVICE, c.name)}.log").write_bytes(c.logs()[: 50 << 20])
        except (OSError, docker.errors.APIError):
            pass


def run(args: argparse.Namespace) -> int:
    eng = engine()
    everything = eng.runs()
    if args.runs:
        chosen = {}
        for want in args.runs:
            hits = [r for r in everything if r == want or r.startswith(want)]
            if len(hits) != 1:
                raise UsageError(f"no single run matches '{want}'; `lab status` lists them")
            chosen[hits[0]] = everything[hits[0]]
    elif args.all:
        chosen = everything
    else:
        chosen = {r: res for r, res in everything.items() if res.labels.get(VERB) == "up"}
    removed = 0
    for run_id, res in chosen.items():
        _keep_logs(res)
        things = eng.remove(res)
        removed += len(things)
        out.print(f"removed run {run_id}: {len(things)} resources")
    if args.images:
        for image in eng.images(every_lab=True):  # one cache, shared by every lab name
            try:
                eng.client.images.remove(image.id, force=True)
                removed += 1
                out.print(f"removed image {', '.join(image.tags) or image.short_id}")
            except docker.errors.APIError as exc:
                say(f"kept image {image.short_id}: {exc.explanation}")
    if not removed:
        out.print("nothing to remove")
    return 0
