"""What every model does the same way: listen, accept, log, stop.

A model builds one Server, which owns the listening socket, the trace and
the State, then runs its own loop.  Only that loop differs between models.
"""

from __future__ import annotations

import errno
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


def _raise_shutdown(signum: int, _frame: Any) -> None:
    raise Shutdown(signal.Signals(signum).name)


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
        self.model = model
        self.args = options.parse(model, description, argv, workers)
        self.trace = Trace(model, self.args.trace, autoflush=autoflush)
        self.state = State(model)
        self.sock: socket.socket | None = None

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
        signal.signal(signal.SIGTERM, _raise_shutdown)
        signal.signal(signal.SIGINT, _raise_shutdown)
        reason = "return"
        try:
            loop()
        except Shutdown as exc:
            reason = str(exc)
        finally:
            if self.sock is not None:
                self.sock.close()
            self.trace.event("stop", reason=reason, accepted=self.state.accepted)
            self.trace.flush()


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
