"""What the swarm learns of the machine it runs on, before any worker starts:
its descriptor limit (raised as far as allowed), its local port range, the
environment record results.json keeps, and the target's address.
"""

from __future__ import annotations

import os
import platform
import resource
import socket
import sys
import time
from typing import Any

from iorun.procfs import read_text

RESOLVE_PAUSE = 0.2  # seconds between name lookups while the target's name is not known yet




def port_range() -> tuple[int, int] | None:
    text = read_text("/proc/sys/net/ipv4/ip_local_port_range")
    try:
        low, high = (int(x) for x in (text or "").split())
    except ValueError:
        return None
    return low, high


def raise_nofile(need: int) -> dict[str, Any]:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows (it is
    inherited by the workers).  Returns the limits before and after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # nofile cannot be unlimited: the kernel's ceiling is fs.nr_open
        target = int(read_text("/proc/sys/fs/nr_open") or 1 << 20)
    error = None
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            error = str(exc)
    new_soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return {"nofile_soft_before": soft, "nofile_hard": hard if hard != resource.RLIM_INFINITY else None,
            "nofile_soft": new_soft, "nofile_needed_per_worker": need, "raise_error": error}


def environment() -> dict[str, Any]:
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "hostname": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "ip_local_port_range": port_range(),
        "pid": os.getpid(),
    }


def resolve(host: str, port: int, timeout: float) -> tuple[int, tuple[Any, ...]]:
    """getaddrinfo, retried for a while: a container's DNS name may appear
    a moment after the container starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            family, _, _, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
            return family, addr
        except socket.gaierror:
            if time.monotonic() + RESOLVE_PAUSE > deadline:
                raise
            time.sleep(RESOLVE_PAUSE)  # a bounded retry at run time, not a test's sync
