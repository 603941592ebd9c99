"""lab up MODEL: start a server model and a swarm against it, and leave them up.

The swarm runs the classic experiment by default (three clients, each
sending "client N" every 50 ms) and stops by itself after --duration; the
server stays until `lab down`.
"""

from __future__ import annotations

import argparse

from ioschema import PATTERNS, TRACE_LEVELS

from ..console import escape, out
from ..errors import UsageError
from ..run.up import UpRequest, up
from ..watch.live import watch_run
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
    p.add_argument("--rate", type=_args.number(float, 0.1, 1e6), default=None, metavar="R",
                   help="--pattern rate: requests per second over all the clients (open loop)")
    p.add_argument("--workers", type=_args.number(int, 1, 256), default=None,
                   help="pool size, for targets that have one (prefork, threadpool, Apache)")
    p.add_argument("--trace", choices=TRACE_LEVELS, default="msg",
                   help="server and swarm event level (default msg: every message)")
    p.add_argument("--no-swarm", action="store_true", help="start the server alone")
    p.add_argument("--publish", action="store_true",
                   help="publish the server's port on 127.0.0.1 (a free port; never all interfaces)")
    p.add_argument("--name", default=None, help="a name for this run's containers (default: random)")
    p.add_argument("--timeout", type=_args.duration, default=60,
                   help="seconds to wait for the server to be healthy (default 60)")
    p.add_argument("--watch", action="store_true",
                   help="then show it live (as `lab watch`) until Ctrl-C, which leaves it up")
    _args.orchestrator(p, replicas=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if (args.pattern == "rate") != (args.rate is not None):  # before anything starts
        raise UsageError("--pattern rate needs --rate R (requests per second), and --rate needs --pattern rate")
    if args.watch and not out.is_terminal:  # before anything starts
        raise UsageError("--watch draws a live screen and needs a terminal; without one, start with `lab up` "
                         "and read the events with `lab logs -f`")
    done = up(UpRequest(args.model, args.clients, args.interval, args.duration, args.message, args.pattern,
                        args.workers, args.trace, args.no_swarm, args.publish, args.name, args.timeout,
                        args.orchestrator, args.swarm_replicas, args.rate),
              params={k: v for k, v in vars(args).items() if k != "func"})
    model, server, state = done.model, done.server, done.server.state()
    out.print(f"[bold]{model.name}[/] is up (run {done.run_id}, healthy after {done.healthy_s:.1f}s)")
    out.print(f"  server  {server.name}  {state.ip}:{model.port}" + (f"  on {state.node}" if state.node else "")
              + (f"  published on {server.published()}" if args.publish else ""))
    if done.swarm is not None:
        out.print(f"  swarm   {done.swarm.name}  {args.clients} clients"
                  + (f" in {args.swarm_replicas} replicas" if args.swarm_replicas > 1 else "")
                  + f", {_doing(args)}, stops after {args.duration:g} s")
    out.print(f"  stop    `lab down` (or `make lab-down`); the logs are kept in {escape(str(done.run_dir))}/logs")
    if args.watch:
        watch_run(done.run_id, out)
        return 0
    out.print("Next:")  # the three things a newcomer does next, in the order they teach
    out.print("  `lab watch` (make lab-watch)  who is served and who waits, live; Ctrl-C leaves it up")
    out.print("  `lab logs` (make lab-logs)    every event, server and swarm, on one time axis")
    out.print("  `lab tour` (make tour)        the article's argument, one live experiment at a time")
    return 0


def _doing(args: argparse.Namespace) -> str:
    """What the swarm's clients do, in a few words (the slow pattern's pace
    is the swarm's default: lab up does not set it)."""
    if args.pattern == "slow":
        return "slow: each request in pieces, 1 byte every 100 ms"
    if args.pattern == "rate":
        return f"rate: {args.rate:g} requests/s in all"
    if args.pattern == "interval":
        return f"interval every {args.interval:g} ms"
    return args.pattern
