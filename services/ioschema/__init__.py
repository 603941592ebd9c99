"""What the lab (on the host) and the images (servers, client swarm) share.

One definition of each name both sides use, installed on the host with the
lab (pyproject.toml maps this folder) and present in every image (the app
image's PYTHONPATH is /srv, a copy of services/), so nothing is copied and
nothing is loaded by file path:

    DEFAULT_PORT    the port every server listens on, as in the article
    PATTERNS        the client swarm's patterns (swarm.py --pattern)
    PROTOCOLS       what the swarm's clients speak (swarm.py --protocol)
    ERROR_KINDS     how a swarm connection can fail (results.json `close`, `errors`)
    END_REASONS     why a swarm run ended, most telling first
    CLOSE_REASONS   why a swarm connection ended (results.json `close`)
    ACTION_OUTCOMES what came of a scripted request (results.json `actions[].outcome`)
    TRACE_LEVELS    what the trace keeps (--trace), least first
    FAST_PATHS      what ran a swarm worker's ping-pong: C (native) or Python
    EVENTS          the trace events' names: SERVER_EVENTS and SWARM_EVENTS
    *_SCHEMA        the names of the documents the lab writes and reads
    hist            the latency histogram (HdrHistogram bucketing), merged on both sides
    schemas         JSON Schemas of the swarm's results.json and of a trace event

Pure data and pure functions: no sockets, no I/O, importable anywhere.
"""

from __future__ import annotations

DEFAULT_PORT = 12345  # the article's example port

PATTERNS = ("interval", "pingpong", "rate", "hold", "storm", "slow")
PROTOCOLS = ("line", "http", "redis", "memcached", "postgres")  # "line", the lab's own, is the default

# A connection's end that is a failure (the others: the server closed it, the
# run ended, the client was done).  Order: as results.json lists them.
ERROR_KINDS = ("refused", "refused-by-server", "reset", "timeout", "eof", "unreachable", "other")

# A run ends for one reason; when workers (or replicas) disagree, the first of
# these that any of them gives says the most (a plain deadline says least).
END_REASONS = ("signal", "count", "all-closed", "duration")

# A connection ends by an error, by the run's end, by its own budget
# ("count"; storm's one request: "done"), or never connects.
CLOSE_REASONS = ERROR_KINDS + END_REASONS + ("done", "connect-failed", "stopped-connecting")

# A scripted request's reply came, its connection ended first (an error
# kind), or it never got to go.
ACTION_OUTCOMES = ("reply",) + ERROR_KINDS + ("pending", "not-connected", "not-run")

TRACE_LEVELS = ("off", "conn", "msg")  # off: start, stop, errors; conn: + connections; msg: + every message

FAST_PATHS = ("native", "python")  # swarm/fastpath.c, or the same work in Python

# Every server writes these (iorun/trace.py, native/echo.c); the swarm its own.
SERVER_EVENTS = ("start", "accept", "recv", "send", "close", "fork", "child-exit", "worker-start",
                 "worker-exit", "error", "crash", "stop")
SWARM_EVENTS = ("start", "connect", "ready", "reply", "action", "error", "close", "warning", "done", "results")
EVENTS = tuple(dict.fromkeys(SERVER_EVENTS + SWARM_EVENTS))

SWARM_SCHEMA = "iolab.swarm/1"  # the client swarm's results.json (services/swarm/SCHEMA.md)
COMPARE_SCHEMA = "iolab.compare/2"  # lab compare's results.json (lab/report/SCHEMA.md)
COMPARE_SCHEMAS = ("iolab.compare/1", COMPARE_SCHEMA)  # what lab report still reads
CHECKS_SCHEMA = "iolab.checks/1"  # checks.json of lab check and lab compare --checks

__all__ = ["ACTION_OUTCOMES", "CHECKS_SCHEMA", "CLOSE_REASONS", "COMPARE_SCHEMA", "COMPARE_SCHEMAS", "DEFAULT_PORT",
           "END_REASONS", "ERROR_KINDS", "EVENTS", "FAST_PATHS", "PATTERNS", "PROTOCOLS", "SERVER_EVENTS", "SWARM_EVENTS",
           "SWARM_SCHEMA", "TRACE_LEVELS"]
