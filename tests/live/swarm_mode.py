"""A single-node Swarm for the Swarm-mode live tests, and the engine left as it was found.

The session initialises Swarm mode (`docker swarm init --advertise-addr
127.0.0.1`) only when the engine is not in a swarm, only while the tests
that need it run, and leaves it (`docker swarm leave --force`) only if it
initialised it: in the fixture's finally, and again from pytest_sessionfinish
(tests/conftest.py) should anything skip the finally.  Other people use this
engine meanwhile: their containers are left alone.
"""

from __future__ import annotations

from typing import Any

_ours: list[Any] = []  # the client of an engine this session put in Swarm mode


def state(client: Any) -> str:
    return str((client.info().get("Swarm") or {}).get("LocalNodeState", ""))


def init(client: Any) -> bool:
    """Swarm mode on this engine; True if this session turned it on."""
    if state(client) == "active":
        return False
    client.swarm.init(advertise_addr="127.0.0.1")
    _ours.append(client)
    return True


def leave() -> list[str]:
    """Leave the swarm this session made (and only that one); what was done."""
    done = []
    while _ours:
        client = _ours.pop()
        if state(client) == "active":
            client.swarm.leave(force=True)
            done.append("left the swarm this test session had initialised")
    return done
