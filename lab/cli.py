"""The `lab` command: one verb per module in lab/verbs/.

Exit codes (lab/errors.py): 0 every expectation held; 1 an expectation
failed; 2 bad input or an unusable environment (one line says what to do);
3 something could not be judged; 70 an internal error (the traceback is kept
in the run directory, and `--debug` prints it); 130 interrupted, after
removing what the interrupted run had started.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import traceback
from typing import Any

from . import __version__, config, verbs
from .verbs import _args
from .console import QuietStdout, fail
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, ExpectationFailed, LabError, NotJudged

# The order verbs are listed in; verbs found in lab/verbs but not here follow.
ORDER = ["up", "down", "status", "logs", "models", "check", "classify", "run", "compare", "report", "bench"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line and exit 2, like every other bad input
        self.exit(EXIT_USAGE, f"lab: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lab", description="I/O Models Lab: how network servers handle many clients.")
    parser.add_argument("--version", action="version", version=f"lab {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the whole traceback (it is always kept in a file)")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    found = [m.name for m in pkgutil.iter_modules(verbs.__path__) if not m.name.startswith("_")]
    for name in sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        module = importlib.import_module(f"{verbs.__name__}.{name}")
        module.register(sub)
    for verb in sub.choices.values():  # `lab check --all --debug` as well as `lab --debug check`
        verb.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an internal error, print the whole traceback")
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse, pointing a flag the verb does not know at that verb's help."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        where = f"lab {args.verb}" if getattr(args, "verb", None) else "lab"
        parser.exit(EXIT_USAGE, f"lab: error: unrecognized arguments: {' '.join(extra)} "
                                f"(see `{where} --help`)\n")
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up exactly like Ctrl-C


def _internal_error(exc: BaseException, debug: bool) -> int:
    """A bug, not a user's mistake: one line, the traceback kept in a file."""
    from .run import live, rundir
    text = traceback.format_exc()
    where = rundir.save_traceback(text, live.last_run_dir())
    kept = f"traceback in {where}" if where else "the traceback could not be saved"
    if debug:
        sys.stderr.write(text)
    first = (str(exc).strip().splitlines() or [""])[0]
    fail(f"internal error: {type(exc).__name__}: {first} ({kept}; --debug prints it)")
    return EXIT_INTERNAL


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, _terminate)
    from .run import live
    live.forget_runs()
    stdout = sys.stdout
    sys.stdout = QuietStdout(stdout)  # `lab models | head -1`: the verb's own exit code, nothing said
    try:
        config.require_root()
        _args.replicas_need_swarm(args)  # a flag several verbs share, checked once
        code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except (LabError, ExpectationFailed, NotJudged) as exc:
        fail(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        fail("interrupted; what this run started has been removed")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a write that went around sys.stdout
        return 0
    except Exception as exc:  # anything else is the lab's own bug
        return _internal_error(exc, args.debug)
    finally:
        sys.stdout = stdout
