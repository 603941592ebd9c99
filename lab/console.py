"""Output: results on stdout, progress and errors on stderr, one style."""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

from rich.console import Console
from rich.markup import escape

__all__ = ["QuietStdout", "err", "escape", "fail", "out", "say"]  # escape: every path or name printed with markup

PIPE_WIDTH = 160  # off a terminal (CI logs, pipes) rich would wrap tables at 80 columns
NARROWEST, WIDEST = 20, 10_000  # a COLUMNS outside these is garbage, not a screen


def width(stream: Any, environ: Mapping[str, str] = os.environ, default: int = PIPE_WIDTH) -> int | None:
    """The columns to print in.  On a terminal: None (rich follows the
    terminal, and a sane COLUMNS) unless COLUMNS is garbage, then the
    terminal's own width.  Elsewhere: COLUMNS where it is sane, else
    ``default``.  Never 0, never a traceback: COLUMNS=abc or COLUMNS=0 is
    as if it were not set."""
    given = environ.get("COLUMNS", "").strip()
    sane = given.isdigit() and NARROWEST <= int(given) <= WIDEST
    try:
        if stream.isatty():
            return None if sane or not given else os.get_terminal_size(stream.fileno()).columns or default
    except (AttributeError, OSError, ValueError):  # no file descriptor, or not a terminal after all
        pass
    return int(given) if sane else default


# Given, not left to rich, wherever COLUMNS is garbage: rich reads it itself, and prints nothing at 0.
out = Console(highlight=False, soft_wrap=True, width=width(sys.stdout))
err = Console(stderr=True, highlight=False, soft_wrap=True, width=width(sys.stderr, default=80))


def say(text: str) -> None:
    """A progress line for the person at the terminal (stderr)."""
    if sys.stderr.isatty():
        err.print(f"[dim]lab:[/] {escape(text)}")
    else:
        print(f"lab: {text}", file=sys.stderr, flush=True)


def fail(text: str) -> None:
    """The one line an error gets."""
    print(f"lab: error: {text}", file=sys.stderr, flush=True)


class QuietStdout:
    """sys.stdout for the length of a verb: once the reader has gone (a
    closed pipe, `lab models | head -1`), what is left goes nowhere, quietly,
    and the verb ends with its own exit code."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return int(self.inner.write(text))
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.inner.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        """The reader left: point the descriptor at /dev/null, so the buffered
        rest (and the interpreter's last flush at exit) goes nowhere either."""
        self.gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.inner.fileno())
            os.close(devnull)
        except (AttributeError, OSError, ValueError):  # a stream without a descriptor (a test's capture)
            pass

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, ...: the real stream's
        return getattr(self.inner, name)
