"""Output: results on stdout, progress and errors on stderr, one style."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape

__all__ = ["err", "escape", "fail", "out", "say"]  # escape: every path or name printed with markup

# Off a terminal (CI logs, pipes) rich would wrap tables at 80 columns.
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
out = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """A progress line for the person at the terminal (stderr)."""
    if sys.stderr.isatty():
        err.print(f"[dim]lab:[/] {escape(text)}")
    else:
        print(f"lab: {text}", file=sys.stderr, flush=True)


def fail(text: str) -> None:
    """The one line an error gets."""
    print(f"lab: error: {text}", file=sys.stderr, flush=True)
