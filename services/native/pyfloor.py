#!/usr/bin/env python3
"""iolab-pyfloor: the least a CPython ping-pong client can spend per reply.

The swarm is held to the native client (iolab-pingpong), but part of the gap
is CPython itself: a method call, a tuple per epoll event, an int per
figure.  This client does only what no Python load generator can skip (one
epoll loop, one clock read per turn, a read, a newline count, one latency
sample into a flat histogram, the refill) so `lab bench calibrate` can tell
the swarm's own bookkeeping apart from the interpreter's floor.

Same flags, same JSON on stdout and the same exit codes as iolab-pingpong
(see pingpong.c), so the bench runs either the same way.  Latency is timed
per turn: every reply a turn reads is stamped with the turn's clock, as the
swarm does.  With --pipeline above 1 a reply is timed from its connection's
last send, which is no latency figure: this client is a floor for CPU per
reply, not an instrument.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import resource
import select
import socket
import sys
from time import monotonic
from typing import NoReturn

HIST_US = 1 << 20  # a bucket per microsecond up to ~1 s; slower replies share the last one
KINDS = ("refused", "reset", "timeout", "eof", "unreachable", "other")
KIND_OF = {errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset", errno.EPIPE: "reset",
           errno.ETIMEDOUT: "timeout", errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable"}


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # one line and exit 2, as iolab-pingpong says a bad flag
        sys.stderr.write(f"iolab-pyfloor: error: {message}\n")
        raise SystemExit(2)


def parse(argv: list[str]) -> argparse.Namespace:
    p = Parser(prog="iolab-pyfloor")
    p.add_argument("--target", required=True, help="HOST:PORT")
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pipeline", type=int, default=1)
    p.add_argument("--connect-timeout", type=float, default=5.0)
    args = p.parse_args(argv)
    if args.warmup >= args.duration:
        p.error("--warmup leaves nothing of --duration")
    if args.connections < 1 or args.size < 2 or args.pipeline < 1:
        p.error("--connections and --pipeline must be at least 1, --size at least 2")
    host, sep, port = args.target.rpartition(":")
    if not sep or not port.isdigit():
        p.error("--target must be HOST:PORT")
    args.host, args.port = host.strip("[]"), int(port)
    return args


def percentile(hist: list[int], total: int, p: float) -> int:
    want = max(1, math.ceil(p / 100 * total - 1e-9))  # nearest rank
    seen = 0
    for us, n in enumerate(hist):
        seen += n
        if seen >= want:
            return us
    return len(hist) - 1


def main(argv: list[str]) -> int:
    a = parse(argv)
    try:
        addr = socket.getaddrinfo(a.host, a.port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        sys.stderr.write(f"iolab-pyfloor: cannot resolve {a.target}: {exc}\n")
        return 2
    errors = dict.fromkeys(KINDS, 0)
    t0 = monotonic()
    socks = connect_all(a, addr, t0, errors)
    connected = len(socks)
    hist, replies, lat_max, cpu_s = pingpong(a, socks, t0, errors)
    report(a, connected, hist, replies, lat_max, cpu_s, errors)
    return 0 if connected else 1


def connect_all(a: argparse.Namespace, addr: tuple, t0: float, errors: dict[str, int]) -> dict[int, socket.socket]:
    """Blocking connects: set-up, outside the measured window."""
    socks: dict[int, socket.socket] = {}
    for _ in range(a.connections):
        s = socket.socket(addr[0], socket.SOCK_STREAM)
        s.settimeout(max(0.001, t0 + a.connect_timeout - monotonic()))
        try:
            s.connect(addr[4])
        except OSError as exc:
            errors["timeout" if isinstance(exc, TimeoutError) else KIND_OF.get(exc.errno, "other")] += 1
            s.close()
            continue
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = s
    return socks


def first_sends(socks: dict[int, socket.socket], batch: bytes) -> tuple[select.epoll, dict[int, float]]:
    """Every connection watched, and its first batch sent: when."""
    sent_at: dict[int, float] = {}
    ep = select.epoll()
    for fd, s in socks.items():
        ep.register(fd, select.EPOLLIN)
        sent_at[fd] = monotonic()
        s.send(batch)
    return ep, sent_at


def pingpong(a: argparse.Namespace, socks: dict[int, socket.socket], t0: float,
             errors: dict[str, int]) -> tuple[list[int], int, int, tuple[float, float]]:
    """The measured loop, all of it inline (that is the floor): the
    histogram, replies, the highest latency, and (user, sys) CPU seconds
    after the warm-up."""
    line = (b"pingpong" + b"." * a.size)[: a.size - 1] + b"\n"
    batch = line * a.pipeline
    ep, sent_at = first_sends(socks, batch)
    hist = [0] * HIST_US
    top = HIST_US - 1
    buf = bytearray(65536)
    count, poll, get = buf.count, ep.poll, socks.get
    warm_end, t_end = t0 + a.warmup, t0 + a.duration
    replies = lat_max = 0
    ru0 = None
    while socks:
        now = monotonic()
        if ru0 is None and now >= warm_end:
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
        if now >= t_end:
            break
        for fd, _ in poll(t_end - now, 512):
            s = get(fd)
            try:
                n = s.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError as exc:
                n, kind = 0, KIND_OF.get(exc.errno, "other")
            else:
                kind = "eof"
            if not n:
                errors[kind] += 1
                ep.unregister(fd)
                del socks[fd]
                s.close()
                continue
            k = count(b"\n", 0, n)
            if k:
                replies += k
                us = int((now - sent_at[fd]) * 1e6)
                if ru0 is not None:
                    hist[us if us < top else top] += k
                    if us > lat_max:
                        lat_max = us
                sent_at[fd] = now
                s.send(batch if k == a.pipeline else line * k)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime) if ru0 is not None else (0.0, 0.0)
    return hist, replies, lat_max, cpu_s


def report(a: argparse.Namespace, connected: int, hist: list[int], replies: int, lat_max: int,
           cpu_s: tuple[float, float], errors: dict[str, int]) -> None:
    """iolab-pingpong's JSON, on stdout."""
    user, sys_s = cpu_s
    window = a.duration - a.warmup
    measured = sum(hist)  # every reply after the warm-up has its sample
    lat = {"count": measured, "max_us": lat_max}
    for name, p in (("p50_us", 50), ("p90_us", 90), ("p99_us", 99), ("p99_9_us", 99.9)):
        lat[name] = min(percentile(hist, measured, p), lat_max) if measured else 0
    json.dump({
        "tool": "iolab-pyfloor", "target": a.target, "connections": a.connections,
        "connected": connected,
        "pipeline": a.pipeline, "size": a.size, "duration_s": a.duration, "warmup_s": a.warmup,
        "window_s": round(window, 3), "replies": replies, "replies_measured": measured,
        "replies_per_s": round(measured / window, 1), "errors": errors,
        "cpu": {"user_s": round(user, 3), "sys_s": round(sys_s, 3), "cores": round((user + sys_s) / window, 3)},
        "cpu_us_per_reply": round((user + sys_s) * 1e6 / measured, 2) if measured else 0.0,
        "latency": lat}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
