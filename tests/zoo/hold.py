"""Hold K incomplete requests against a server and count its tasks (stdlib only).

Runs inside a client container that joins the server container's PID
namespace (``--pid container:SERVER``) on the same network, so /proc here
lists the server's processes (PID 1 is the server's docker-init, left out,
and so is this script).  For each K in --steps, cumulatively:

1. open connections until K are held, each having read the banner (when the
   server speaks first) and sent the INCOMPLETE request (--partial);
2. wait until the server's process table is steady (unchanged for 0.6 s,
   at most 4 s), and record its processes and threads;
3. on a fresh connection send the COMPLETE request (--request) and record
   whether any reply came within --answer seconds (after the banner, if any);
4. record how many of the held connections the server has closed.

Prints one JSON document on stdout.  Bytes arguments take Python escapes
(\\r\\n, \\x00).  Used by tests/zoo/verify.py; nothing here knows a server.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import time


def tasks() -> dict:
    """The server's processes and threads: every process in this PID namespace
    but PID 1 (docker-init) and this one."""
    me, procs, threads, names = os.getpid(), 0, 0, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            n = len(os.listdir(f"/proc/{entry}/task"))
        except OSError:  # gone meanwhile
            continue
        procs += 1
        threads += n
        names[comm] = names.get(comm, 0) + 1
    return {"processes": procs, "threads": threads, "names": dict(sorted(names.items()))}


def steady(limit: float = 4.0, quiet: float = 0.6) -> tuple[dict, float]:
    began = time.monotonic()
    last, since = tasks(), time.monotonic()
    while time.monotonic() - began < limit:
        time.sleep(0.1)
        now = tasks()
        if (now["processes"], now["threads"]) != (last["processes"], last["threads"]):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last, round(time.monotonic() - began, 2)


def read_some(sock: socket.socket, timeout: float) -> bytes:
    """Whatever arrives within ``timeout`` (stops early once something came and
    the line or the stream looks complete for a moment)."""
    got = b""
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return got
        ready, _, _ = select.select([sock], [], [], min(left, 0.2) if got else left)
        if not ready:
            if got:
                return got  # something came, then a pause: enough for a probe
            continue
        try:
            chunk = sock.recv(65536)
        except OSError:
            return got
        if not chunk:
            return got
        got += chunk


def connect(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setblocking(True)
    return sock


def is_closed(sock: socket.socket) -> bool:
    try:
        ready, _, _ = select.select([sock], [], [], 0)
        if not ready:
            return False
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except OSError:
        return True


def probe(args: argparse.Namespace) -> dict:
    began = time.monotonic()
    try:
        sock = connect(args.host, args.port, args.answer)
    except OSError as exc:
        return {"answered": False, "error": f"connect: {exc}"}
    try:
        banner = read_some(sock, args.answer) if args.banner else b""
        if args.banner and not banner:
            return {"answered": False, "banner": False, "ms": round((time.monotonic() - began) * 1000)}
        sock.sendall(args.request)
        reply = read_some(sock, max(0.1, args.answer - (time.monotonic() - began)))
        return {"answered": bool(reply), "ms": round((time.monotonic() - began) * 1000),
                "reply": reply[:80].decode("latin-1")}
    finally:
        sock.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    esc = lambda s: s.encode("latin-1").decode("unicode_escape").encode("latin-1")  # noqa: E731
    p.add_argument("--host", default="server")
    p.add_argument("--port", type=int, default=12345)
    p.add_argument("--partial", type=esc, required=True)
    p.add_argument("--request", type=esc, required=True)
    p.add_argument("--banner", action="store_true", help="the server speaks first")
    p.add_argument("--steps", default="1,2,4,8")
    p.add_argument("--answer", type=float, default=2.0, help="seconds a probe waits for a reply")
    p.add_argument("--linger", type=float, default=0.0, help="seconds to hold the last step before closing")
    args = p.parse_args()

    # Wait until it answers at all (a server still starting).
    deadline = time.monotonic() + 30
    first = probe(args)
    while not first.get("answered") and time.monotonic() < deadline:
        time.sleep(0.3)
        first = probe(args)
    doc: dict = {"ready": first}
    doc["baseline"], _ = steady()
    held: list[socket.socket] = []
    steps = []
    for k in (int(s) for s in args.steps.split(",")):
        banners = 0
        while len(held) < k:
            sock = connect(args.host, args.port, 5)
            if args.banner and read_some(sock, 1.0):
                banners += 1
            sock.sendall(args.partial)
            held.append(sock)
        table, settle = steady()
        step = {"k": k, "processes": table["processes"], "threads": table["threads"],
                "names": table["names"], "settle_s": settle}
        if args.banner:
            step["banners_new"] = banners
        step["probe"] = probe(args)
        step["held_closed_by_server"] = sum(is_closed(s) for s in held)
        steps.append(step)
    if args.linger:
        time.sleep(args.linger)
        doc["after_linger"] = {"s": args.linger, "held_closed_by_server": sum(is_closed(s) for s in held)}
    for s in held:
        s.close()
    doc["steps"] = steps
    doc["released"], _ = steady()
    doc["after_release"] = probe(args)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
