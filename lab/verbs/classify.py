"""lab classify TARGET...: infer a server's concurrency model from observation alone.

TARGET is a model or real-server name (started fresh for the probes, then
removed) or HOST:PORT, a server already running (--protocol says what it
speaks; default line).  A few bounded probes (at most 8 connections, about
ten seconds in all; lab/observe/probes.py) record who is served at once, what
grows with the clients, which threads do the work, what the idle server
costs and what one slow request does to the others; lab/observe/classify.py infers
one of: one client at a time, a process per connection, a thread per
connection, a pool of N processes or threads, a single-threaded event loop,
an event loop with N workers; or "uncertain", with the candidates.  Every
inference is printed with the evidence behind it.  model.yaml is never an
input: for a named target its declaration is shown beside the inference.

HOST:PORT must be something this lab started (a unit's name or address, as
`lab status` lists them): the probing swarm joins its network and its
container is read.  --network NAME puts the swarm on another Docker
network; the container at HOST (by name, or --container NAME) is read if
it can be found.  Anything the lab did not start needs --external, and
without a container to read, the inference comes from timing alone, at a
lower confidence.

Exit 0 every target classified (and, for a named target, as it declares);
1 a named target classified otherwise than it declares; 3 a target left
uncertain; 2 bad input (an unknown target, nothing answering, the wrong
protocol, an address outside what the lab started without --external).
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from ..console import escape, out, say
from ..engine import LAB, ROLE, Engine, EngineError, Unit
from ..errors import EXIT_FAILED, EXIT_NOT_JUDGED, UsageError
from ..observe import classify, probes as observe
from ..plan import models
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
from . import _args

ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="infer a server's concurrency model from what it does",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="+", metavar="TARGET", help="a model or server name, or HOST:PORT")
    p.add_argument("--protocol", choices=models.PROTOCOLS, default=None,
                   help="what HOST:PORT speaks (default line); for a named target, instead of its own")
    p.add_argument("--network", default=None, metavar="NAME",
                   help="an existing Docker network for the probing swarm (HOST:PORT on it)")
    p.add_argument("--container", default=None, metavar="NAME",
                   help="the container that runs HOST:PORT, to read its processes and threads")
    p.add_argument("--external", action="store_true",
                   help="allow probing an address the lab did not start (bounded load: 8 connections, seconds)")
    p.add_argument("--json", action="store_true", help="print classify.json on stdout")
    _args.orchestrator(p)
    p.set_defaults(func=run)


def parse_target(text: str, known: dict[str, models.Model]) -> tuple[str, int] | models.Model:
    """A model by name, or (host, port); anything else is bad input."""
    if text in known:
        return known[text]
    found = ADDRESS.match(text)
    if not found or not 1 <= int(found["port"]) <= 65535:
        raise UsageError(f"'{text}' is neither a model or server name ({', '.join(known)}) nor HOST:PORT")
    return found["host"].strip("[]"), int(found["port"])


def lab_unit(eng: Engine, host: str, network: str | None = None) -> tuple[Unit, str | None] | None:
    """The unit of this lab whose name or address is ``host``, and its run's
    network; on ``network`` (a run's), also by its names there: its service,
    or `server` for the run's server."""
    for res in eng.runs().values():
        nets = [n.name for n in res.networks]
        on_it = network is not None and network in nets
        if network is not None and not on_it:
            continue
        for unit in res.units:
            try:
                ip = unit.state().ip
            except EngineError:
                continue
            aliases = {unit.service, "server" if unit.labels.get(ROLE) == "server" else unit.name} if on_it else set()
            if host in {unit.name, ip, *aliases}:
                return unit, nets[0] if nets else None
    return None


def container_named(eng: Engine, name: str) -> Unit | None:
    """A container by name, the lab's or not (where the orchestrator can look one up)."""
    find = getattr(eng, "unit", None)
    if find is None:
        return None
    try:
        return find(name)
    except EngineError:
        return None


def endpoint_for(eng: Engine, host: str, port: int, args: argparse.Namespace) -> tuple[observe.Endpoint, str | None,
                                                                                     str]:
    """Where the swarm goes and what it reads for HOST:PORT: (endpoint, the
    network the swarm joins (None: this run's), how it was found)."""
    protocol = args.protocol or "line"
    name = f"{host}:{port}"
    mine = lab_unit(eng, host, args.network)
    unit = container_named(eng, args.container) if args.container else (mine[0] if mine else None)
    if args.container and unit is None:
        raise UsageError(f"--container {args.container}: no such container on this engine")
    if args.network:
        if not any(n.name == args.network for r in eng.runs().values() for n in r.networks) and \
                not eng.network_exists(args.network):
            raise UsageError(f"--network {args.network}: no such network on this engine")
        if unit is None and not args.container:
            unit = container_named(eng, host)  # HOST is often the container's own name
        ours = mine is not None or (unit is not None and unit.labels.get(LAB) == eng.lab)
        if not ours and not args.external:
            raise UsageError(f"{name} on {args.network} is not something this lab started; to probe it anyway "
                             "add --external (the load is bounded: 8 connections, seconds)")
        how = f"on network {args.network}" + (f", container {unit.name}" if unit else ", no container found")
        return observe.Endpoint(name, name, observe.protocol_only(name, protocol, port), unit), args.network, how
    if mine is not None:
        unit, network = mine
        return observe.Endpoint(name, name, observe.protocol_only(name, protocol, port), unit), network, \
            f"the lab's {unit.name}"
    if not args.external:
        raise UsageError(f"{name} is not something this lab started (`lab status` lists them); to probe it "
                         "anyway add --external, and --network NAME if it is on a Docker network")
    return observe.Endpoint(name, name, observe.protocol_only(name, protocol, port), unit), None, \
        "an external address" + (f", container {unit.name}" if unit else " (timing alone)")


def report(name: str, found: classify.Classification, declared: tuple[str | None, int | None],
           how: str) -> dict[str, Any]:
    cls, n = declared
    return {"target": name, "how": how, **found.as_dict(),
            "declared": None if cls is None else {"class": cls, "n": n,
                                                  "summary": classify.NAMES[cls].format(n=n or "N")},
            "agrees": classify.agrees(found, cls, n)}


def show(doc: dict[str, Any]) -> None:
    marks = {"high": "green", "medium": "yellow", "low": "red"}
    colour = "red" if doc["cls"] == classify.UNCERTAIN else marks[doc["confidence"]]
    out.print(f"[bold]{escape(doc['target'])}[/]: [{colour}]{escape(doc['summary'])}[/] "
              f"(confidence {doc['confidence']}; {escape(doc['how'])})")
    if doc["declared"]:
        verdict = {True: "[green]agrees[/]", False: "[red]differs[/]", None: ""}[doc["agrees"]]
        out.print(f"  declared: {escape(doc['declared']['summary'])} {verdict}")
    for line in doc["evidence"]:
        out.print(f"  {escape(line)}")


def run(args: argparse.Namespace) -> int:
    known = models.all_models()
    targets = [parse_target(t, known) for t in args.targets]
    addresses = [t for t in targets if isinstance(t, tuple)]
    if (args.network or args.container) and len(addresses) != len(targets):
        raise UsageError("--network and --container are for HOST:PORT targets (a named one runs in its own run)")
    if args.external and not addresses:
        raise UsageError("--external is for HOST:PORT targets")
    eng = engine(args.orchestrator)
    found = [endpoint_for(eng, *t, args) if isinstance(t, tuple) else None for t in targets]
    networks = {net for f in found if f is not None for net in [f[1]]}
    if len(networks) > 1:
        raise UsageError("these addresses are on different networks: classify them one run at a time")
    network = next(iter(networks), None)
    docs: list[dict[str, Any]] = []
    what = "-".join(t.name if isinstance(t, models.Model) else "address" for t in targets)[:40]
    with LiveRun(eng, "classify", what, say=say, params={"targets": args.targets, "protocol": args.protocol,
                                                          "network": args.network, "external": args.external}) as live:
        if args.external and network is None:
            live.network(publish=True)  # a way out of the host's private networks, for an outside address
        bench = Bench(live, saved_under="probes", network=network)
        for target, where in zip(targets, found):
            if isinstance(target, models.Model):
                seen, result = observe.classify_model(bench, target, args.protocol, say)
                docs.append({**report(target.name, result, classify.declared(target), "started by the lab"),
                             "observed": seen.as_dict()})
            else:
                assert where is not None
                ep, _, how = where
                seen = observe.observe(bench, ep, say)
                docs.append({**report(ep.name, classify.infer(seen), (None, None), how), "observed": seen.as_dict()})
            if not args.json:
                show(docs[-1])
        live.dir.write_json("classify.json", {"schema": "iolab.classify/1", "run": live.id, "targets": docs})
    if args.json:
        print(json.dumps({"schema": "iolab.classify/1", "run": live.id, "targets": docs}, indent=2))
    else:
        out.print(f"run directory {live.dir.path}", markup=False)
    if any(d["agrees"] is False for d in docs):
        say("a target was classified otherwise than its model.yaml declares")
        return EXIT_FAILED
    return EXIT_NOT_JUDGED if any(d["cls"] == classify.UNCERTAIN for d in docs) else 0
