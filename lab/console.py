"""Output: results on stdout, progress and errors on stderr, one style."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.markup import escape

out = Console(highlight=False, soft_wrap=True)
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
