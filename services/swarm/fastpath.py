"""The native fast path (fastpath.c), through ctypes: Python's side of it.

The engine hands a connection to the C loop while its ledger is the simple
closed-loop case (``eligible``), takes it back before anything else touches
it (``take``: what changed, applied to the Conn and its Ledger), and merges
the C loop's histogram into its own at the end.  Without the library (a
swarm run from a checkout on a host, with nothing compiled) or with
``--fast-path python`` the engine runs its Python loop, which does the same
work per reply, only slower.

The library is built into the app image (services/Dockerfile) next to this
file; ``load`` finds it there.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ioschema.hist import SIZE, Histogram

if TYPE_CHECKING:
    from swarm.conn import Conn

LIBRARY = Path(__file__).with_name("libfastpath.so")
LOST, REPLIED, SHORT = 1, 2, 3  # leftover codes (fastpath.c)
FAILED = 1 << 31  # in a SHORT leftover's argument: the write failed, errno below


class Taken(ctypes.Structure):
    _fields_ = [("t", ctypes.c_double), ("first", ctypes.c_double), ("last", ctypes.c_double),
                ("n", ctypes.c_int64), ("left", ctypes.c_int64), ("sent", ctypes.c_int64),
                ("bytes_in", ctypes.c_int64), ("lat_sum", ctypes.c_int64), ("lat_max", ctypes.c_int64),
                ("tl_used", ctypes.c_int64)]


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i, i64, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "fp_new": (p, [i, i, i64, i64]),
        "fp_free": (None, [p]),
        "fp_put": (i, [p, i, d, i64, i64, ctypes.c_char_p, i64, i, i64]),
        "fp_take": (i, [p, i, ctypes.POINTER(Taken), p]),
        "fp_turn": (i, [p, d, d, d]),
        "fp_counts": (ctypes.POINTER(i64), [p]),
        "fp_totals": (None, [p, ctypes.POINTER(i64)]),
        "fp_now": (d, [p]),
        "fp_out": (ctypes.POINTER(i64), [p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def load() -> ctypes.CDLL | None:
    """The library, or None when it is not built here."""
    if not LIBRARY.is_file():
        return None
    try:
        return _bind(ctypes.PyDLL(str(LIBRARY), use_errno=True))  # PyDLL: keeps the GIL, no switch per call
    except (OSError, AttributeError):
        return None


class FastLoop:
    """One worker's C loop over its epoll set."""

    def __init__(self, lib: ctypes.CDLL, epfd: int, max_events: int, bufsize: int) -> None:
        self.lib = lib
        self.h = lib.fp_new(epfd, max_events, bufsize, SIZE)
        if not self.h:
            raise MemoryError("fastpath: fp_new")
        self.owned: dict[int, Conn] = {}
        self.room: dict[int, int] = {}  # fd -> timeline pairs it was given
        self._taken = Taken()
        self._out = lib.fp_out(self.h)
        self.now = 0.0

    def turn(self, until: float, warm_end: float, t_end: float) -> list[tuple[int, int]]:
        n = self.lib.fp_turn(self.h, until, warm_end, t_end)
        self.now = self.lib.fp_now(self.h)
        if n < 0:
            err = ctypes.get_errno() or 0
            raise OSError(err, f"fastpath: epoll_wait: {os.strerror(err)}")
        out = self._out
        return [(out[2 * j], out[2 * j + 1]) for j in range(n)]

    def put(self, c: Conn) -> None:
        lg = c.ledger
        room = lg.tl_left if lg.tl_on else 0
        req = c.msgs[lg.n]
        if self.lib.fp_put(self.h, c.fd, lg.t, lg.n, c.left, req, len(req), int(lg.tl_on), room) == 0:
            self.owned[c.fd] = c
            self.room[c.fd] = room

    def take(self, c: Conn) -> None:
        """Back to Python: what the C loop did to ``c`` since put, applied."""
        if self.owned.pop(c.fd, None) is None:
            return
        room = self.room.pop(c.fd)
        tl = (ctypes.c_double * (2 * room))() if room else None
        s = self._taken
        self.lib.fp_take(self.h, c.fd, ctypes.byref(s), tl)
        lg = c.ledger
        lg.t, lg.n = s.t, s.n
        lg.sent += s.sent
        lg.lat_sum += s.lat_sum
        if s.lat_max > lg.lat_max:
            lg.lat_max = s.lat_max
        if s.first >= 0 and lg.first is None:
            lg.first = s.first
        if s.last >= 0:
            lg.last = s.last
        if s.tl_used:
            assert tl is not None
            flat = tl[:2 * s.tl_used]
            lg.tl.extend(zip(flat[0::2], flat[1::2]))
            lg.tl_left -= s.tl_used
        c.left = s.left
        c.bytes_in += s.bytes_in

    def merge_into(self, hist: Histogram) -> None:
        """The C loop's measured replies, added to ``hist`` (exactly: same buckets)."""
        totals = (ctypes.c_int64 * 4)()
        self.lib.fp_totals(self.h, totals)
        total, total_sum, high, low = totals
        if not total:
            return
        counts = ctypes.cast(self.lib.fp_counts(self.h), ctypes.POINTER(ctypes.c_int64 * SIZE)).contents
        mine = hist.counts
        for i, v in enumerate(counts):
            if v:
                mine[i] += v
        hist.total += total
        hist.sum += total_sum
        hist.max = max(hist.max, high)
        hist.low = min(hist.low, low)

    def close(self) -> None:
        if self.h:
            self.lib.fp_free(self.h)
            self.h = None
