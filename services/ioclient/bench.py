"""How much a codec costs the swarm per read: python3 -m ioclient.bench

The common case on the swarm's fast path: one complete reply per recv(),
texts not kept.  The reference is what the swarm does today for the line
protocol, ``data.count(b"\\n")``, measured in the same run; rounds
alternate between the reference and each codec so that a busy machine
colours both alike.  Figures are the median round, in microseconds per
read, and the ratio to the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

from . import make

REPLIES: dict[str, bytes] = {
    "line": b"SLEPT 10\n",
    "http": b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 02:33:25 GMT\r\n"
            b"Content-Type: text/html\r\nContent-Length: 6\r\nConnection: keep-alive\r\n\r\nhello\n",
    "redis": b"+PONG\r\n",
    "memcached": b"VALUE k 0 5\r\nhello\r\nEND\r\n",
    "postgres": b"T\x00\x00\x00!\x00\x01?column?\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17"
                b"\x00\x04\xff\xff\xff\xff\x00\x00D\x00\x00\x00\x0b\x00\x01\x00\x00\x00\x011"
                b"C\x00\x00\x00\rSELECT 1\x00Z\x00\x00\x00\x05I",  # SELECT 1, from PostgreSQL 15
}
_STARTUP = b"R\x00\x00\x00\x08\x00\x00\x00\x00Z\x00\x00\x00\x05I"


def _round(fn: Callable[[bytes], object], data: bytes, reads: int) -> float:
    start = time.perf_counter()
    for _ in range(reads):
        fn(data)
    return (time.perf_counter() - start) / reads * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=20_000, help="reads per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{'codec':<10} {'reference us':>12} {'codec us':>9} {'ratio':>6}")
    for name, reply in REPLIES.items():
        codec = make(name, keep=False)
        if name == "postgres":
            codec.receive_data(_STARTUP)
        ref, mine = [], []
        for _ in range(args.rounds):
            ref.append(_round(bytes.count.__get__(reply), b"\n", args.reads))
            mine.append(_round(codec.receive_data, reply, args.reads))
        assert codec.replies_total == args.rounds * args.reads
        r, m = statistics.median(ref), statistics.median(mine)
        print(f"{name:<10} {r:>12.3f} {m:>9.3f} {m / r:>6.1f}")


if __name__ == "__main__":
    main()
