"""The `lab` command: one verb per module in lab/verbs/.

Exit codes: 0 every expectation held; 1 an expectation failed; 2 bad input
or an unusable environment (one line says what to do); 130 interrupted, after
removing what the interrupted run had started.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
from typing import Any

from . import __version__, verbs
from .console import fail
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, ExpectationFailed, LabError

# The order verbs are listed in; verbs found in lab/verbs but not here follow.
ORDER = ["up", "down", "status", "logs", "models", "check", "run", "compare", "report", "bench"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line and exit 2, like every other bad input
        self.exit(EXIT_USAGE, f"lab: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lab", description="I/O Models Lab: how network servers handle many clients.")
    parser.add_argument("--version", action="version", version=f"lab {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    found = [m.name for m in pkgutil.iter_modules(verbs.__path__) if not m.name.startswith("_")]
    for name in sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        module = importlib.import_module(f"{verbs.__name__}.{name}")
        module.register(sub)
    return parser


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except LabError as exc:
        fail(str(exc))
        return exc.exit_code
    except ExpectationFailed as exc:
        fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        fail("interrupted; what this run started has been removed")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `lab logs | head`
        sys.stderr.close()
        return 0
