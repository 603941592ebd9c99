"""The swarm's flags: what they are, how they are checked, and the config they make.

Every mistake is refused here, before anything starts, in one line with
exit status 2 (argparse's ``error``): a bad target, impossible counts, a
request the protocol cannot carry or whose reply would never come, a
scripted action for a client that does not exist, an --out that cannot be
written.  ``parse_args`` also derives what the run needs from them:
``host``, ``port``, ``mine`` (the client numbers this process runs),
``codec`` and ``encode`` (the protocol's), ``actions`` (the scripted ones).
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any, Callable

from ioschema import DEFAULT_PORT, FAST_PATHS
from iorun.trace import LEVELS

from swarm import fastpath, patterns, wire


def _number(kind: type, low: float, strict: bool) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}: {text!r}")
        return value
    return convert


positive_int = _number(int, 0, True)
nonneg_int = _number(int, 0, False)
positive_float = _number(float, 0, True)
nonneg_float = _number(float, 0, False)


def _action(text: str) -> patterns.Action:
    try:
        return patterns.parse_at(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_MESSAGES = ", ".join(f"{k} {v!r}" for k, v in wire.DEFAULT_MESSAGES.items())

# Every flag, in --help's order: (name, argparse keywords).
FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--target", dict(default=f"server:{DEFAULT_PORT}", help="host:port of the server (default %(default)s)")),
    ("--clients", dict(type=positive_int, default=3, help="number of clients (storm: concurrent slots)")),
    ("--pattern", dict(choices=patterns.NAMES, default="interval", help="what the clients do (default %(default)s)")),
    ("--protocol", dict(choices=wire.PROTOCOLS, default="line", help="what the clients speak (default %(default)s)")),
    ("--message", dict(default=None, help="request, in the protocol's text form; {i} is the 1-based client "
                                          f"number (default: {_MESSAGES})")),
    ("--interval", dict(type=positive_float, default=50.0,
                        help="interval: milliseconds between a client's requests (default %(default)s)")),
    ("--pace", dict(type=positive_float, default=None,
                    help="slow: milliseconds between the pieces of a request (default 100)")),
    ("--piece", dict(type=positive_int, default=None,
                     help="slow: bytes in each piece of a request, at most the request's length (default 1)")),
    ("--slow-clients", dict(type=nonneg_int, default=0, metavar="K",
                            help="clients 1..K run the slow pattern, the others --pattern (default 0)")),
    ("--pipeline", dict(type=positive_int, default=1,
                        help="pingpong: requests in flight per connection (default %(default)s)")),
    ("--size", dict(type=positive_int, default=None,
                    help="line protocol only: pad each request line to this many bytes, newline included")),
    ("--rate", dict(type=positive_float, default=None, help="rate: requests per second over all active connections")),
    ("--ramp", dict(type=positive_float, default=None,
                    help="connections per second while connecting (default: all at once)")),
    ("--warmup", dict(type=nonneg_float, default=0.0, help="seconds at the start left out of latency and throughput")),
    ("--duration", dict(type=positive_float, default=300.0, help="seconds, then stop (default %(default)s)")),
    ("--count", dict(type=positive_int, default=None,
                     help="requests per client (storm: connections per slot), then that client leaves")),
    ("--active", dict(type=nonneg_int, default=None,
                      help="only clients 1..K run the pattern; the others connect and hold")),
    ("--at", dict(type=_action, action="append", default=[], metavar="T:CLIENT:SEND",
                  help="scripted request: at T s client CLIENT sends SEND (repeatable)")),
    ("--plan", dict(default=None, metavar="FILE_OR_JSON",
                    help='scripted requests as a JSON list of {"t": 2.0, "client": 1, "send": "CRASH"}')),
    ("--user", dict(default=None, help="postgres: the user to log in as, trust auth (default lab)")),
    ("--database", dict(default=None, help="postgres: the database (default lab)")),
    ("--http-host", dict(default=None,
                         help="http: the Host header (default: the target's host, and its port unless 80)")),
    ("--workers", dict(type=positive_int, default=None,
                       help="worker processes (default: half the CPUs, at least 1, at most one per client)")),
    ("--connect-timeout", dict(type=positive_float, default=5.0,
                               help="seconds a client keeps retrying a refused or silent connect "
                                    "(default %(default)s)")),
    ("--max-connecting", dict(type=positive_int, default=128,
                              help="connects in progress at once, per worker (default %(default)s)")),
    ("--timeline-per-conn", dict(type=nonneg_int, default=2000,
                                 help="timeline [send, reply] pairs kept per connection (default %(default)s)")),
    ("--timeline-max", dict(type=nonneg_int, default=200_000, help="timeline pairs kept in all (default %(default)s)")),
    ("--records-max", dict(type=nonneg_int, default=20_000,
                           help="per-connection records kept (storm makes many; default %(default)s)")),
    ("--out", dict(default=None, help="directory for results.json")),
    ("--replica", dict(default=None, metavar="I/N",
                       help="one of N copies of this swarm (on other machines): run only clients I, I+N, "
                            "I+2N... of --clients, numbered as in the whole swarm; --active, --rate, --ramp "
                            "and --at stay the whole swarm's (default from IOLAB_REPLICA)")),
    ("--results-stdout", dict(action="store_true",
                              help="also print results.json on stdout at the end, as `results` events (its "
                                   "gzip, base64, in parts): for a reader that cannot reach the --out volume")),
    ("--fast-path", dict(choices=("auto",) + FAST_PATHS, default="auto",
                         help="ping-pong's steady state: native (swarm/fastpath.c, built into the app image), "
                              "python (the same work in the Python loop), auto: native where built "
                              "(default %(default)s)")),
    ("--trace", dict(choices=sorted(LEVELS), default=None,
                     help="event level: off, conn or msg (default from LAB_TRACE, else msg)")),
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarm", description="The lab's client swarm: many connections, one readiness loop per worker.")
    for name, options in FLAGS:
        p.add_argument(name, **options)
    # read when the parser is made, not when this module is imported
    p.set_defaults(replica=os.environ.get("IOLAB_REPLICA") or None, trace=os.environ.get("LAB_TRACE", "msg"))
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, checked, with what the run derives from them (see the top)."""
    p = parser()
    args = p.parse_args(argv)
    if args.trace not in LEVELS:
        p.error(f"LAB_TRACE must be one of {', '.join(LEVELS)}")
    _target(p, args)
    if args.pattern == "rate" and args.rate is None:
        p.error("--pattern rate needs --rate R (requests per second)")
    if args.active is None:
        args.active = args.clients
    if args.active > args.clients:
        p.error(f"--active {args.active} is more than --clients {args.clients}")
    if args.warmup >= args.duration:
        p.error(f"--warmup {args.warmup} leaves nothing of --duration {args.duration}")
    args.mine = _replica_share(p, args)
    if args.fast_path == "native" and (args.pattern == "slow" or args.slow_clients):
        p.error("--fast-path native carries ping-pong only; slow clients run in the Python loop: "
                "use auto or python")
    if args.fast_path == "native" and fastpath.load() is None:
        p.error(f"--fast-path native: no {fastpath.LIBRARY.name} next to swarm/fastpath.py "
                f"(it is built into the app image); use auto or python")
    _protocol_args(p, args)
    _slow_args(p, args)
    args.actions = _actions(p, args)
    if args.out is not None:
        _writable(p, args.out)
    return args


