"""The table of a worker's connections: which connection a descriptor and a
client are, which are on the fast path, and what epoll watches for each."""

from __future__ import annotations

import select
from typing import Protocol

from swarm import fastpath
from swarm.conn import OPEN, Conn

IN = select.EPOLLIN
IN_EVENTS = select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP
OUT = select.EPOLLOUT


class Poller(Protocol):
    """What the worker asks of epoll (select.epoll is one)."""

    def register(self, fd: int, eventmask: int) -> None: ...
    def modify(self, fd: int, eventmask: int) -> None: ...
    def unregister(self, fd: int) -> None: ...
    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]: ...
    def fileno(self) -> int: ...
    def close(self) -> None: ...


class Table:
    """Which connection a descriptor and a client are, which ones are on
    the fast path, and what epoll watches for each."""

    def __init__(self, poller: Poller, native: fastpath.FastLoop | None) -> None:
        self.poller = poller
        self.native = native
        self.by_fd: dict[int, Conn] = {}  # connecting or open
        self.fast: dict[int, Conn] = {}  # open, on the fast path
        self.by_client: dict[int, Conn] = {}  # each client's current connection
        self.unfinished: set[Conn] = set()  # connecting, retrying or open

    def connecting(self, c: Conn) -> None:
        """A socket whose connect is under way: EPOLLOUT says how it went."""
        self.by_fd[c.fd] = c
        self.poller.register(c.fd, OUT)

    def forget(self, c: Conn) -> None:
        """The socket is about to close: epoll must forget it first."""
        self.by_fd.pop(c.fd, None)
        self.fast.pop(c.fd, None)
        try:
            self.poller.unregister(c.fd)
        except OSError:
            pass

    def settle(self, c: Conn) -> None:
        """Put an open connection on the fast path, or take it off, and
        watch EPOLLOUT exactly while something waits to be written."""
        if c.state != OPEN:
            return
        waiting = bool(c.out or c.owed)
        if waiting or c.slow or c.codec is not None:
            if self.native is not None:
                self.native.take(c)
            self.fast.pop(c.fd, None)
        else:
            self.fast[c.fd] = c
        self.poller.modify(c.fd, IN_EVENTS | OUT if waiting else IN_EVENTS)
