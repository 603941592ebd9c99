"""A command line with each flag once: the program, then --name=value flags."""

from __future__ import annotations

from typing import Any


def program(base: list[str]) -> list[str]:
    """The part of a command before its first --flag (python3 /srv/swarm/swarm.py)."""
    cut = next((i for i, a in enumerate(base) if a.startswith("--")), len(base))
    return list(base[:cut])


def with_flags(base: list[str], **flags: Any) -> list[str]:
    """``base`` with each of ``flags`` set exactly once (--name=value, in the
    order given), replacing the same flag in ``base`` in either spelling
    (``--name=value`` or ``--name value``); a None value drops the flag."""
    names = {f"--{k.replace('_', '-')}" for k in flags}
    kept: list[str] = []
    skip = False
    for a in base:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True  # its value is the next word
            continue
        if a.split("=", 1)[0] in names:
            continue
        kept.append(a)
    return kept + [f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if v is not None]


def duplicated(argv: list[str]) -> list[str]:
    """Flags that appear more than once in ``argv`` (none, in a command the lab shows)."""
    seen: dict[str, int] = {}
    for a in argv:
        if a.startswith("--"):
            seen[a.split("=", 1)[0]] = seen.get(a.split("=", 1)[0], 0) + 1
    return [k for k, n in seen.items() if n > 1]