def _target(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    host, sep, port = args.target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        p.error(f"--target must be host:port, got {args.target!r}")
    args.host, args.port = host, int(port)


def _replica_share(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[int]:
    """The client numbers this process runs: all, or a replica's share
    (every Nth, so each replica ramps, holds and runs actives alike)."""
    if args.replica is None:
        return list(range(1, args.clients + 1))
    i, sep, n = str(args.replica).partition("/")
    if not sep or not i.isdigit() or not n.isdigit() or not 1 <= int(i) <= int(n):
        p.error(f"--replica {args.replica!r} must be I/N with 1 <= I <= N")
    if int(n) > args.clients:
        p.error(f"--replica {args.replica}: {n} replicas for {args.clients} clients leave some with none")
    args.replica = (int(i), int(n))
    return list(range(int(i), args.clients + 1, int(n)))


def _actions(p: argparse.ArgumentParser, args: argparse.Namespace) -> list[patterns.Action]:
    """--at and --plan, each checked against the protocol and the run."""
    actions = list(args.at)
    if args.plan is not None:
        try:
            actions.extend(patterns.parse_plan(args.plan))
        except ValueError as exc:
            p.error(str(exc))
    for a in actions:
        if args.encode is not None:
            try:
                args.encode(a.send)
            except ValueError as exc:
                p.error(f"scripted request {a.send!r}: {exc}")
            if _unanswered(args.protocol, args.encode(a.send)):
                p.error(f"scripted request {a.send!r}: memcached does not answer noreply (or a meta "
                        f"command's q flag), and a scripted request waits for its reply; drop it")
        if a.client > args.clients:
            p.error(f"scripted request for client {a.client}, but there are {args.clients} clients")
        if a.t > args.duration:
            p.error(f"scripted request at {a.t} s, after the end of the run at {args.duration} s")
    return actions


PACE_MS, PIECE = 100.0, 1  # the slow pattern's defaults: one byte every 100 ms


def _slow_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--pace, --piece and --slow-clients: only with slow clients, a piece
    no longer than the request (else it is not sent in pieces), and the
    Python loop (the C fast path carries ping-pong only)."""
    slow = args.pattern == "slow" or args.slow_clients > 0
    if args.slow_clients > args.clients:
        p.error(f"--slow-clients {args.slow_clients} is more than --clients {args.clients}")
    if not slow:
        if args.pace is not None or args.piece is not None:
            p.error("--pace and --piece are for slow clients (--pattern slow or --slow-clients K)")
        return
    args.pace = PACE_MS if args.pace is None else args.pace
    args.piece = PIECE if args.piece is None else args.piece
    shortest = min(len(_request(args, i)) for i in {1, args.clients})
    if args.piece > shortest:
        p.error(f"--piece {args.piece} is longer than the request ({shortest} bytes): "
                "it would not be sent in pieces")


def _request(args: argparse.Namespace, client: int) -> bytes:
    """Client ``client``'s request, as the wire carries it."""
    if args.encode is None:
        return patterns.message(args.message, client, args.size)
    return args.encode(args.message.format(i=client))


def _writable(p: argparse.ArgumentParser, out: str) -> None:
    """Find out now, not after a five-minute run, that the results have nowhere to go."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        p.error(f"--out {out!r}: {exc.strerror}")
    if not os.access(out, os.W_OK | os.X_OK):
        p.error(f"--out {out!r} is not writable")


def _protocol_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the protocol's own flags and the message; set ``args.codec``
    (what makes one connection's codec, None for the line protocol) and
    ``args.encode`` (request text -> bytes, None for the line protocol)."""
    proto = args.protocol
    if args.size is not None and proto != "line":
        p.error(f"--size pads line-protocol requests; it does not apply to --protocol {proto}")
    options = _protocol_options(p, args)
    if args.message is None:
        args.message = wire.DEFAULT_MESSAGES[proto]
    try:
        args.codec = wire.codec_factory(proto, **options)
    except ValueError as exc:  # a NUL in a postgres user, for example
        p.error(f"--protocol {proto}: {exc}")
    args.encode = None if args.codec is None else args.codec().request
    try:
        for i in {1, args.clients}:
            text = args.message.format(i=i)
            if args.encode is None:
                patterns.message(args.message, i, args.size)
            else:
                args.encode(text)
    except (KeyError, IndexError, ValueError) as exc:
        p.error(f"--message {args.message!r}: {exc}")
    if args.pattern != "hold" and args.encode is not None and \
            _unanswered(proto, args.encode(args.message.format(i=1))):
        p.error(f"--message {args.message!r}: memcached does not answer noreply (or a meta command's "
                f"q flag), so the swarm could not count replies; drop it")


def _protocol_options(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """The codec's options from --user, --database, --http-host (each only
    for its protocol), with their defaults."""
    proto = args.protocol
    if proto != "postgres" and (args.user is not None or args.database is not None):
        p.error(f"--user and --database are for --protocol postgres, not {proto}")
    if proto != "http" and args.http_host is not None:
        p.error(f"--http-host is for --protocol http, not {proto}")
    if proto == "postgres":
        args.user = "lab" if args.user is None else args.user
        args.database = "lab" if args.database is None else args.database
        return {"user": args.user, "database": args.database}
    if proto == "http":
        if args.http_host is None:
            host = f"[{args.host}]" if ":" in args.host else args.host
            args.http_host = host if args.port == 80 else f"{host}:{args.port}"
        if not args.http_host or any(ch in args.http_host for ch in "\r\n "):
            p.error(f"--http-host {args.http_host!r} is not a host name")
        return {"host": args.http_host}
    return {}


def _unanswered(protocol: str, request: bytes) -> bool:
    """A memcached request that gets no reply: "noreply" on a classic
    command, the q (quiet) flag on a meta command (mg, ms, md, ma)."""
    if protocol != "memcached":
        return False
    words = request.split(b"\r\n", 1)[0].split(b" ")
    if b"noreply" in words[1:]:
        return True
    return len(words[0]) == 2 and words[0][:1] == b"m" and b"q" in words[2:]


def config_of(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """Every flag, as the run used it (results.json's "config"); a replica's
    clients and active are its own share, the whole swarm's under replica."""
    mine = getattr(args, "mine", range(1, args.clients + 1))
    replica = None if not getattr(args, "replica", None) else {
        "index": args.replica[0], "of": args.replica[1], "clients": args.clients, "active": args.active}
    return {
        "target": args.target, "protocol": args.protocol, "clients": len(mine), "pattern": args.pattern,
        "message": args.message, "interval_ms": args.interval, "pipeline": args.pipeline,
        "size": args.size, "rate": args.rate, "ramp": args.ramp, "warmup": args.warmup,
        "duration": args.duration, "count": args.count, "active": sum(1 for c in mine if c <= args.active),
        "replica": replica,
        "at": [f"{a.t:g}:{a.client}:{a.send}" for a in args.at], "plan": args.plan,
        "workers": workers, "connect_timeout": args.connect_timeout,
        "max_connecting": args.max_connecting, "timeline_per_conn": args.timeline_per_conn,
        "timeline_max": args.timeline_max, "records_max": args.records_max,
        "out": args.out, "trace": args.trace, "fast_path": args.fast_path,
        "user": args.user, "database": args.database, "http_host": args.http_host,
        "slow_clients": args.slow_clients, "pace_ms": args.pace, "piece": args.piece,
    }
