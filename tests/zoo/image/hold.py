"""Hold K incomplete requests against a server and count its tasks (stdlib only).

Runs inside a client container that joins the server container's PID
namespace (``--pid container:SERVER``) on the same network, so /proc here
lists the server's processes (PID 1 is the server's docker-init, left out,
and so is this script).  For each K in --steps, cumulatively:

1. open connections until K are held, each having read the banner (when the
   server speaks first) and sent the INCOMPLETE request (--partial); a
   connection not made within 3 s (a full listen queue) ends the opening;
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
from typing import Callable


def tasks() -> dict:
    """The server's processes and threads: every process in this PID namespace
    but PID 1 (docker-init) and this one."""
    me, procs, threads, names, tnames = os.getpid(), 0, 0, {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            tids = os.listdir(f"/proc/{entry}/task")
            for tid in tids:
                if tid != entry:
                    with open(f"/proc/{entry}/task/{tid}/comm") as f:
                        t = f"{comm}/{f.read().strip()}"
                    tnames[t] = tnames.get(t, 0) + 1
        except OSError:  # gone meanwhile
            continue
        n = len(tids)
        procs += 1
        threads += n
        names[comm] = names.get(comm, 0) + 1
    return {"processes": procs, "threads": threads, "names": dict(sorted(names.items())),
            "other_threads": dict(sorted(tnames.items()))}


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


def read_some(sock: socket.socket, timeout: float, first: list | None = None) -> bytes:
    """Whatever arrives within ``timeout`` (stops early once something came
    and then nothing for 0.2 s); ``first`` gets the time the first byte came."""
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
        if not got and first is not None:
            first.append(time.monotonic())
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
        sent = time.monotonic()
        sock.sendall(args.request)
        first: list = []
        reply = read_some(sock, max(0.1, args.answer - (time.monotonic() - began)), first)
        # ms: from sending the request to the reply's first byte (or giving up)
        return {"answered": bool(reply), "ms": round(((first[0] if first else time.monotonic()) - sent) * 1000),
                "reply": reply[:80].decode("latin-1")}
    finally:
        sock.close()


def idle(args: argparse.Namespace) -> dict:
    """When the server closes (a) a connection holding the incomplete request
    and (b) one that got its reply and then says nothing."""
    deadline = time.monotonic() + 30
    while not probe(args).get("answered") and time.monotonic() < deadline:
        time.sleep(0.3)
    began = time.monotonic()
    partial = connect(args.host, args.port, 5)
    if args.banner:
        read_some(partial, 1.0)
    partial.sendall(args.partial)
    replied = connect(args.host, args.port, 5)
    if args.banner:
        read_some(replied, 1.0)
    replied.sendall(args.request)
    answer = read_some(replied, 2.0)
    open_ = {"partial": partial, "after_reply": replied}
    closed: dict = {"partial": None, "after_reply": None}
    while open_ and time.monotonic() - began < args.idle:
        ready, _, _ = select.select(list(open_.values()), [], [], 0.5)
        for key, sock in list(open_.items()):
            if sock in ready:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    closed[key] = round(time.monotonic() - began, 1)
                    del open_[key]
                    sock.close()
    for sock in open_.values():
        sock.close()
    return {"watched_s": args.idle, "closed_after_s": closed, "answered": bool(answer),
            "reply": answer[:200].decode("latin-1")}


def per_thread(name: str, read: Callable[[str], tuple[str, int]]) -> dict:
    """read(text of /proc/PID/task/TID/<name>) -> (comm, figure) for every
    thread of the server, by pid/tid/comm (not PID 1's, not this process's)."""
    me, found = os.getpid(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        try:
            for tid in os.listdir(f"/proc/{entry}/task"):
                with open(f"/proc/{entry}/task/{tid}/{name}") as f:
                    comm, figure = read(f.read())
                found[f"{entry}/{tid}/{comm}"] = figure
        except (OSError, ValueError, KeyError):
            continue
    return found


def _ticks(stat: str) -> tuple[str, int]:
    fields = stat[stat.rindex(")") + 2:].split()
    return stat[stat.index("(") + 1:stat.rindex(")")], int(fields[11]) + int(fields[12])


def _woken(text: str) -> tuple[str, int]:
    status = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return status["Name"].strip(), int(status["voluntary_ctxt_switches"])


def ticks() -> dict:
    """CPU ticks (user + system) of every thread of the server."""
    return per_thread("stat", _ticks)


def woken() -> dict:
    """Voluntary context switches of every thread of the server."""
    return per_thread("status", _woken)


def work(args: argparse.Namespace) -> dict:
    """Who does the work: 8 clients, each a fresh connection per request
    (connect, banner, request, first reply bytes, close), for --work seconds;
    then each server thread's CPU ticks meanwhile."""
    import threading
    deadline = time.monotonic() + 30
    while not probe(args).get("answered") and time.monotonic() < deadline:
        time.sleep(0.3)
    before, before_woken = ticks(), woken()
    done = [0]
    stop = time.monotonic() + args.work

    def client() -> None:
        while time.monotonic() < stop:
            try:
                with socket.create_connection((args.host, args.port), timeout=2) as sock:
                    if args.banner:
                        sock.recv(4096)
                    sock.sendall(args.request)
                    if sock.recv(65536):
                        done[0] += 1
            except OSError:
                time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after, after_woken = ticks(), woken()
    delta = {k: v - before.get(k, 0) for k, v in after.items()}
    busy = {k: v for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v > 0}
    woke = {k: v - before_woken.get(k, 0) for k, v in after_woken.items() if k in busy}
    return {"work_s": args.work, "replies": done[0], "ticks_by_thread": busy, "woken_by_thread": woke,
            "threads_seen": len(after)}


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
    p.add_argument("--idle", type=float, default=0.0,
                   help="instead of the steps: watch, at most this many seconds, when the server closes "
                        "a connection holding the incomplete request, and one idle after a reply")
    p.add_argument("--work", type=float, default=0.0,
                   help="instead of the steps: 8 clients load it this many seconds; CPU ticks by thread")
    args = p.parse_args()
    if args.work:
        print(json.dumps(work(args)))
        return
    if args.idle:
        print(json.dumps(idle(args)))
        return

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
        banners, failed = 0, None
        while len(held) < k:
            try:
                sock = connect(args.host, args.port, 3)
            except OSError as exc:  # a full listen queue drops the SYN: not connected within 3 s
                failed = f"connection {len(held) + 1}: {exc}"
                break
            if args.banner and read_some(sock, 1.0):
                banners += 1
            sock.sendall(args.partial)
            held.append(sock)
        table, settle = steady()
        step = {"k": k, "processes": table["processes"], "threads": table["threads"],
                "names": table["names"], "settle_s": settle, "connected": len(held)}
        if failed:
            step["connect_failed"] = failed
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
