"""What every model does the same way: listen, accept, log, stop.

A model builds one Server, which owns the listening socket, the trace and
the State, then runs its own loop.  Only that loop differs between models.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
import time
from typing import Any, Callable

from . import options
from .effects import State
from .trace import Trace

# accept(2) failures that mean "out of descriptors or memory", not "broken":
# log them, stop accepting for a moment, go on (as trio's serve_listeners does).
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_BACKOFF = 0.1  # seconds to wait before accepting again after one
# The peer went away between the handshake and accept(2), or accept(2) passed
# on a pending network error (Linux does; see accept(2)): skip it, go on.
GONE_ERRORS = frozenset({
    errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.ENOPROTOOPT,
    errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH, errno.EOPNOTSUPP, errno.ENETUNREACH,
})

# A SIGTERM that lands after Python's last check for signals and before a
# blocking accept(2) starts only sets a flag; Python's handler (Shutdown)
# runs when the main thread next runs bytecode.  So a blocking listener wakes
# this often to let it: a stop is never more than this late.
SIGNAL_CHECK = 1.0

BACKOFF = object()  # accept() result: resources exhausted, wait ACCEPT_BACKOFF
BUFSIZE = 65536


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM or SIGINT: stop gracefully."""


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def somaxconn() -> int | None:
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def nofile() -> tuple[int, int]:
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)


class Server:
    def __init__(self, model: str, description: str, argv: list[str] | None = None,
                 workers: int | None = None, autoflush: bool = True) -> None:
        """``autoflush=False`` is for an event loop in one thread: its trace
        is buffered and flushed once a loop turn, its counters take no lock."""
        self.model = model
        self.args = options.parse(model, description, argv, workers)
        self.trace = Trace(model, self.args.trace, autoflush=autoflush)
        self.state = State(model, locked=autoflush)
        self.sock: socket.socket | None = None
        self._wake: tuple[int, int] | None = None

    def listen(self, blocking: bool = True) -> socket.socket:
        """Bind and listen; the start event records the settings in force."""
        args = self.args
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(args.backlog)
        sock.settimeout(SIGNAL_CHECK if blocking else 0.0)
        self.sock = sock
        soft, hard = nofile()
        self.trace.event(
            "start", host=args.host, port=sock.getsockname()[1], backlog=args.backlog,
            somaxconn=somaxconn(), nofile=soft, nofile_hard=hard,
            workers=getattr(args, "workers", None), trace=args.trace,
            python=sys.version.split()[0], wall=round(time.time(), 6),
        )
        return sock

    def waker(self) -> int:
        """A descriptor for an event loop to watch beside its clients.

        Python runs a signal's handler between bytecodes, so a SIGTERM that
        lands just before select/poll/epoll starts would wait with it, maybe
        for ever.  The C-level handler also writes a byte here: the wait
        returns at once, and the handler (Shutdown) runs.  The loop need only
        call ``woken()`` if it is ever reported.
        """
        if self._wake is None:
            self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(self._wake[1], warn_on_full_buffer=False)
        return self._wake[0]

    def woken(self) -> None:
        """Empty the waker: a signal whose handler did not stop the loop."""
        assert self._wake is not None
        try:
            while os.read(self._wake[0], 4096):
                pass
        except BlockingIOError:
            pass

    def accept(self) -> tuple[socket.socket, str] | None | object:
        """One accept(2): (sock, peer), None if nothing was there, or BACKOFF."""
        assert self.sock is not None
        try:
            sock, addr = self.sock.accept()
        except BlockingIOError:  # a non-blocking listener with nothing queued
            self.state.count("wouldblock")
            return None
        except TimeoutError:  # a blocking listener's quiet second (SIGNAL_CHECK)
            return None
        except OSError as exc:
            if exc.errno in RESOURCE_ERRORS:
                self.trace.event("error", kind="accept", errno=errno.errorcode[exc.errno],
                                 detail=str(exc), backoff=ACCEPT_BACKOFF)
                return BACKOFF
            if exc.errno in GONE_ERRORS:
                return None
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = f"{addr[0]}:{addr[1]}"
        self.state.accepted += 1  # only the accepting thread writes it
        self.trace.conn("accept", peer)
        return sock, peer

    def run(self, loop: Callable[[], None]) -> None:
        """Run the model's loop until SIGTERM/SIGINT, then stop cleanly."""
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._shutdown)
        reason = "return"
        try:
            loop()
        except Shutdown as exc:
            reason = str(exc)
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # a second one must not cut the stop event
            if self.sock is not None:
                self.sock.close()
            if self._wake is not None:
                signal.set_wakeup_fd(-1)
                for fd in self._wake:
                    os.close(fd)
            self.trace.event("stop", reason=reason, accepted=self.state.accepted)
            self.trace.flush()

    def _shutdown(self, signum: int, _frame: Any) -> None:
        # Not in the middle of a trace flush: that would lose or repeat lines.
        self.trace.interrupt(Shutdown(signal.Signals(signum).name))


def close_reason(exc: BaseException) -> str:
    """A short name for why a connection ended with an exception."""
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken-pipe"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return errno.errorcode.get(exc.errno, str(exc.errno)).lower()
    return type(exc).__name__
