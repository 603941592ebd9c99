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

This module is the parent: flags.py checks the flags, host.py reads the
machine (descriptor limits, ports, the environment, the target's address).

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
import resource
import selectors
import signal
import socket
import time
import traceback
from typing import Any, NoReturn

from iorun import Trace

from swarm import flags, host, patterns, results
from swarm.conn import Share
from swarm.report import WorkerReport
from swarm.worker import Worker

FD_RESERVE = 32  # descriptors a worker needs besides its sockets (stdio, pipes, epoll)
RESULTS_PART = 3000  # base64 characters per `results` event: a line stays below the trace's 4000
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}


def main(argv: list[str] | None = None) -> int:
    args = flags.parse_args(argv)
    run = Run(args, Trace("swarm", args.trace))
    run.check_limits()
    target = run.resolve()
    run.begin()
    if target is None:
        return run.unreachable()
    shares = run.shares(*target)
    with_active = {s.worker for s in shares if (s.pattern.sends or s.slow_clients) and s.clients
                   and s.clients[0] <= args.active}
    reports, failures = fork_workers(shares, with_active, args.count is not None)
    return run.finish(reports, failures, [])


class Run:
    """The parent's side of one run: limits, the target, the start event,
    the workers' shares, and results.json at the end."""

    def __init__(self, args: argparse.Namespace, trace: Trace) -> None:
        self.args = args
        self.trace = trace
        self.n_workers = min(args.workers or default_workers(), len(args.mine))
        self.per_worker = math.ceil(len(args.mine) / self.n_workers)
        self.limits = host.raise_nofile(self.per_worker + FD_RESERVE)
        self.warnings: list[str] = []
        self.env: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.unresolved: str | None = None
        self.t0 = self.wall0 = 0.0

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.trace.event("warning", message=text)

    def check_limits(self) -> None:
        """Refuse (exit 2) what cannot fit the descriptor limit; warn of what may not fit."""
        args, limits, need = self.args, self.limits, self.per_worker + FD_RESERVE
        hard = limits["nofile_hard"]
        if hard is not None and need > hard:
            self.trace.event("error", kind="limits", detail="descriptors", **limits)
            fail(f"{args.clients} clients over {self.n_workers} workers need {need} descriptors "
                 f"per worker, but the hard RLIMIT_NOFILE is {hard}: raise it (ulimit -Hn, compose "
                 f"ulimits.nofile) or use more --workers", 2)
        if need > limits["nofile_soft"]:
            self.warn(f"only {limits['nofile_soft']} descriptors per worker (could not raise the soft limit: "
                      f"{limits['raise_error']}); {self.per_worker} clients per worker will not all fit")
        ports = host.port_range()
        if ports and args.pattern != "storm" and args.clients > ports[1] - ports[0] + 1:
            self.warn(f"{args.clients} clients but only {ports[1] - ports[0] + 1} local ports "
                      f"(net.ipv4.ip_local_port_range {ports[0]} {ports[1]}): the rest cannot connect")

    def resolve(self) -> tuple[int, tuple[Any, ...]] | None:
        """The target's (family, address), or None (``unresolved`` says why)."""
        args = self.args
        self.env = host.environment()
        self.env["nofile"] = {"soft": self.limits["nofile_soft"], "hard": self.limits["nofile_hard"]}
        self.config = flags.config_of(args, self.n_workers)
        try:
            return host.resolve(args.host, args.port, args.connect_timeout)
        except socket.gaierror as exc:
            self.unresolved = f"cannot resolve {args.host!r} within {args.connect_timeout:g} s: {exc}"
            return None

    def begin(self) -> None:
        """The run's clock starts once the target is known, so a slow name
        lookup does not eat into --duration."""
        self.wall0 = time.time()
        self.t0 = time.monotonic()
        # One event is one write below PIPE_BUF, and Trace cuts longer ones to a
        # stub: a long plan is named by its size here (results.json has it all).
        scripted = [f"{a.t:g}:{a.client}:{a.send}" for a in self.args.actions]
        if sum(len(a) + 3 for a in scripted) > 1500:
            scripted = [f"{len(scripted)} scripted requests (see results.json)"]
        env = self.env
        self.trace.event("start", wall=round(self.wall0, 6), **dict(self.config, at=None, plan=None, actions=scripted),
                         **self.limits, python=env["python"], cpu_count=env["cpu_count"], hostname=env["hostname"])

    def shares(self, family: int, addr: tuple[Any, ...]) -> list[Share]:
        """Each worker's share of this process's clients: every Nth."""
        args, n = self.args, self.n_workers
        pattern = patterns.make(args.pattern, interval_ms=args.interval, depth=args.pipeline,
                                rate=args.rate, active=args.active, pace_ms=args.pace or 0, piece=args.piece or 1)
        slow = patterns.make("slow", interval_ms=0, depth=1, rate=None, active=0, pace_ms=args.pace or 0,
                             piece=args.piece or 1) if args.slow_clients else None
        shares = []
        for w in range(n):
            clients = args.mine[w::n]
            part = len(clients) / args.clients
            shares.append(Share(
                worker=w, clients=clients, active=args.active, pattern=pattern,
                message=_message(args), codec=args.codec, addr=addr, family=family,
                t0=self.t0, warm_end=self.t0 + args.warmup, t_end=self.t0 + args.duration, count=args.count,
                ramp=args.ramp, connect_timeout=args.connect_timeout, max_connecting=args.max_connecting,
                actions=[a for a in args.actions if a.client in clients],
                timeline_per_conn=args.timeline_per_conn,
                timeline_max=math.ceil(args.timeline_max * part),
                records_max=math.ceil(args.records_max * part), trace_level=args.trace,
                fast_path=args.fast_path != "python", slow_clients=args.slow_clients, slow=slow,
            ))
        return shares

    def unreachable(self) -> int:
        """The target's name never resolved: results all the same, nothing run."""
        assert self.unresolved is not None
        self.trace.event("error", kind="unreachable", phase="resolve", detail=self.unresolved)
        ours = [a for a in self.args.actions if a.client in set(self.args.mine)]
        for a in ours:
            a.outcome = "not-run"
        return self.finish([], [self.unresolved], [a.to_json() for a in ours])

    def finish(self, reports: list[WorkerReport], failures: list[str], actions: list[dict[str, Any]]) -> int:
        """results.json from the workers' reports; the exit status."""
        args = self.args
        ended = max([self.t0] + [r.ended for r in reports]) if reports else time.monotonic()
        doc = results.build(config=self.config, environment=self.env, workers=reports, failures=list(failures),
                            warnings=self.warnings, t0=self.t0, wall0=self.wall0, ended=ended,
                            wall_end=time.time(), cpu=_cpu(reports), limits=self.limits, actions=actions)
        conns = doc["summary"]["connections"]
        if conns["failed"]:
            kinds = ", ".join(f"{k} x{n}" for k, n in doc["summary"]["errors"].items() if n)
            doc["failures"].append(f"{conns['failed']} of {conns['attempted']} connections to {args.target} "
                                   f"failed within --connect-timeout {args.connect_timeout:g} s ({kinds})")
        doc["ok"] = not doc["failures"]
        doc["exit_code"] = 0 if doc["ok"] else 1
        path = results.write_atomic(args.out, doc) if args.out else None
        if args.results_stdout:
            print_results(self.trace, doc)
        self._done(doc, path)
        sys.stderr.write(results.human_line(doc) + "\n")
        return int(doc["exit_code"])

    def _done(self, doc: dict[str, Any], path: str | None) -> None:
        s = doc["summary"]
        conns = s["connections"]
        self.trace.event("done", ok=doc["ok"], end_reason=s["end_reason"], results=path,
                         duration_s=doc["duration_s"], connected=conns["connected"], failed=conns["failed"],
                         replies=s["replies"], replies_per_s=s["replies_per_s"],
                         latency=s["latency"], errors={k: n for k, n in s["errors"].items() if n},
                         cpu_s=doc["cpu"]["workers_s"], cpu_per_s=doc["cpu"]["per_s"], failures=doc["failures"])


