"""The lab's labels, and who owns a run.

Everything the lab creates carries

    org.iolab.lab    the lab's name (LAB_NAME), so two labs never mix
    org.iolab.run    the run it belongs to
    org.iolab.owner  host:pid:start-time of the lab process that made it

and status and cleanup find things by these labels only, never by name.  A
run whose owner process is gone (killed with SIGKILL, say) is dead: the next
lab command removes it.  `lab up` leaves its run behind on purpose, so once
its topology is healthy it adds a small labelled marker (ROLE keep) that
says "this run outlives its owner until `lab down`".
"""

from __future__ import annotations

import os
import socket

from .. import config

LAB, RUN, OWNER = f"{config.LABEL}.lab", f"{config.LABEL}.run", f"{config.LABEL}.owner"
ROLE, SERVICE, VERB, RUNDIR = (f"{config.LABEL}.{k}" for k in ("role", "service", "verb", "rundir"))
ORCHESTRATOR = f"{config.LABEL}.orchestrator"
KEEP = "keep"  # ROLE of the marker that keeps a `lab up` run alive
# Images carry their own keys: a container inherits its image's labels, and a
# container someone else makes from a lab image must not pass for the lab's.
IMAGE_LAB, IMAGE_RUN = f"{config.LABEL}.image", f"{config.LABEL}.image-run"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process, to tell a live owner from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def me() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def owner_alive(owner: str | None) -> bool | None:
    """True/False for an owner on this host; None when we cannot tell
    (another host, or no owner: made by plain Compose)."""
    if not owner or owner.count(":") != 2:
        return None
    host, pid, started = owner.split(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    now = _start_time(int(pid))
    if now is not None or os.path.exists("/proc/self/stat"):
        return now == started  # Linux: a reused pid has another start time
    try:  # no /proc here: the pid alone has to do
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
