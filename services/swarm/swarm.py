"""swarm: the lab's client fan-out, its load generator and its eyes.

    python3 /srv/swarm/swarm.py --target server:12345 --clients 100 \\
        --pattern pingpong --pipeline 16 --size 64 --duration 10 --out /results

The parent process checks the flags and the descriptor limit, resolves the
target, then forks ``--workers`` processes (default: one per two CPUs it may
run on, at least one, never more than there are clients).  Client i runs in
worker (i-1) mod W, so every worker gets an even share (conn.Share) of
active and holding clients.  Each worker runs one readiness loop over its
connections (worker.py) and, when the run ends, sends its WorkerReport
(report.py) back through a pipe as one JSON document; the parent merges
them (results.py) and writes --out/results.json.

Why processes and not threads: the GIL would make a threaded load
generator slower than the servers it measures.  Why not one process per
client: ten thousand of them would measure the swarm, not the server.  Why
only half the CPUs by default: the swarm usually shares its machine with the
server it measures, and a worker per CPU leaves the server none of its own.
On a 2-core host, 100 ping-pong connections against the epoll model got
about 1.3x the replies/s from one worker as from two, at less CPU per reply;
a machine that runs only the swarm can give --workers its CPU count.

--protocol picks what the clients speak: the lab's line protocol (the
default, counted on the workers' fast path), or http, redis, memcached or
postgres through a client codec per connection (services/ioclient), so the
same patterns and figures apply to real servers.  --message and --at take
a request in the protocol's own text form ("PING", "SELECT 1", "/sleep/500").

The run ends at --duration, when every active client has sent its --count
requests and read the replies, when every connection is gone (the server
died), or on SIGTERM/SIGINT; results are written in every case.

Events go to stdout as JSON lines (iorun.Trace, model "swarm"): start,
connect, close, error, reply (msg level), action, warning, done.  A one-line
summary goes to stderr.  Exit status: 0 the run happened; 1 some client
could not connect (or a worker died); 2 bad flags or impossible limits.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):
    # Run as a script (python3 /srv/swarm/swarm.py): Python put this file's
    # folder first on sys.path, where "swarm" would name this very file.
    # Import the package from the folder above instead.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse
import base64
import gc
import gzip
import json
import math
import platform
import resource
import selectors
import signal
import socket
import time
import traceback
from typing import Any, NoReturn

from ioschema import DEFAULT_PORT
from iorun import Trace
from iorun.trace import LEVELS

from swarm import fastpath, patterns, results, wire
from swarm.conn import Share
from swarm.report import WorkerReport
from swarm.worker import Worker

FD_RESERVE = 32  # descriptors a worker needs besides its sockets (stdio, pipes, epoll)
RESULTS_PART = 3000  # base64 characters per `results` event: a line stays below the trace's 4000
RESOLVE_PAUSE = 0.2  # seconds between name lookups while the target's name is not known yet


# -- flags --------------------------------------------------------------------

def _number(kind: type, low: float, strict: bool) -> Any:
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="swarm", description="The lab's client swarm: many connections, one readiness loop per worker.")
    p.add_argument("--target", default=f"server:{DEFAULT_PORT}", help="host:port of the server (default %(default)s)")
    p.add_argument("--clients", type=positive_int, default=3, help="number of clients (storm: concurrent slots)")
    p.add_argument("--pattern", choices=patterns.NAMES, default="interval",
                   help="what the clients do (default %(default)s)")
    p.add_argument("--protocol", choices=wire.PROTOCOLS, default="line",
                   help="what the clients speak (default %(default)s)")
    p.add_argument("--message", default=None,
                   help="request, in the protocol's text form; {i} is the 1-based client number "
                        "(default: " + ", ".join(f"{k} {v!r}" for k, v in wire.DEFAULT_MESSAGES.items()) + ")")
    p.add_argument("--interval", type=positive_float, default=50.0,
                   help="interval: milliseconds between a client's requests (default %(default)s)")
    p.add_argument("--pipeline", type=positive_int, default=1,
                   help="pingpong: requests in flight per connection (default %(default)s)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="line protocol only: pad each request line to this many bytes, newline included")
    p.add_argument("--rate", type=positive_float, default=None,
                   help="rate: requests per second over all active connections")
    p.add_argument("--ramp", type=positive_float, default=None,
                   help="connections per second while connecting (default: all at once)")
    p.add_argument("--warmup", type=nonneg_float, default=0.0,
                   help="seconds at the start left out of latency and throughput")
    p.add_argument("--duration", type=positive_float, default=300.0,
                   help="seconds, then stop (default %(default)s)")
    p.add_argument("--count", type=positive_int, default=None,
                   help="requests per client (storm: connections per slot), then that client leaves")
    p.add_argument("--active", type=nonneg_int, default=None,
                   help="only clients 1..K run the pattern; the others connect and hold")
    p.add_argument("--at", type=_action, action="append", default=[], metavar="T:CLIENT:SEND",
                   help="scripted request: at T s client CLIENT sends SEND (repeatable)")
    p.add_argument("--plan", default=None, metavar="FILE_OR_JSON",
                   help='scripted requests as a JSON list of {"t": 2.0, "client": 1, "send": "CRASH"}')
    p.add_argument("--user", default=None, help="postgres: the user to log in as, trust auth (default lab)")
    p.add_argument("--database", default=None, help="postgres: the database (default lab)")
    p.add_argument("--http-host", default=None,
                   help="http: the Host header (default: the target's host, and its port unless 80)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes (default: half the CPUs, at least 1, at most one per client)")
    p.add_argument("--connect-timeout", type=positive_float, default=5.0,
                   help="seconds a client keeps retrying a refused or silent connect (default %(default)s)")
    p.add_argument("--max-connecting", type=positive_int, default=128,
                   help="connects in progress at once, per worker (default %(default)s)")
    p.add_argument("--timeline-per-conn", type=nonneg_int, default=2000,
                   help="timeline [send, reply] pairs kept per connection (default %(default)s)")
    p.add_argument("--timeline-max", type=nonneg_int, default=200_000,
                   help="timeline pairs kept in all (default %(default)s)")
    p.add_argument("--records-max", type=nonneg_int, default=20_000,
                   help="per-connection records kept (storm makes many; default %(default)s)")
    p.add_argument("--out", default=None, help="directory for results.json")
    p.add_argument("--replica", default=os.environ.get("IOLAB_REPLICA") or None, metavar="I/N",
                   help="one of N copies of this swarm (on other machines): run only clients I, I+N, "
                        "I+2N... of --clients, numbered as in the whole swarm; --active, --rate, --ramp "
                        "and --at stay the whole swarm's (default from IOLAB_REPLICA)")
    p.add_argument("--results-stdout", action="store_true",
                   help="also print results.json on stdout at the end, as `results` events (its gzip, "
                        "base64, in parts): for a reader that cannot reach the --out volume")
    p.add_argument("--fast-path", choices=("auto", "native", "python"), default="auto",
                   help="ping-pong's steady state: native (swarm/fastpath.c, built into the app image), "
                        "python (the same work in the Python loop), auto: native where built "
                        "(default %(default)s)")
    p.add_argument("--trace", choices=sorted(LEVELS), default=os.environ.get("LAB_TRACE", "msg"),
                   help="event level: off, conn or msg (default from LAB_TRACE, else msg)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(argv)
    if args.trace not in LEVELS:
        p.error(f"LAB_TRACE must be one of {', '.join(LEVELS)}")
    host, sep, port = args.target.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        p.error(f"--target must be host:port, got {args.target!r}")
    args.host, args.port = host, int(port)
    if args.pattern == "rate" and args.rate is None:
        p.error("--pattern rate needs --rate R (requests per second)")
    if args.active is None:
        args.active = args.clients
    if args.active > args.clients:
        p.error(f"--active {args.active} is more than --clients {args.clients}")
    if args.warmup >= args.duration:
        p.error(f"--warmup {args.warmup} leaves nothing of --duration {args.duration}")
    args.mine = _replica_share(p, args)
    if args.fast_path == "native" and fastpath.load() is None:
        p.error(f"--fast-path native: no {fastpath.LIBRARY.name} next to swarm/fastpath.py "
                f"(it is built into the app image); use auto or python")
    _protocol_args(p, args)
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
    args.actions = actions
    if args.out is not None:
        # find out now, not after a five-minute run, that the results have nowhere to go
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as exc:
            p.error(f"--out {args.out!r}: {exc.strerror}")
        if not os.access(args.out, os.W_OK | os.X_OK):
            p.error(f"--out {args.out!r} is not writable")
    return args


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


def print_results(trace: Trace, doc: dict[str, Any]) -> None:
    """results.json as `results` events: gzip, base64, cut in numbered parts."""
    data = base64.b64encode(gzip.compress(json.dumps(doc, separators=(",", ":")).encode())).decode()
    parts = [data[k:k + RESULTS_PART] for k in range(0, len(data), RESULTS_PART)]
    for k, part in enumerate(parts, 1):
        trace.event("results", part=k, of=len(parts), gz64=part)


def _protocol_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the protocol's own flags and the message; set ``args.codec``
    (what makes one connection's codec, None for the line protocol) and
    ``args.encode`` (request text -> bytes, None for the line protocol)."""
    proto = args.protocol
    if args.size is not None and proto != "line":
        p.error(f"--size pads line-protocol requests; it does not apply to --protocol {proto}")
    if proto != "postgres" and (args.user is not None or args.database is not None):
        p.error(f"--user and --database are for --protocol postgres, not {proto}")
    if proto != "http" and args.http_host is not None:
        p.error(f"--http-host is for --protocol http, not {proto}")
    options: dict[str, Any] = {}
    if proto == "postgres":
        args.user = "lab" if args.user is None else args.user
        args.database = "lab" if args.database is None else args.database
        options = {"user": args.user, "database": args.database}
    elif proto == "http":
        if args.http_host is None:
            host = f"[{args.host}]" if ":" in args.host else args.host
            args.http_host = host if args.port == 80 else f"{host}:{args.port}"
        if not args.http_host or any(ch in args.http_host for ch in "\r\n "):
            p.error(f"--http-host {args.http_host!r} is not a host name")
        options = {"host": args.http_host}
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
    }


