"""A worker's timers: what is due when, each with the callback it fires.

A timer is a deadline and a callback taking the time it fires at.  One
that concerns a connection attempt is bound to it with ``partial(...,
conn, conn.gen)``: the callback itself checks that the attempt is still the
one it was armed for (a reconnect bumps ``gen``), so a stale timer does
nothing and nothing has to be cancelled.

Equal deadlines fire in the order they were set (a sequence number breaks
ties, so callbacks are never compared).
"""

from __future__ import annotations

import heapq
import math
from itertools import count
from typing import Callable

Fire = Callable[[float], None]


class Timers:
    """Deadlines (monotonic seconds) on a heap, earliest first.

    ``earliest`` is a plain attribute (inf when nothing is armed), kept up to
    date, so the loop can ask "is anything due?" once a turn without a call."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Fire]] = []
        self._seq = count()
        self.earliest = math.inf

    def at(self, due: float, fire: Fire) -> None:
        """Call ``fire(now)`` once ``now >= due``."""
        heapq.heappush(self._heap, (due, next(self._seq), fire))
        if due < self.earliest:
            self.earliest = due

    def next_due(self) -> float:
        """The earliest deadline; -1.0 when there is none (fastpath.c's "none")."""
        return self.earliest if self._heap else -1.0

    def pop_due(self, now: float) -> Fire | None:
        """The callback of the earliest deadline at or before ``now``, taken
        off the heap; None when nothing is due."""
        heap = self._heap
        if heap and heap[0][0] <= now:
            fire = heapq.heappop(heap)[2]
            self.earliest = heap[0][0] if heap else math.inf
            return fire
        return None
