"""The native fast path (fastpath.c), through ctypes: Python's side of it.

The worker hands a connection to the C loop while its ledger is the simple
closed-loop case (``FastLoop.put``), and takes it back before anything else
touches it (``FastLoop.take``: fastpath.c's ``delta`` of what changed and
the timeline pairs it kept, which book.Ledger.apply and Conn.apply add in).
A turn of the C loop returns its *leftovers*, an array of ``Leftover``
structs: plain events for Python, and the cases C began and left (LOST,
REPLIED, SHORT).  At the end the C loop's histogram joins the worker's.

Without the library (a swarm run from a checkout on a host, with nothing
compiled), with a library whose histogram layout is not ioschema.hist's, or
with ``--fast-path python`` the worker runs its Python loop, which does the
same work per reply, only slower.

The library is built into the app image (services/Dockerfile) next to this
file; ``load`` finds it there (tests build one with the host's gcc).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ioschema import hist
from ioschema.hist import Histogram

if TYPE_CHECKING:
    from swarm.conn import Conn

LIBRARY = Path(__file__).with_name("libfastpath.so")
EVENT, LOST, REPLIED, SHORT = 0, 1, 2, 3  # a Leftover's kind (fastpath.c)


class Leftover(ctypes.Structure):
    """One socket's turn that Python finishes (fastpath.c's ``leftover``)."""

    _fields_ = [("fd", ctypes.c_int32), ("events", ctypes.c_uint32), ("kind", ctypes.c_int32),
                ("err", ctypes.c_int32), ("n", ctypes.c_int64)]


class Delta(ctypes.Structure):
    """What changed on a connection while C had it (book.Delta)."""

    _fields_ = [("t", ctypes.c_double), ("first", ctypes.c_double), ("last", ctypes.c_double),
                ("sent", ctypes.c_int64), ("bytes_in", ctypes.c_int64), ("lat_sum", ctypes.c_int64),
                ("lat_max", ctypes.c_int64), ("pairs", ctypes.c_int64)]


class Pair(ctypes.Structure):
    """One timeline pair C kept (book.Pair)."""

    _fields_ = [("sent", ctypes.c_double), ("reply", ctypes.c_double)]


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i, i64, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_double
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "fp_layout": (None, [ctypes.POINTER(i64)]),
        "fp_bucket_of": (i64, [i64]),
        "fp_new": (p, [i, i, i64]),
        "fp_free": (None, [p]),
        "fp_set_clock": (None, [p, d]),
        "fp_put": (i, [p, i, d, i64, i64, ctypes.c_char_p, i64, i, i64]),
        "fp_take": (i, [p, i, ctypes.POINTER(Delta), ctypes.POINTER(Pair)]),
        "fp_turn": (i, [p, d, d, d]),
        "fp_counts": (ctypes.POINTER(i64), [p]),
        "fp_totals": (None, [p, ctypes.POINTER(i64)]),
        "fp_now": (d, [p]),
        "fp_out": (ctypes.POINTER(Leftover), [p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def layout(lib: ctypes.CDLL) -> tuple[int, int, int]:
    """The library's histogram layout: SUB_BITS, HALF_BITS, SIZE."""
    out = (ctypes.c_int64 * 3)()
    lib.fp_layout(out)
    return out[0], out[1], out[2]


def load(path: Path | None = None) -> ctypes.CDLL | None:
    """The library (at ``path``, default LIBRARY), or None when it is not
    built there or keeps another histogram layout than ioschema.hist."""
    path = path or LIBRARY
    if not path.is_file():
        return None
    try:
        lib = _bind(ctypes.PyDLL(str(path), use_errno=True))  # PyDLL: keeps the GIL, no switch per call
    except (OSError, AttributeError):
        return None
    if layout(lib) != (hist.SUB_BITS, hist.HALF_BITS, hist.SIZE):
        return None  # built from another ioschema: its figures would not merge with ours
    return lib


class FastLoop:
    """One worker's C loop over its epoll set."""

    def __init__(self, lib: ctypes.CDLL, epfd: int, max_events: int, bufsize: int,
                 clock: Callable[[], float] | None = None) -> None:
        """``clock``: the worker's injected clock (a test's), which C then reads
        too (fastpath.c's fp_set_clock); None: both read CLOCK_MONOTONIC."""
        self.lib = lib
        self.clock = clock
        self.h = lib.fp_new(epfd, max_events, bufsize)
        if not self.h:
            raise MemoryError("fastpath: fp_new")
        self.owned: dict[int, Conn] = {}
        self.room: dict[int, int] = {}  # fd -> timeline pairs it was given
        self._delta = Delta()
        self._out = lib.fp_out(self.h)
        self.now = 0.0

    def turn(self, until: float, warm_end: float, t_end: float) -> list[Leftover]:
        """Turns of the C loop until something is left for Python (or
        ``until``, the next timer, < 0: none); ``now`` is its last clock."""
        if self.clock is not None:
            self.lib.fp_set_clock(self.h, self.clock())
        n = self.lib.fp_turn(self.h, until, warm_end, t_end)
        self.now = self.lib.fp_now(self.h)
        if n < 0:
            err = ctypes.get_errno() or 0
            raise OSError(err, f"fastpath: epoll_wait: {os.strerror(err)}")
        left: list[Leftover] = self._out[:n]  # views of C's array: read before the next turn
        return left

    def put(self, c: Conn) -> None:
        """C carries ``c`` from now on (if it has the memory for it)."""
        lg = c.ledger
        room = lg.tl_left if lg.tl_on else 0
        req = c.msgs[lg.n]
        if self.lib.fp_put(self.h, c.fd, lg.t, lg.n, c.left, req, len(req), int(lg.tl_on), room) == 0:
            self.owned[c.fd] = c
            self.room[c.fd] = room

    def take(self, c: Conn) -> None:
        """Back to Python: what C did to ``c`` since ``put``, added in."""
        if self.owned.pop(c.fd, None) is None:
            return
        pairs = (Pair * self.room.pop(c.fd))()
        d = self._delta
        self.lib.fp_take(self.h, c.fd, ctypes.byref(d), pairs)
        c.apply(d, pairs)

    def histogram(self) -> Histogram:
        """The replies C measured, as a histogram of the same layout."""
        totals = (ctypes.c_int64 * 5)()
        self.lib.fp_totals(self.h, totals)
        total, total_sum, high, low, clamped = totals
        counts = ctypes.cast(self.lib.fp_counts(self.h), ctypes.POINTER(ctypes.c_int64 * hist.SIZE)).contents
        return Histogram.from_counts(counts, total, total_sum, low, high, clamped)

    def close(self) -> None:
        if self.h:
            self.lib.fp_free(self.h)
            self.h = None
