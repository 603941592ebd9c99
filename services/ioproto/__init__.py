"""The lab's protocol core: sans-I/O, shared by every server model and the swarm.

Nothing here touches a socket, a clock, a thread or a logger.  Bytes go in,
events come out; replies go in, bytes come out.  Because every model drives
this same core, two servers differ only in how they move bytes: their I/O
model.  (The shape follows h11: ``receive_data``, ``next_event``, ``send``.)
"""

from .client import LineClient, ProtocolViolation
from .commands import (
    BLOCK, COMMANDS, CRASH, ECHO, ERR, INCR, RAISE, SLEEP, STATS, WORK,
    Request, answer, parse,
)
from .connection import MAX_HEAD, MAX_LINE, NEED_DATA, Close, Reject, ServerConnection

__all__ = [
    "BLOCK", "COMMANDS", "CRASH", "ECHO", "ERR", "INCR", "RAISE", "SLEEP", "STATS", "WORK",
    "Close", "LineClient", "MAX_HEAD", "MAX_LINE", "NEED_DATA", "ProtocolViolation",
    "Reject", "Request", "ServerConnection", "answer", "parse",
]
