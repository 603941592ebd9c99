"""The lab's exit codes, as exceptions: 0 held, 1 an expectation failed,
2 bad input or an unusable environment (always with one line on what to do),
130 interrupted (Ctrl-C), after cleaning up what the run started."""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
