"""Errors that end in one clear line naming the file and the problem."""

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
