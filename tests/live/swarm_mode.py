"""A single-node Swarm for the Swarm-mode live tests, and the engine left as it was found.

The session initialises Swarm mode (`docker swarm init --advertise-addr
127.0.0.1`) only when the engine is not in a swarm, only while the tests
that need it run, and leaves it (`docker swarm leave --force`) only if it
initialised it: in the fixture's finally, and again from pytest_sessionfinish
(tests/conftest.py) should anything skip the finally.  Joining a swarm makes
the `docker_gwbridge` network, and leaving does not remove it: when the
session made it, it goes too.  Other people use this engine meanwhile: their
containers are left alone.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import docker

GWBRIDGE = "docker_gwbridge"
# each engine this session put in Swarm mode, and whether that made docker_gwbridge
_ours: list[tuple[Any, bool]] = []


def state(client: Any) -> str:
    return str((client.info().get("Swarm") or {}).get("LocalNodeState", ""))


def init(client: Any) -> bool:
    """Swarm mode on this engine; True if this session turned it on."""
    if state(client) == "active":
        return False
    had_gwbridge = _gwbridge(client) is not None
    client.swarm.init(advertise_addr="127.0.0.1")
    _ours.append((client, not had_gwbridge))
    return True


def leave() -> list[str]:
    """Leave the swarm this session made (and only that one); what was done."""
    done = []
    while _ours:
        client, made_gwbridge = _ours.pop()
        if state(client) == "active":
            client.swarm.leave(force=True)
            done.append("left the swarm this test session had initialised")
        if made_gwbridge and _remove_gwbridge(client):
            done.append(f"removed {GWBRIDGE}, which joining the swarm had made")
    return done


def _gwbridge(client: Any) -> Any:
    """The engine's docker_gwbridge network, or None (names= is a prefix match)."""
    return next((n for n in client.networks.list(names=[GWBRIDGE]) if n.name == GWBRIDGE), None)


def _remove_gwbridge(client: Any, bound: float = 15.0) -> bool:
    """Remove docker_gwbridge; the engine lets go of its last endpoint a
    moment after the leave, so retry for a bounded time, then fail saying so."""
    deadline = time.monotonic() + bound
    while True:
        net = _gwbridge(client)
        if net is None:
            return False
        try:
            net.remove()
            return True
        except docker.errors.APIError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{GWBRIDGE} is still in use {bound:g} s after leaving the swarm: "
                                   f"{exc.explanation}") from None
            threading.Event().wait(0.2)  # a bounded poll for the engine's own clean-up