# -- the environment ----------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def port_range() -> tuple[int, int] | None:
    text = _read("/proc/sys/net/ipv4/ip_local_port_range")
    try:
        low, high = (int(x) for x in (text or "").split())
    except ValueError:
        return None
    return low, high


def raise_nofile(need: int) -> dict[str, Any]:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows (it is
    inherited by the workers).  Returns the limits before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # nofile cannot be unlimited: the kernel's ceiling is fs.nr_open
        target = int(_read("/proc/sys/fs/nr_open") or 1 << 20)
    error = None
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            error = str(exc)
    new_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"nofile_soft_before": soft, "nofile_hard": hard if hard != resource.RLIM_INFINITY else None,
            "nofile_soft": new_soft, "nofile_needed_per_worker": need, "raise_error": error}


def environment() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "ip_local_port_range": port_range(),
        "pid": os.getpid(),
    }


def resolve(host: str, port: int, timeout: float) -> tuple[int, tuple[Any, ...]]:
    """getaddrinfo, retried for a while: a container's DNS name may appear
    a moment after the container starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            family, _, _, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
            return family, addr
        except socket.gaierror:
            if time.monotonic() + RESOLVE_PAUSE > deadline:
                raise
            time.sleep(RESOLVE_PAUSE)  # a bounded retry at run time, not a test's sync


# -- workers ------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def spawn(share: Share) -> tuple[int, int]:
    """Fork one worker; returns (pid, read end of its result pipe).

    The child reports on the pipe: optionally b"A\\n" (its active clients are
    done, it only holds), then b"R" + JSON (its WorkerReport) or b"E" + JSON (crash).
    It always leaves through os._exit, never back into the parent's code."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(w)
        return pid, r
    code = 1
    try:
        os.close(r)
        share.notify = lambda: _write_all(w, b"A\n")
        # The loop makes no reference cycles worth collecting; the cyclic GC
        # would only walk the connections over and over.  The process ends
        # after the run.
        gc.disable()
        # the stop signals stay blocked (as the parent left them around
        # fork) until the worker has its handlers: see Worker._signals
        report = Worker(share, Trace("swarm", share.trace_level)).run()
        _write_all(w, b"R" + json.dumps(report.to_json(), separators=(",", ":")).encode())
        code = 0
    except BaseException:
        try:
            _write_all(w, b"E" + json.dumps({"error": traceback.format_exc()}).encode())
        except BaseException:
            pass
    finally:
        os._exit(code)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}


