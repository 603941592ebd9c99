"""Carrying out what a request asks, the same way in every model.

SLEEP is missing on purpose: how to wait is the one thing each model does
its own way (a thread sleeps, an event loop arms a timer).  BLOCK is here
because it must be a real blocking call in every model: that is its point.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Any

from ioproto import BLOCK, CRASH, ECHO, INCR, RAISE, STATS, WORK, Request, answer


class HandlerError(RuntimeError):
    """What RAISE raises: an ordinary bug in one request's handler."""


class State:
    """What a server process knows about itself; STATS reports it."""

    def __init__(self, model: str, locked: bool = True) -> None:
        self.model = model
        self.connections = 0  # open now (in this process)
        self.accepted = 0  # since start (in this process)
        self.counter = 0  # the shared counter INCR races on
        self.counters: dict[str, int] = {}  # model-specific, e.g. wouldblock
        self._lock = threading.Lock()  # the bookkeeping must not race, unlike INCR
        if not locked:  # one thread (an event loop) counts: no lock to take per message
            self.count = self._count  # type: ignore[method-assign]

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def _count(self, name: str, n: int = 1) -> None:
        counters = self.counters
        counters[name] = counters.get(name, 0) + n

    def opened(self) -> None:
        with self._lock:
            self.connections += 1

    def closed(self) -> None:
        with self._lock:
            self.connections -= 1

    def stats(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "pid": os.getpid(),
            "threads": len(os.listdir("/proc/self/task")),
            "connections": self.connections,
            "accepted": self.accepted,
            "counter": self.counter,
            **self.counters,
        }


def perform(request: Request, state: State, on_crash: Any = None) -> bytes:
    """Do what ``request`` asks (SLEEP excepted) and return the reply line."""
    op = request.op
    if op == ECHO:  # the common case first
        return request.text
    if op == BLOCK:
        time.sleep(request.arg / 1000)  # holds this thread, whatever else it had to do
        return answer(request)
    if op == WORK:
        return answer(request, work(request.arg))
    if op == INCR:
        return answer(request, increment(state, request.arg))
    if op == STATS:
        return answer(request, state.stats())
    if op == RAISE:
        raise HandlerError("RAISE asked for an exception")
    if op == CRASH:
        if on_crash is not None:
            on_crash()
        crash()
    return answer(request)


def work(n: int) -> int:
    """CPU-bound: n rounds of integer arithmetic, holding the GIL throughout."""
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def increment(state: State, n: int) -> int:
    """Add 1 to the shared counter n times, without a lock.

    The read and the write are split by time.sleep(0), a call that lets other
    threads run, as any I/O between a read and a write would.  Threads lose
    updates here; a coroutine cannot, because it is never preempted between
    two awaits; each forked process has its own copy of the counter.
    """
    for _ in range(n):
        value = state.counter
        time.sleep(0)
        state.counter = value + 1
    return state.counter


def crash() -> None:
    """Die from a real SIGSEGV: read address 0.  Whatever runs the handler
    (the process) dies, with no Python cleanup, as a C extension bug would."""
    ctypes.string_at(0)