def _message(args: argparse.Namespace) -> Any:
    """Client number -> one request's bytes."""
    template, size, encode = args.message, args.size, args.encode
    if encode is None:
        return lambda i: patterns.message(template, i, size)
    return lambda i: encode(template.format(i=i))


def _cpu(reports: list[WorkerReport]) -> dict[str, Any]:
    """The workers' own figures cover the run itself (the load they made);
    the totals add the parent, whose start-up and merging come after."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "user_s": round(children.ru_utime + me.ru_utime, 3),
        "sys_s": round(children.ru_stime + me.ru_stime, 3),
        "workers_s": round(sum(r.cpu["user_s"] + r.cpu["sys_s"] for r in reports), 3),
        "measured_s": round(sum(r.cpu["measured_s"] for r in reports), 3),
        "parent": {"user_s": round(me.ru_utime, 3), "sys_s": round(me.ru_stime, 3)},
    }


def print_results(trace: Trace, doc: dict[str, Any]) -> None:
    """results.json as `results` events: gzip, base64, cut in numbered parts."""
    data = base64.b64encode(gzip.compress(json.dumps(doc, separators=(",", ":")).encode())).decode()
    parts = [data[k:k + RESULTS_PART] for k in range(0, len(data), RESULTS_PART)]
    for k, part in enumerate(parts, 1):
        trace.event("results", part=k, of=len(parts), gz64=part)


# -- workers ------------------------------------------------------------------

def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def spawn(share: Share) -> tuple[int, int]:
    """Fork one worker; returns (pid, read end of its result pipe).

    The child reports on the pipe: optionally b"A\\n" (its active clients are
    done, it only holds), then b"R" + JSON (its WorkerReport) or b"E" + JSON
    (crash).  It always leaves through os._exit, never back into the parent's code."""
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


