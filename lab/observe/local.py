"""A server on this host, outside any container (`lab classify 127.0.0.1:PORT --pid PID`).

Before anything is probed, the process must exist and it (or one of its
descendants: a prefork master's children share its socket) must listen on
the port: /proc/<pid>/fd names the sockets it holds, /proc/net/tcp and tcp6
(seen from its own network namespace) which of them listen where.  Anything
else is bad input, said in one line.  No engine is involved, so the run
directory is made here rather than by a LiveRun.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import UsageError
from ..measure.environment import host_environment
from ..run.live import remember_run_dir
from ..run.rundir import RunDir, new_id
from .tasks import descendants

LISTEN = "0A"  # the TCP state of a listening socket in /proc/net/tcp


def listening_inodes(table: str, port: int) -> set[str]:
    """Socket inodes listening on ``port`` in a /proc/net/tcp{,6} table."""
    found = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == LISTEN and fields[1].rsplit(":", 1)[-1] == f"{port:04X}":
            found.add(fields[9])
    return found


def socket_inodes(pid: int) -> set[str]:
    """The sockets process ``pid`` holds open (``socket:[INODE]`` links in its fd folder)."""
    held = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return held
    for name in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if link.startswith("socket:["):
            held.add(link[8:-1])
    return held


def check_listening(pid: int, port: int) -> None:
    """UsageError unless ``pid`` exists and it or a descendant listens on ``port``."""
    if pid < 1 or not os.path.isdir(f"/proc/{pid}"):
        raise UsageError(f"--pid {pid}: no such process on this host")
    tables = ""
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                tables += f.read()
        except OSError:
            continue
    listening = listening_inodes(tables, port)
    tree = descendants(pid)
    if not any(listening & socket_inodes(p) for p in tree):
        who = "it" if len(tree) == 1 else f"neither it nor its {len(tree) - 1} descendant(s)"
        raise UsageError(f"--pid {pid}: {who} listen(s) on port {port} (or its sockets cannot be read: "
                         "run as its user or as root)")


def run_dir(verb: str, what: str, params: dict[str, Any]) -> RunDir:
    """A run directory for a command that needs no engine."""
    run_id, _ = new_id(verb, what)
    made = RunDir(run_id, {"verb": verb, "what": what, "params": params, "host": host_environment(),
                           "orchestrator": None})
    remember_run_dir(made.path)
    return made