class Workers:
    """The parent's side: wait for every report, forward stop signals, and
    end the hold-only workers once every active client is done."""

    def __init__(self, procs: list[tuple[int, int]], with_active: set[int], count_mode: bool) -> None:
        self.procs = procs
        self.buffers = {i: bytearray() for i in range(len(procs))}
        self.waiting_active = set(with_active) if count_mode else set()
        self.count_mode = count_mode and bool(with_active)
        self.running = set(range(len(procs)))
        self.released = False

    def stop_all(self, sig: int) -> None:
        for i in self.running:
            try:
                os.kill(self.procs[i][0], sig)
            except ProcessLookupError:
                pass

    def wait(self) -> tuple[list[WorkerReport], list[str]]:
        sel = selectors.DefaultSelector()
        for i, (_, fd) in enumerate(self.procs):
            sel.register(fd, selectors.EVENT_READ, i)
        while sel.get_map():
            for key, _ in sel.select():
                i = key.data
                chunk = os.read(key.fd, 1 << 20)
                buf = self.buffers[i]
                if chunk:
                    buf += chunk
                    if buf[:2] == b"A\n":
                        del buf[:2]
                        self.waiting_active.discard(i)
                    continue
                sel.unregister(key.fd)
                os.close(key.fd)
                self.running.discard(i)
                self.waiting_active.discard(i)
            if self.count_mode and not self.waiting_active and not self.released:
                self.released = True
                self.stop_all(signal.SIGUSR1)  # the rest only hold: the run is over
        sel.close()
        reports: list[WorkerReport] = []
        failures: list[str] = []
        for i, (pid, _) in enumerate(self.procs):
            _, status = os.waitpid(pid, 0)
            report = bytes(self.buffers[i])
            if report[:1] == b"R":
                reports.append(WorkerReport.from_json(json.loads(report[1:])))
            elif report[:1] == b"E":
                error = json.loads(report[1:])["error"]
                failures.append(f"worker {i} failed: {error.strip().splitlines()[-1]}")
                sys.stderr.write(error)
            else:
                failures.append(f"worker {i} (pid {pid}) died without a report "
                                f"({_status_text(status)}); its clients are missing from the results")
        return reports, failures


