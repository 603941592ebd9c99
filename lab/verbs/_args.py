"""Argument types shared by the verbs: numbers that make sense, or exit 2."""

from __future__ import annotations

import argparse
from typing import Callable

NOFILE = 20000  # descriptors per container (compose.yaml ulimits), within this host's hard limit
RESERVED_FDS = 64  # the swarm's own files, pipes and sockets besides its clients


def number(kind: type, least: float, most: float | None = None, what: str = "") -> Callable[[str], float]:
    """An argparse type: a ``kind`` (int/float) in [least, most]."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {'whole ' if kind is int else ''}number")
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: at least {least}{what}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{value} is too large: at most {most}{what}")
        return value
    return parse


clients = number(int, 1, NOFILE - RESERVED_FDS,
                 f" (each client is a descriptor; a container may have {NOFILE}, the limit "
                 "set in compose.yaml and allowed by this host)")
positive_ms = number(float, 0.1)
duration = number(float, 0.1, 7 * 24 * 3600.0, " seconds")
