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

from ..console import out
from ..run.context import inventory
from ..run.runs import remove
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


def run(args: argparse.Namespace) -> int:
    if not remove(inventory(), args.runs, args.all, args.images, lambda line: out.print(line, markup=False)):
        out.print("nothing to remove")
    return 0
