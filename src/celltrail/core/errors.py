"""Errors that end in one clear line naming the file and the problem.

One type per kind of failure, so that callers (the CLI, a batch, a notebook) can tell them
apart: bad input data, an unusable model file, an output that may not or cannot be written,
and an option value out of range. ``str(err)`` is ``"<what>: <problem>"``.
"""

from __future__ import annotations

from pathlib import Path


class CellTrailError(Exception):
    """Base class of every error celltrail reports to a user."""


class InputError(CellTrailError):
    """Bad input: a missing, corrupt or malformed file, or data of the wrong shape or type.

    ``str(err)`` is ``"<path>: <problem>"`` so the CLI can print it as one line.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")


class ModelError(InputError):
    """A model file that is not a usable checkpoint of the model asked for."""


class OutputError(InputError):
    """An output that may not be written (it would replace an input or a file celltrail did
    not write) or cannot be written (no permission, a parent that is a file)."""


class OptionError(CellTrailError):
    """An option (or a field of an options object) with a value out of its range."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")
