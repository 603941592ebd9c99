"""The lab's server runtime: what every model shares that is not protocol.

``Server`` listens, accepts, traces and stops; ``perform`` carries out a
request's effect; ``serve_connection`` is the blocking per-connection loop
that blocking, threads, threadpool, forking and prefork all run.  Unlike the
protocol core (ioproto), this package does I/O.
"""

from .effects import HandlerError, State, perform
from .server import ACCEPT_BACKOFF, BACKOFF, BUFSIZE, Server, Shutdown, close_reason
from .stream import serve_connection
from .trace import Trace

__all__ = [
    "ACCEPT_BACKOFF", "BACKOFF", "BUFSIZE", "HandlerError", "Server", "Shutdown",
    "State", "Trace", "close_reason", "perform", "serve_connection",
]
