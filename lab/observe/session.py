"""lab classify from start to end: each target found or started, probed and classified.

    doc = classify(Request(["redis", "server:12345"]), show)   # classify.json's document

TARGET is a model or real-server name (started fresh for the probes, then
removed) or HOST:PORT, a server already running: something this lab started
(found by its name or address, on its run's network), or, with `external`,
any address (then read from timing alone unless its container is named).
With `pid`, HOST:PORT is a server on this host, outside any container: the
probes run here over loopback and its tasks are read from /proc (no engine).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..console import say
from ..engine import LAB, ROLE, Engine, EngineError, Unit
from ..errors import UsageError
from ..plan import models
from ..run.context import engine
from ..run.live import LiveRun
from ..run.probe import Bench
from . import classify as inference
from . import local
from .probes import Endpoint, classify_model, observe, protocol_only

ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
SCHEMA = "iolab.classify/1"


@dataclass(frozen=True)
class Request:
    targets: list[str]
    protocol: str | None = None  # what HOST:PORT speaks (default line); a named target's own otherwise
    network: str | None = None  # an existing Docker network for the probing swarm
    container: str | None = None  # the container that runs HOST:PORT
    external: bool = False  # an address the lab did not start may be probed
    orchestrator: str | None = None
    pid: int | None = None  # HOST:PORT is this host's process (loopback only)


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


def endpoint_for(eng: Engine, host: str, port: int, args: Request) -> tuple[Endpoint, str | None, str]:
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
        return Endpoint(name, name, protocol_only(name, protocol, port), unit), args.network, how
    if mine is not None:
        unit, network = mine
        return Endpoint(name, name, protocol_only(name, protocol, port), unit), network, \
            f"the lab's {unit.name}"
    if not args.external:
        raise UsageError(f"{name} is not something this lab started (`lab status` lists them); to probe it "
                         "anyway add --external, and --network NAME if it is on a Docker network")
    return Endpoint(name, name, protocol_only(name, protocol, port), unit), None, \
        "an external address" + (f", container {unit.name}" if unit else " (timing alone)")


@dataclass
class Outcome:
    doc: dict[str, Any]  # classify.json
    run_dir: Path


def classify(req: Request, show: Callable[[dict[str, Any]], None] | None = None) -> Outcome:
    """Every target of ``req``, probed and classified in one run; ``show``
    sees each target's record as soon as it is made."""
    known = models.all_models()
    targets = [parse_target(t, known) for t in req.targets]
    if req.pid is not None:
        return _on_this_host(req, targets, show)
    addresses = [t for t in targets if isinstance(t, tuple)]
    if (req.network or req.container) and len(addresses) != len(targets):
        raise UsageError("--network and --container are for HOST:PORT targets (a named one runs in its own run)")
    if req.external and not addresses:
        raise UsageError("--external is for HOST:PORT targets")
    eng = engine(req.orchestrator)
    found = [endpoint_for(eng, *t, req) if isinstance(t, tuple) else None for t in targets]
    networks = {f[1] for f in found if f is not None}
    if len(networks) > 1:
        raise UsageError("these addresses are on different networks: classify them one run at a time")
    network = next(iter(networks), None)
    docs: list[dict[str, Any]] = []
    what = "-".join(t.name if isinstance(t, models.Model) else "address" for t in targets)[:40]
    with LiveRun(eng, "classify", what, say=say, params={"targets": req.targets, "protocol": req.protocol,
                                                          "network": req.network, "external": req.external}) as live:
        if req.external and network is None:
            live.network(publish=True)  # a way out of the host's private networks, for an outside address
        bench = Bench(live, saved_under="probes", network=network)
        for target, where in zip(targets, found):
            docs.append(_one(bench, target, where, req.protocol))
            if show is not None:
                show(docs[-1])
        doc = {"schema": SCHEMA, "run": live.id, "targets": docs}
        live.dir.write_json("classify.json", doc)
    return Outcome(doc, live.dir.path)


def _one(bench: Bench, target: models.Model | tuple[str, int], where: tuple[Endpoint, str | None, str] | None,
         protocol: str | None) -> dict[str, Any]:
    """One target's record: what was inferred, how it was reached, what was observed."""
    if isinstance(target, models.Model):
        seen, result = classify_model(bench, target, protocol, say)
        return {"target": target.name, "how": "started by the lab",
                **inference.judged_against(result, inference.declared(target)), "observed": seen.as_dict()}
    assert where is not None
    ep, _, how = where
    seen = observe(bench, ep, say)
    return {"target": ep.name, "how": how, **inference.judged_against(inference.infer(seen), (None, None)),
            "observed": seen.as_dict()}


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _on_this_host(req: Request, targets: list[models.Model | tuple[str, int]],
                  show: Callable[[dict[str, Any]], None] | None) -> Outcome:
    """`lab classify 127.0.0.1:PORT --pid PID`: probed over loopback from here,
    its tasks read from this host's /proc; nothing touches the engine."""
    if len(targets) != 1 or not isinstance(targets[0], tuple) or req.network or req.container:
        raise UsageError("--pid takes one HOST:PORT target on this host (no --network, no --container)")
    host, port = targets[0]
    if host not in LOOPBACK:
        raise UsageError(f"--pid probes this host over loopback only: {host} is not 127.0.0.1, ::1 or localhost")
    assert req.pid is not None
    local.check_listening(req.pid, port)
    name = f"{host}:{port}"
    ep = Endpoint(name, f"[{host}]:{port}" if ":" in host else name, protocol_only(name, req.protocol or "line",
                                                                                    port), pid=req.pid)
    run_dir = local.run_dir("classify", f"pid-{req.pid}", {"targets": req.targets, "pid": req.pid,
                                                          "protocol": req.protocol})
    seen = observe(None, ep, say)
    doc = {"schema": SCHEMA, "run": run_dir.id, "targets": [
        {"target": name, "how": f"process {req.pid} on this host, over loopback",
         **inference.judged_against(inference.infer(seen), (None, None)), "observed": seen.as_dict()}]}
    if show is not None:
        show(doc["targets"][0])
    run_dir.write_json("classify.json", doc)
    run_dir.finish("complete")
    return Outcome(doc, run_dir.path)
