"""The lab's exit codes, and the exceptions that carry them.

    0    every expectation held
    1    an expectation failed (measured, and contradicted)
    2    bad input or an unusable environment (always with one line on what to do)
    3    something could not be judged (evidence missing, the host too busy)
    70   an internal error: a bug in the lab (the traceback goes to the run directory)
    130  interrupted (Ctrl-C, SIGTERM), after cleaning up what the run started
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_JUDGED = 0, 1, 2, 3
EXIT_INTERNAL, EXIT_INTERRUPTED = 70, 130


class LabError(Exception):
    """Any error a user can cause or fix: one line, exit code 2."""

    exit_code = EXIT_USAGE


class UsageError(LabError):
    """Bad input: unknown model, impossible numbers, malformed YAML."""


class EnvironmentProblem(LabError):
    """The machine cannot do it: no Docker engine, no base image, disk full."""


class ExpectationFailed(Exception):
    """Measured behaviour did not match what a model declares: exit code 1."""

    exit_code = EXIT_FAILED


class NotJudged(Exception):
    """Some expectation could not be judged, and none failed: exit code 3."""

    exit_code = EXIT_NOT_JUDGED


class InternalError(Exception):
    """A bug in the lab, or in what its own parts wrote: exit code 70."""

    exit_code = EXIT_INTERNAL


class EvidenceError(InternalError):
    """The swarm's results or a trace event out of their schema
    (services/ioschema/schemas.py): the evidence is the lab's own and broken,
    so nothing is judged from it.  One line: the file, the field, the value."""
