"""Argument types shared by the verbs: numbers that make sense, or exit 2."""

from __future__ import annotations

import argparse
import math
from typing import Callable

from ..engine import ORCHESTRATORS, orchestrator as chosen
from ..errors import UsageError
from ..plan.scenarios import CLIENTS_MAX, NOFILE, WEEK_S


def number(kind: type, least: float, most: float | None = None, what: str = "") -> Callable[[str], float]:
    """An argparse type: a ``kind`` (int/float) in [least, most]."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a {'whole ' if kind is int else ''}number")
        if not math.isfinite(value):  # float("nan") compares false with every bound
            raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is too small: at least {least}{what}")
        if most is not None and value > most:
            raise argparse.ArgumentTypeError(f"{value} is too large: at most {most}{what}")
        return value
    return parse


clients = number(int, 1, CLIENTS_MAX,
                 f" (each client is a descriptor; a container may have {NOFILE}, the limit "
                 "set in compose.yaml and allowed by this host)")
positive_ms = number(float, 0.1)
duration = number(float, 0.1, WEEK_S, " seconds")


def orchestrator(p: argparse.ArgumentParser, replicas: bool = False) -> None:
    """--orchestrator local|swarm (default LAB_ORCHESTRATOR, else local), and
    --swarm-replicas for the verbs that run the client swarm."""
    p.add_argument("--orchestrator", choices=ORCHESTRATORS, default=None,
                   help="where units run: local (containers on one engine) or swarm (Swarm-mode services "
                        "on labelled nodes); default LAB_ORCHESTRATOR, else local")
    if replicas:
        p.add_argument("--swarm-replicas", type=number(int, 1, 64), default=1, metavar="N",
                       help="client swarm replicas, the clients divided among them (Swarm mode: on "
                            "iolab.role=load nodes; default 1)")


def orchestrator_seen(p: argparse.ArgumentParser) -> None:
    """--orchestrator on a verb that only looks (status, down, logs): accepted
    for older scripts, but every orchestrator's runs are seen whatever it says."""
    p.add_argument("--orchestrator", choices=ORCHESTRATORS, default=None,
                   help="ignored: runs are found by their labels, whichever orchestrator started them")


def replicas_need_swarm(args: argparse.Namespace) -> None:
    """--swarm-replicas above 1 spreads the swarm over Swarm nodes: the local
    orchestrator runs one container per service."""
    if getattr(args, "swarm_replicas", 1) > 1 and chosen(getattr(args, "orchestrator", None)) != "swarm":
        raise UsageError(f"--swarm-replicas {args.swarm_replicas} needs --orchestrator swarm "
                         "(the local orchestrator runs one swarm container)")