def fork_workers(shares: list[Share], with_active: set[int],
                 count_mode: bool) -> tuple[list[WorkerReport], list[str]]:
    """Run a worker per share; their reports, and a line per worker that failed."""
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
        group = Workers(procs, with_active, count_mode)
        signal.signal(signal.SIGTERM, lambda *_: group.stop_all(signal.SIGTERM))
        signal.signal(signal.SIGINT, lambda *_: group.stop_all(signal.SIGTERM))
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    return group.wait()


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
        """Read every worker's pipe to its end, then reap them."""
        sel = selectors.DefaultSelector()
        for i, (_, fd) in enumerate(self.procs):
            sel.register(fd, selectors.EVENT_READ, i)
        while sel.get_map():
            for key, _ in sel.select():
                self._read(sel, key.fd, key.data)
            if self.count_mode and not self.waiting_active and not self.released:
                self.released = True
                self.stop_all(signal.SIGUSR1)  # the rest only hold: the run is over
        sel.close()
        return self._reports()

    def _read(self, sel: selectors.BaseSelector, fd: int, i: int) -> None:
        chunk = os.read(fd, 1 << 20)
        buf = self.buffers[i]
        if chunk:
            buf += chunk
            if buf[:2] == b"A\n":
                del buf[:2]
                self.waiting_active.discard(i)
            return
        sel.unregister(fd)
        os.close(fd)
        self.running.discard(i)
        self.waiting_active.discard(i)

    def _reports(self) -> tuple[list[WorkerReport], list[str]]:
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


def default_workers() -> int:
    """Half the CPUs this process may run on (at least one): the rest are
    left to the server, which usually shares the machine (see the top)."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"swarm: {message}\n")
    raise SystemExit(code)


if __name__ == "__main__":
    sys.exit(main())
