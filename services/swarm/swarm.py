"""swarm: the lab's client fan-out (first cut: the classic interval pattern).

Each client connects to --target, sends its own message ("client 3") every
--interval ms and reads the reply, until --duration seconds have passed.
Events go to stdout as JSON lines, like the servers'; results go to
--out/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket
import sys
import time

from ioproto import LineClient
from iorun import Trace

RETRY_FOR = 10.0  # seconds to keep retrying a refused or unreachable target


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="swarm", description=__doc__)
    p.add_argument("--target", default="server:12345", help="host:port of the server")
    p.add_argument("--clients", type=int, default=3)
    p.add_argument("--interval", type=float, default=50, help="ms between a client's messages")
    p.add_argument("--duration", type=float, default=300, help="seconds, then stop")
    p.add_argument("--message", default="client {i}", help="message template; {i} is the client number")
    p.add_argument("--out", default=None, help="directory for results.json")
    p.add_argument("--trace", default=os.environ.get("LAB_TRACE", "msg"), choices=["off", "conn", "msg"])
    args = p.parse_args(argv)
    if args.clients < 1 or args.interval <= 0 or args.duration <= 0:
        p.error("--clients, --interval and --duration must be positive")
    host, _, port = args.target.rpartition(":")
    if not host or not port.isdigit():
        p.error("--target must be host:port")
    args.addr = (host, int(port))
    return args


def connect(addr: tuple[str, int], trace: Trace) -> socket.socket:
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return socket.create_connection(addr, timeout=5)
        except OSError as exc:
            if time.monotonic() > deadline:
                trace.event("error", kind="connect", detail=str(exc))
                raise SystemExit(f"swarm: cannot reach {addr[0]}:{addr[1]}: {exc}")
            time.sleep(0.2)  # bounded retry while the server comes up


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trace = Trace("swarm", args.trace)
    trace.event("start", target=args.target, clients=args.clients, interval=args.interval,
                duration=args.duration, wall=round(time.time(), 6))
    sel = selectors.DefaultSelector()
    clients = []
    for i in range(1, args.clients + 1):
        sock = connect(args.addr, trace)
        sock.setblocking(False)
        name = "%s:%d" % sock.getsockname()
        info = {"client": i, "conn": name, "message": args.message.format(i=i).encode(),
                "proto": LineClient(), "next": time.monotonic(), "sent": 0, "replies": 0,
                "errors": 0, "sock": sock, "first_reply": None}
        trace.conn("connect", name, client=i)
        sel.register(sock, selectors.EVENT_READ, info)
        clients.append(info)
    end = time.monotonic() + args.duration
    step = args.interval / 1000
    while time.monotonic() < end and sel.get_map():
        now = time.monotonic()
        for c in clients:
            if c["sock"] is not None and now >= c["next"]:
                c["sock"].sendall(c["proto"].request(c["message"]))
                c["sent"] += 1
                c["next"] += step
        timeout = max(0.0, min([c["next"] for c in clients if c["sock"]] + [end]) - time.monotonic())
        for key, _ in sel.select(timeout):
            c = key.data
            try:
                data = c["sock"].recv(65536)
            except OSError:
                data = b""
            c["proto"].receive_data(data)
            for reply in c["proto"].replies():
                c["replies"] += 1
                c["first_reply"] = c["first_reply"] or time.monotonic()
                trace.msg("reply", c["conn"], reply, client=c["client"])
            if not data:
                trace.conn("close", c["conn"], client=c["client"], reason="eof")
                sel.unregister(c["sock"])
                c["sock"].close()
                c["sock"] = None
    summary = [{k: c[k] for k in ("client", "conn", "sent", "replies", "first_reply")} for c in clients]
    trace.event("done", replies=sum(c["replies"] for c in clients), sent=sum(c["sent"] for c in clients))
    if args.out:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump({"schema": "iolab.swarm/0", "clients": summary}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
