"""lab up MODEL: start a server model and a swarm against it, and leave them up.

The swarm runs the classic experiment by default (three clients, each
sending "client N" every 50 ms) and stops by itself after --duration; the
server stays until `lab down`.
"""

from __future__ import annotations

import argparse
import re
import time

from ioschema import PATTERNS

from .. import config
from ..console import escape, out, say
from ..errors import UsageError
from ..plan import compose, models
from ..run.context import engine
from ..run.live import LiveRun
from . import _args



def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="start MODEL and a client swarm against it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a server model (see `lab models`)")
    p.add_argument("--clients", type=_args.clients, default=3, help="swarm clients (default 3)")
    p.add_argument("--interval", type=_args.positive_ms, default=50,
                   help="ms between one client's messages (default 50)")
    p.add_argument("--duration", type=_args.duration, default=300,
                   help="seconds until the swarm stops by itself (default 300)")
    p.add_argument("--message", default=None,
                   help="what each client sends, in the target's protocol; {i} is its number (default: "
                        "'client {i}'; for real servers their protocol's own, e.g. '/client{i}', 'PING')")
    p.add_argument("--pattern", choices=PATTERNS, default="interval", help="swarm pattern (default interval)")
    p.add_argument("--workers", type=_args.number(int, 1, 256), default=None,
                   help="pool size, for targets that have one (prefork, threadpool, Apache)")
    p.add_argument("--trace", choices=("off", "conn", "msg"), default="msg",
                   help="server and swarm event level (default msg: every message)")
    p.add_argument("--no-swarm", action="store_true", help="start the server alone")
    p.add_argument("--publish", action="store_true",
                   help="publish the server's port on 127.0.0.1 (a free port; never all interfaces)")
    p.add_argument("--name", default=None, help="a name for this run's containers (default: random)")
    p.add_argument("--timeout", type=_args.duration, default=60,
                   help="seconds to wait for the server to be healthy (default 60)")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)


def server_command(base: list[str], trace: str, workers: int | None, model: models.Model) -> list[str]:
    """The server's command: its trace level, and the pool size asked for, or
    model.yaml's (the size its expectations were written for)."""
    command = [*base, f"--trace={trace}"]
    if workers is None and model.workers is not None and model.kind == "model":
        workers = model.workers
    if workers is not None:
        if model.workers is None:
            pools = ", ".join(n for n, m in models.all_models().items() if m.workers)
            raise UsageError(f"{model.name} has no pool: --workers applies to targets with one ({pools})")
        if workers % model.workers_step:
            raise UsageError(f"{model.name} shares its pool among {model.workers_step} processes: --workers "
                             f"must be a multiple of {model.workers_step}, not {workers}")
        command.append(f"--workers={workers}")
    return command


def swarm_command(base: list[str], **flags: object) -> list[str]:
    """The compose.yaml swarm command with its --flags replaced by ours."""
    kept = [a for a in base if not any(a.startswith(f"--{k.replace('_', '-')}=") for k in flags)]
    return kept + [f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if v is not None]


def run(args: argparse.Namespace) -> int:
    _args.replicas_need_swarm(args)
    model = models.get(args.model)
    if args.name and not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,30}", args.name):
        raise UsageError("--name must be lower-case letters, digits, '.', '_' or '-' (at most 31)")
    topology = compose.load_topology(config.compose_file())
    if model.name not in topology.services:
        raise UsageError(f"{model.name} has a model.yaml but no service in {topology.file}")
    spec = topology.service(model.name)
    command = server_command(spec.spec["command"], args.trace, args.workers, model)
    began = time.monotonic()
    eng = engine(args.orchestrator)
    params = {k: v for k, v in vars(args).items() if k != "func"}
    with LiveRun(eng, "up", model.name, say=say, name=args.name, params=params,
                 topology=topology) as live:
        server = live.start(model.name, publish=args.publish, command=command)
        live.wait_healthy(server, args.timeout)
        healthy = time.monotonic() - began
        swarm = None
        if not args.no_swarm:
            swarm = live.start("swarm", command=swarm_command(
                live.topology.service("swarm").spec["command"], target=f"server:{model.port}",
                clients=args.clients, interval=args.interval, duration=args.duration, message=args.message,
                pattern=args.pattern, trace=args.trace, protocol=None if model.protocol == "line" else model.protocol),
                replicas=args.swarm_replicas)
        live.keep()
        live.dir.write_json("up.json", {"healthy_after_s": round(healthy, 3)})
    state = server.state()
    out.print(f"[bold]{model.name}[/] is up (run {live.id}, healthy after {healthy:.1f}s)")
    out.print(f"  server  {server.name}  {state.ip}:{model.port}" + (f"  on {state.node}" if state.node else "")
              + (f"  published on {server.published()}" if args.publish else ""))
    if swarm is not None:
        out.print(f"  swarm   {swarm.name}  {args.clients} clients"
                  + (f" in {args.swarm_replicas} replicas" if args.swarm_replicas > 1 else "")
                  + f", {args.pattern} every {args.interval:g} ms, stops after {args.duration:g} s")
    out.print(f"  logs    `lab logs` (or `make lab-logs`); kept in {escape(str(live.dir.path))}/logs at `lab down`")
    out.print("  stop    `lab down` (or `make lab-down`)")
    return 0
