"""What the lab (on the host) and the images (servers, client swarm) share.

One definition of each name both sides use, installed on the host with the
lab (pyproject.toml maps this folder) and present in every image (the app
image's PYTHONPATH is /srv, a copy of services/), so nothing is copied and
nothing is loaded by file path:

    DEFAULT_PORT    the port every server listens on, as in the article
    PATTERNS        the client swarm's patterns (swarm.py --pattern)
    ERROR_KINDS     how a swarm connection can fail (results.json `close`, `errors`)
    END_REASONS     why a swarm run ended, most telling first
    *_SCHEMA        the names of the documents the lab writes and reads
    hist            the latency histogram (HdrHistogram bucketing), merged on both sides

Pure data and pure functions: no sockets, no I/O, importable anywhere.
"""

from __future__ import annotations

DEFAULT_PORT = 12345  # the article's example port

PATTERNS = ("interval", "pingpong", "rate", "hold", "storm")

# A connection's end that is a failure (the others: the server closed it, the
# run ended, the client was done).  Order: as results.json lists them.
ERROR_KINDS = ("refused", "refused-by-server", "reset", "timeout", "eof", "unreachable", "other")

# A run ends for one reason; when workers (or replicas) disagree, the first of
# these that any of them gives says the most (a plain deadline says least).
END_REASONS = ("signal", "count", "all-closed", "duration")

SWARM_SCHEMA = "iolab.swarm/1"  # the client swarm's results.json (services/swarm/SCHEMA.md)
COMPARE_SCHEMA = "iolab.compare/2"  # lab compare's results.json (lab/report/SCHEMA.md)
COMPARE_SCHEMAS = ("iolab.compare/1", COMPARE_SCHEMA)  # what lab report still reads
CHECKS_SCHEMA = "iolab.checks/1"  # checks.json of lab check and lab compare --checks

__all__ = ["CHECKS_SCHEMA", "COMPARE_SCHEMA", "COMPARE_SCHEMAS", "DEFAULT_PORT", "END_REASONS", "ERROR_KINDS",
           "PATTERNS", "SWARM_SCHEMA"]
