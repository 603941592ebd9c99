"""Run inside the app image (python3 -c, PYTHONPATH=/srv): the swarm's C fast
path (swarm/fastpath.c) against book.Ledger, reply by reply, over a
socketpair.  Prints one JSON object: what differed (nothing, if all is well)
and what each leftover case returned.  test_swarm_live.py reads it."""

import json
import select
import socket
import time
import types

from swarm import fastpath
from swarm.book import Ledger, Tally
from ioschema.hist import Histogram

MSG = b"x" * 63 + b"\n"
FAR = 1e12


def turn(loop):
    """One pass: the bytes are already in the socket, and a due "timer"
    (now) sends the C loop back at once instead of waiting for more."""
    return loop.turn(time.monotonic(), 0.0, FAR)


def conn(sock, left, room):
    lg = Ledger(Tally(10**6, 100), room)
    return types.SimpleNamespace(fd=sock.fileno(), ledger=lg, msgs=[b"", MSG], left=left, bytes_in=0)


def setup(left=1000, room=0):
    client, server = socket.socketpair()
    client.setblocking(False)
    ep = select.epoll()
    ep.register(client.fileno(), select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP)
    loop = fastpath.FastLoop(fastpath.load(), ep.fileno(), 128, 1 << 16)
    c, ref = conn(client, left, room), conn(client, left, room)
    for x in (c, ref):
        x.ledger.sent_batch(1.0, 1)
        x.left -= 1
        if room:
            x.ledger._reserve(room)  # as the engine's first reply would: C gets room it can fill
    loop.put(c)
    return loop, c, ref, client, server, ep


def fields(x):
    lg = x.ledger
    return {"t": lg.t, "n": lg.n, "sent": lg.sent, "lat_sum": lg.lat_sum, "lat_max": lg.lat_max,
            "first": lg.first, "last": lg.last, "tl": [list(p) for p in lg.tl], "tl_left": lg.tl_left,
            "left": x.left, "bytes_in": x.bytes_in}


def hist(h):
    return {"buckets": [list(b) for b in h.buckets()], "total": h.total, "sum": h.sum, "max": h.max, "min": h.min}


def steady():
    """Fifty replies, each refilled by C, booked as the Ledger books them."""
    loop, c, ref, client, server, _ep = setup(room=100)
    refills = 0
    for _ in range(50):
        server.sendall(MSG)
        assert turn(loop) == []
        refills += len(server.recv(4096)) // len(MSG)
        ref.ledger.replied(1, loop.now, True, True)
        ref.left -= 1
        ref.bytes_in += len(MSG)
    loop.take(c)
    mine = Histogram()
    loop.merge_into(mine)
    return {"refills": refills, "fields": [fields(c), fields(ref)],
            "hist": [hist(mine), hist(ref.ledger.hist)]}


def leftover(case):
    """One case C leaves to Python: the leftover's (code, argument)."""
    loop, c, _ref, client, server, _ep = setup(left=0 if case == "budget" else 1000,
                                               room=1 if case == "room" else 0)
    if case == "room":  # the first reply takes the one pair of room, the second finds none
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
    got = turn(loop)
    ((fd, word),) = got
    assert fd == client.fileno()
    loop.take(c)
    return [word >> 32, word & 0xFFFFFFFF, c.ledger.sent]


print(json.dumps({"steady": steady(),
                  "leftovers": {case: leftover(case) for case in ("two", "budget", "room", "short", "eof", "hangup")}}))
