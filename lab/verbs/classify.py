"""lab classify TARGET...: infer a server's concurrency model from observation alone.

TARGET is a model or real-server name (started fresh for the probes, then
removed) or HOST:PORT, a server already running (--protocol says what it
speaks; default line).  The probe (lab/observe/probes.py) holds K
connections each with half a request, K stepped 1..32 and bisected to the
bound, with a fresh request each time, while the server's tasks are read:
how many processes and threads, and which tasks woke to read the halves.
lab/observe/classify.py infers one of: one client at a time, c processes or
threads per connection, a pool of N processes or threads, a single-threaded
event loop, an event loop with N workers; or "uncertain", with the
candidates (docs/classify.md).  Every inference leads with its answer, then
the evidence, step by step.  model.yaml is never an input: for a named
target its declaration is shown beside the inference.

HOST:PORT must be something this lab started (a unit's name or address, as
`lab status` lists them): the probe joins its network and its container is
read.  --network NAME probes on another Docker network; the container at
HOST (by name, or --container NAME) is read if it can be found.  Anything
the lab did not start needs --external; without its tasks, only the bound
is measured (timing alone).  --pid PID: HOST:PORT is that process on this
host, probed over loopback, its tasks read from /proc (no engine).

Exit 0 every target classified (and, for a named target, as it declares);
1 a named target classified otherwise than it declares; 3 a target left
uncertain; 2 bad input (an unknown target, nothing answering, the wrong
protocol, a --pid that is not there or not listening, an address outside
what the lab started without --external).
"""


from __future__ import annotations

import argparse
import json
from typing import Any

from ..console import escape, out, say
from ..errors import EXIT_FAILED, EXIT_NOT_JUDGED
from ..observe.classify import UNCERTAIN
from ..observe.session import Request, classify
from ..plan.models import PROTOCOLS
from . import _args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="infer a server's concurrency model from what it does",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="+", metavar="TARGET", help="a model or server name, or HOST:PORT")
    p.add_argument("--protocol", choices=PROTOCOLS, default=None,
                   help="what HOST:PORT speaks (default line); for a named target, instead of its own")
    p.add_argument("--network", default=None, metavar="NAME",
                   help="an existing Docker network for the probing swarm (HOST:PORT on it)")
    p.add_argument("--container", default=None, metavar="NAME",
                   help="the container that runs HOST:PORT, to read its processes and threads")
    p.add_argument("--external", action="store_true",
                   help="allow probing an address the lab did not start (bounded load: 33 connections, seconds)")
    p.add_argument("--pid", type=_args.number(int, 1), default=None, metavar="PID",
                   help="HOST:PORT is this process on this host (loopback only): its tasks from /proc")
    p.add_argument("--json", action="store_true", help="print classify.json on stdout")
    _args.orchestrator(p)
    p.set_defaults(func=run)


def show(doc: dict[str, Any]) -> None:
    marks = {"high": "green", "medium": "yellow", "low": "red"}
    colour = "red" if doc["cls"] == UNCERTAIN else marks[doc["confidence"]]
    out.print(f"[bold]{escape(doc['target'])}[/]: [{colour}]{escape(doc['summary'])}[/] "
              f"(confidence {doc['confidence']}; {escape(doc['how'])})")
    if doc["declared"]:
        verdict = {True: "[green]agrees[/]", False: "[red]differs[/]", None: ""}[doc["agrees"]]
        out.print(f"  declared: {escape(doc['declared']['summary'])} {verdict}")
    for line in doc["evidence"]:
        out.print(f"  {escape(line)}")


def run(args: argparse.Namespace) -> int:
    done = classify(Request(args.targets, args.protocol, args.network, args.container, args.external,
                            args.orchestrator, args.pid), None if args.json else show)
    if args.json:
        print(json.dumps(done.doc, indent=2))
    else:
        out.print(f"run directory {done.run_dir}", markup=False)
    if any(d["agrees"] is False for d in done.doc["targets"]):
        say("a target was classified otherwise than its model.yaml declares")
        return EXIT_FAILED
    return EXIT_NOT_JUDGED if any(d["cls"] == UNCERTAIN for d in done.doc["targets"]) else 0
