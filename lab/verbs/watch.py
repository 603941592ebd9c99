"""lab watch [--run RUN]: a live view of a running topology, refreshed several times a second.

One lane per client: its replies as they arrive, how long it has waited, and
whether it is served or waiting; "served at once: K of N" (a client is served
from the server's first read of its request until it leaves, as the
served-at-once check counts it); the server's processes and threads (the
article's `ps huH p PID | wc -l`, per process) and its CPU in cores; the last
few server events.  Past a dozen clients the lanes are grouped.

It reads the same events as `lab logs`.  Ctrl-C leaves the view and the
topology as it was (--stop removes it, as `lab down` would).  It needs a
terminal: without one it says so and exits 2 (`lab logs -f` reads the same
events as lines).
"""

from __future__ import annotations

import argparse

from ..console import out
from ..watch.live import watch_run
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("watch", help="a live view of a running topology: who is served, who waits",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="run id or prefix (default: the newest run `lab up` left up)")
    p.add_argument("--stop", action="store_true", help="remove the run when the view is left (as `lab down`)")
    _args.orchestrator_seen(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    watch_run(args.run, out, stop_after=args.stop)
    return 0