def _status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


# -- main ---------------------------------------------------------------------

def default_workers() -> int:
    """Half the CPUs this process may run on (at least one): the rest are
    left to the server, which usually shares the machine (see the top)."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"swarm: {message}\n")
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trace = Trace("swarm", args.trace)
    mine = args.mine
    n_workers = min(args.workers or default_workers(), len(mine))
    per_worker = math.ceil(len(mine) / n_workers)
    limits = raise_nofile(per_worker + FD_RESERVE)
    warnings: list[str] = []

    def warn(text: str) -> None:
        warnings.append(text)
        trace.event("warning", message=text)

    hard = limits["nofile_hard"]
    if hard is not None and per_worker + FD_RESERVE > hard:
        trace.event("error", kind="limits", detail="descriptors", **limits)
        fail(f"{args.clients} clients over {n_workers} workers need {per_worker + FD_RESERVE} descriptors "
             f"per worker, but the hard RLIMIT_NOFILE is {hard}: raise it (ulimit -Hn, compose "
             f"ulimits.nofile) or use more --workers", 2)
    if per_worker + FD_RESERVE > limits["nofile_soft"]:
        warn(f"only {limits['nofile_soft']} descriptors per worker (could not raise the soft limit: "
             f"{limits['raise_error']}); {per_worker} clients per worker will not all fit")
    ports = port_range()
    if ports and args.pattern != "storm" and args.clients > ports[1] - ports[0] + 1:
        warn(f"{args.clients} clients but only {ports[1] - ports[0] + 1} local ports "
             f"(net.ipv4.ip_local_port_range {ports[0]} {ports[1]}): the rest cannot connect")

    env = environment()
    env["nofile"] = {"soft": limits["nofile_soft"], "hard": limits["nofile_hard"]}
    config = config_of(args, n_workers)
    try:
        family, addr = resolve(args.host, args.port, args.connect_timeout)
        unresolved = None
    except socket.gaierror as exc:
        family, addr = socket.AF_INET, ("", 0)
        unresolved = f"cannot resolve {args.host!r} within {args.connect_timeout:g} s: {exc}"
    # The run's clock starts once the target is known, so a slow name
    # lookup does not eat into --duration.
    wall0 = time.time()
    t0 = time.monotonic()
    # One event is one write below PIPE_BUF, and Trace cuts longer ones to a
    # stub: a long plan is named by its size here (results.json has it all).
    scripted = [f"{a.t:g}:{a.client}:{a.send}" for a in args.actions]
    if sum(len(a) + 3 for a in scripted) > 1500:
        scripted = [f"{len(scripted)} scripted requests (see results.json)"]
    start_fields = dict(config, at=None, plan=None, actions=scripted)
    trace.event("start", wall=round(wall0, 6), **start_fields, **limits,
                python=env["python"], cpu_count=env["cpu_count"], hostname=env["hostname"])

    def finish(reports: list[WorkerReport], failures: list[str], actions: list[dict[str, Any]]) -> int:
        ended = max([t0] + [r.ended for r in reports]) if reports else time.monotonic()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        # The workers' own figures cover the run itself (the load they made);
        # the totals add the parent, whose start-up and merging come after.
        cpu = {
            "user_s": round(children.ru_utime + me.ru_utime, 3),
            "sys_s": round(children.ru_stime + me.ru_stime, 3),
            "workers_s": round(sum(r.cpu["user_s"] + r.cpu["sys_s"] for r in reports), 3),
            "measured_s": round(sum(r.cpu["measured_s"] for r in reports), 3),
            "parent": {"user_s": round(me.ru_utime, 3), "sys_s": round(me.ru_stime, 3)},
        }
        summary_failures = list(failures)
        doc = results.build(config=config, environment=env, workers=reports, failures=summary_failures,
                            warnings=warnings, t0=t0, wall0=wall0, ended=ended, wall_end=time.time(),
                            cpu=cpu, limits=limits, actions=actions)
        conns = doc["summary"]["connections"]
        if conns["failed"]:
            kinds = ", ".join(f"{k} x{n}" for k, n in doc["summary"]["errors"].items() if n)
            summary_failures.append(
                f"{conns['failed']} of {conns['attempted']} connections to {args.target} failed "
                f"within --connect-timeout {args.connect_timeout:g} s ({kinds})")
        doc["ok"] = not summary_failures
        doc["failures"] = summary_failures
        code = 0 if doc["ok"] else 1
        doc["exit_code"] = code
        path = results.write_atomic(args.out, doc) if args.out else None
        if args.results_stdout:
            print_results(trace, doc)
        s = doc["summary"]
        trace.event("done", ok=doc["ok"], end_reason=s["end_reason"], results=path,
                    duration_s=doc["duration_s"], connected=conns["connected"], failed=conns["failed"],
                    replies=s["replies"], replies_per_s=s["replies_per_s"],
                    latency=s["latency"], errors={k: n for k, n in s["errors"].items() if n},
                    cpu_s=doc["cpu"]["workers_s"], cpu_per_s=doc["cpu"]["per_s"], failures=doc["failures"])
        sys.stderr.write(results.human_line(doc) + "\n")
        return code

    if unresolved is not None:
        trace.event("error", kind="unreachable", phase="resolve", detail=unresolved)
        ours = [a for a in args.actions if a.client in set(mine)]
        for a in ours:
            a.outcome = "not-run"
        return finish([], [unresolved], [a.to_json() for a in ours])

    pattern = patterns.make(args.pattern, interval_ms=args.interval, depth=args.pipeline,
                            rate=args.rate, active=args.active)
    template, size, encode = args.message, args.size, args.encode
    if encode is None:
        def message(i: int) -> bytes:
            return patterns.message(template, i, size)
    else:
        def message(i: int) -> bytes:
            return encode(template.format(i=i))
    shares: list[Share] = []
    mine_of = [mine[w::n_workers] for w in range(n_workers)]
    for w, clients in enumerate(mine_of):
        part = len(clients) / args.clients
        shares.append(Share(
            worker=w, clients=clients, active=args.active, pattern=pattern,
            message=message, codec=args.codec, addr=addr, family=family,
            t0=t0, warm_end=t0 + args.warmup, t_end=t0 + args.duration, count=args.count,
            ramp=args.ramp, connect_timeout=args.connect_timeout, max_connecting=args.max_connecting,
            actions=[a for a in args.actions if a.client in clients],
            timeline_per_conn=args.timeline_per_conn,
            timeline_max=math.ceil(args.timeline_max * part),
            records_max=math.ceil(args.records_max * part), trace_level=args.trace,
            fast_path=args.fast_path != "python",
        ))
    with_active = {w for w, clients in enumerate(mine_of)
                   if pattern.sends and clients and clients[0] <= args.active}

    procs: list[tuple[int, int]] = []
    # Block the stop signals while forking: a child must not run the
    # parent's handler, and the parent must know every child it forwards to.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for share in shares:
            try:
                procs.append(spawn(share))
            except OSError:
                for pid, fd in procs:  # no half swarm: stop what started, then fail
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    os.close(fd)
                raise
        group = Workers(procs, with_active, args.count is not None)
        signal.signal(signal.SIGTERM, lambda *_: group.stop_all(signal.SIGTERM))
        signal.signal(signal.SIGINT, lambda *_: group.stop_all(signal.SIGTERM))
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    reports, failures = group.wait()
    return finish(reports, failures, [])


if __name__ == "__main__":
    sys.exit(main())
