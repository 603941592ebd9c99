"""The kernel's own files, read where a program needs one of its settings."""

from __future__ import annotations


def read_text(path: str) -> str | None:
    """A /proc or /sys file's text, stripped; None where it cannot be read
    (a kernel without it, or a box that hides it)."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None
