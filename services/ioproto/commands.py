"""What a request asks a server to do, and how each answer reads.

A request is one line of text.  A line whose first word is one of the
commands below asks for that effect; any other line is echoed back.

    SLEEP ms   wait ms milliseconds the model's own way, then answer SLEPT ms
    BLOCK ms   make a real blocking call for ms milliseconds: BLOCKED ms
    WORK n     burn the CPU for n iterations:            WORKED n checksum
    INCR n     add 1 to a shared counter n times, racily: COUNT value
    RAISE      raise a Python exception in the handler (no answer)
    CRASH      kill whatever runs the handler, as a segfault would (no answer)
    STATS      answer with a JSON object: pid, threads, connections, ...

A command with a bad or missing argument is answered with "ERR ..." and the
connection stays open: that is the client's mistake, not a framing error.

This module is pure: it names effects, it never performs them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ECHO = "ECHO"
SLEEP = "SLEEP"
BLOCK = "BLOCK"
WORK = "WORK"
INCR = "INCR"
RAISE = "RAISE"
CRASH = "CRASH"
STATS = "STATS"
ERR = "ERR"

# Commands that take one integer argument, with its inclusive upper bound.
LIMITS: dict[str, int] = {
    SLEEP: 600_000,
    BLOCK: 600_000,
    WORK: 100_000_000,
    INCR: 1_000_000,
}
BARE = frozenset({RAISE, CRASH, STATS})
COMMANDS = frozenset(LIMITS) | BARE

# Replies to these are formatted from the argument and the effect's value.
_REPLY_WORD = {SLEEP: b"SLEPT", BLOCK: b"BLOCKED"}


@dataclass(slots=True)
class Request:
    """One parsed request: the operation, its integer argument, its text.

    ``text`` is the line as the client wrote it (without the newline); for
    ERR it is the reason the line was refused.  Treat it as a value: it is
    not frozen only because a frozen dataclass costs three times as much to
    make, once per request.
    """

    op: str
    arg: int = 0
    text: bytes = b""


def parse(line: bytes) -> Request:
    """Turn one request line (no newline) into a Request."""
    # Fast path: echo lines rarely start with an upper-case command word.
    if not line or not 65 <= line[0] <= 90:
        return Request(ECHO, 0, line)
    word, _, rest = line.partition(b" ")
    try:
        op = word.decode("ascii")
    except UnicodeDecodeError:
        return Request(ECHO, 0, line)
    if op not in COMMANDS:
        return Request(ECHO, 0, line)
    rest = rest.strip()
    if op in BARE:
        if rest:
            return Request(ERR, 0, b"%s takes no argument" % word)
        return Request(op, 0, line)
    if not rest.isdigit():
        return Request(ERR, 0, b"%s needs a whole number, got %r" % (word, rest[:32]))
    value = int(rest)
    if value > LIMITS[op]:
        return Request(ERR, 0, b"%s %d is over the limit of %d" % (word, value, LIMITS[op]))
    return Request(op, value, line)


def answer(request: Request, value: Any = None) -> bytes:
    """The reply line (no newline) for a request whose effect gave ``value``."""
    op = request.op
    if op == ECHO:
        return request.text
    if op in _REPLY_WORD:
        return b"%s %d" % (_REPLY_WORD[op], request.arg)
    if op == WORK:
        return b"WORKED %d %d" % (request.arg, value)
    if op == INCR:
        return b"COUNT %d" % value
    if op == STATS:
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    if op == ERR:
        return b"ERR " + request.text
    raise ValueError(f"{op} has no answer: its handler never returns")
