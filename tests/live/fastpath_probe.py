"""The swarm's C fast path (swarm/fastpath.c) against book.Ledger, reply by
reply, over a socketpair, through its public Python face (fastpath.FastLoop)
and real Conns.  Runs inside the app image (python3 -c, PYTHONPATH=/srv:
test_swarm_live.py), where it prints one JSON object, and on the host with
a library the host's gcc built (tests/unit/test_swarm_fastpath.py); both
hold the result to ``check``."""

import json
import select
import socket
import time
from pathlib import Path
from typing import Any, Optional

from ioschema.hist import Histogram
from swarm import fastpath
from swarm.book import Ledger, Tally
from swarm.conn import Conn
from swarm.patterns import PingPong

MSG = b"x" * 63 + b"\n"
FAR = 1e12
CASES = ("two", "budget", "room", "short", "eof", "hangup")


def turn(loop: fastpath.FastLoop) -> list:
    """One pass: the bytes are already in the socket, and a due "timer"
    (now) sends the C loop back at once instead of waiting for more."""
    return loop.turn(time.monotonic(), 0.0, FAR)


def conn(sock: socket.socket, left: int, room: int) -> Conn:
    c = Conn(1, True, PingPong(1), MSG, [b"", MSG], left, 0.0, 0.0, Ledger(Tally(10**6, 100), room))
    c.fd = sock.fileno()
    return c


def setup(lib: Any, left: int = 1000, room: int = 0) -> tuple:
    """A connection handed to C after one request and its reply booked in
    Python (which reserves its timeline room), and its twin kept in Python."""
    client, server = socket.socketpair()
    client.setblocking(False)
    ep = select.epoll()
    ep.register(client.fileno(), select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP)
    loop = fastpath.FastLoop(lib, ep.fileno(), 128, 1 << 16)
    c, ref = conn(client, left, room), conn(client, left, room)
    for x in (c, ref):
        x.ledger.sent_batch(0.5, 1)
        x.ledger.replied(1, 1.0, True, refill=True)
        x.left -= 2
    loop.put(c)
    return loop, c, ref, client, server, ep


def fields(c: Conn) -> dict[str, Any]:
    lg = c.ledger
    return {"t": lg.t, "n": lg.n, "sent": lg.sent, "lat_sum": lg.lat_sum, "lat_max": lg.lat_max,
            "first": lg.first, "last": lg.last, "tl": [list(p) for p in lg.tl], "tl_left": lg.tl_left,
            "left": c.left, "bytes_in": c.bytes_in}


def hist(h: Histogram) -> dict[str, Any]:
    return {"buckets": [list(b) for b in h.buckets()], "total": h.total, "sum": h.sum, "max": h.max,
            "min": h.min, "clamped": h.clamped}


def steady(lib: Any) -> dict[str, Any]:
    """Fifty replies, each refilled by C, booked as the Ledger books them."""
    loop, c, ref, client, server, _ep = setup(lib, room=100)
    refills = 0
    for _ in range(50):
        server.sendall(MSG)
        assert turn(loop) == []
        refills += len(server.recv(4096)) // len(MSG)
        ref.ledger.replied(1, loop.now, True, True)
        ref.left -= 1
        ref.bytes_in += len(MSG)
    loop.take(c)
    c.ledger.hist.merge(loop.histogram())  # as the worker merges C's at its end
    return {"refills": refills, "fields": [fields(c), fields(ref)],
            "hist": [hist(c.ledger.hist), hist(ref.ledger.hist)]}


def leftover(lib: Any, case: str) -> list:
    """One case C leaves to Python: [kind, err, n, events, requests sent]."""
    loop, c, _ref, client, server, _ep = setup(lib, left=2 if case == "budget" else 1000,
                                               room=2 if case == "room" else 0)
    if case == "room":  # C's first reply takes the one pair of room left, the second finds none
        server.sendall(MSG)
        turn(loop)
        server.recv(4096)
    if case == "short":  # a send buffer already full: the refill is booked, its write takes nothing
        try:
            while True:
                client.send(b"y" * 65536)
        except BlockingIOError:
            pass
    if case == "eof":  # the peer's FIN: readable, and the read returns nothing
        server.shutdown(socket.SHUT_WR)
    elif case == "hangup":  # both ways shut: EPOLLHUP with EPOLLIN, a plain event for Python
        server.close()
    else:
        server.sendall(MSG * (2 if case == "two" else 1))
    (x,) = turn(loop)
    assert x.fd == client.fileno()
    got = [x.kind, x.err, x.n, x.events]
    loop.take(c)
    return got + [c.ledger.sent]


def run(path: Optional[Path] = None) -> dict[str, Any]:
    lib = fastpath.load(path)
    assert lib is not None, "no fast path library, or one of another histogram layout"
    return {"layout": list(fastpath.layout(lib)), "steady": steady(lib),
            "leftovers": {case: leftover(lib, case) for case in CASES}}


def check(got: dict[str, Any]) -> None:
    """What every build of the library must show."""
    steady = got["steady"]
    assert steady["refills"] == 50, steady  # each reply bought the next request, written by C
    mine, ledger = steady["fields"]
    assert mine == ledger and len(mine["tl"]) == 51 and mine["sent"] == 52, steady["fields"]
    assert steady["hist"][0] == steady["hist"][1] and steady["hist"][0]["total"] == 51, steady["hist"]
    lo = got["leftovers"]
    event, lost, replied, short = fastpath.EVENT, fastpath.LOST, fastpath.REPLIED, fastpath.SHORT
    readable = select.EPOLLIN
    # [kind, err, n, events, requests sent]: nothing booked, the replies handed over
    assert lo["two"] == [replied, 0, 2, readable, 2], lo  # more replies than requests in flight
    assert lo["budget"] == [replied, 0, 1, readable, 2], lo  # no budget left to refill
    assert lo["room"] == [replied, 0, 1, readable, 3], lo  # the timeline's room spent: Python reserves more
    assert lo["short"] == [short, 0, 0, readable, 3], lo  # booked and refilled; 0 bytes written, for Python to keep
    assert lo["eof"] == [lost, 0, 0, readable, 2], lo  # errno 0: end of file
    assert lo["hangup"] == [event, 0, 0, select.EPOLLIN | select.EPOLLHUP, 2], lo  # the event, for Python to read


if __name__ == "__main__":
    print(json.dumps(run()))
