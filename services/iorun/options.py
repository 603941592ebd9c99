"""The flags every model takes, so that all models start the same way."""

from __future__ import annotations

import argparse
import os

from ioschema import DEFAULT_PORT

from .trace import LEVELS



def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("a port is 0..65535 (0 picks a free one)")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse(model: str, description: str, argv: list[str] | None = None,
          workers: int | None = None) -> argparse.Namespace:
    """Parse a model's flags; ``workers`` is the default pool size for models
    that have one (None: the model takes no --workers flag)."""
    parser = argparse.ArgumentParser(prog=model, description=description)
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help="TCP port (default %(default)s; 0 picks a free one)")
    parser.add_argument("--backlog", type=_positive, default=128,
                        help="listen backlog (capped by net.core.somaxconn)")
    parser.add_argument("--trace", choices=sorted(LEVELS), default=os.environ.get("LAB_TRACE", "msg"),
                        help="event level: off, conn or msg (default from LAB_TRACE, else msg)")
    parser.add_argument("--max-line", type=_positive, default=1 << 20,
                        help="longest request line or HTTP body, in bytes")
    if workers is not None:
        parser.add_argument("--workers", type=_positive, default=workers,
                            help="size of the pool (default %(default)s)")
    args = parser.parse_args(argv)
    if args.trace not in LEVELS:
        parser.error(f"LAB_TRACE must be one of {', '.join(LEVELS)}")
    return args
