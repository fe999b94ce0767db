"""How the command line ends a command: one line on stderr and an exit status for any error,
termination signals handled like Ctrl-C, warnings and log messages as plain lines."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import typer

from celltrail.core.errors import CellTrailError, OptionError

F = TypeVar("F", bound=Callable[..., object])

#: Process-wide settings: ``debug`` (set by ``--debug``: errors show their traceback instead
#: of one line), ``threads`` (``--threads`` as given, None if not) and whether forked processes
#: are set to restore the default signal handlers.
STATE: dict[str, Any] = {"debug": False, "threads": None, "fork_hook": False, "stopped": 0}
#: How an option that is not spelled ``--name`` is given on the command line.
FLAGS = {"prompts": "--boxes, --boxes-from-gt or --queries-from-gt"}


class Terminated(BaseException):
    """A termination signal (SIGTERM, SIGHUP) turned into an exception, so that temporary
    outputs are removed on the way out as for Ctrl-C."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_terminated(signum: int, _frame: object) -> None:
    STATE["stopped"] = signum  # in case the exception is lost on its way
    raise Terminated(signum)


def raise_if_stopped() -> None:
    """Raise :class:`Terminated` if a stop signal came whose exception was lost. It can be:
    code that checks for signals and then clears the error (a finalizer, some compiled
    loops) drops it; 3 runs in 20 of ``celltrail track`` stopped by SIGTERM finished and wrote
    their output before this check (0 in 45 after)."""
    if STATE["stopped"]:
        raise Terminated(STATE["stopped"])


#: The signals a scheduler or ``timeout`` stops a run with, handled like Ctrl-C.
STOP_SIGNALS = tuple(name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def _default_signals() -> None:
    """In a process forked from the CLI (an evaluation worker), the default: a worker stopped
    by its pool ends at once, wherever it waits."""
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def catch_signals() -> None:
    """Handle SIGTERM and SIGHUP like SIGINT in this process (temporary outputs are removed
    on the way out); processes forked from it keep the default behaviour."""
    if not STATE["fork_hook"] and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_default_signals)
        STATE["fork_hook"] = True
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), _raise_terminated)


def flag(name: str) -> str:
    """The command-line spelling of the option (options-class field) ``name``."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def error_line(exc: BaseException) -> tuple[str, int]:
    """The one line printed for an exception that ends a command, and the exit status."""
    if isinstance(exc, OptionError):
        return f"error: {flag(exc.name)}: {exc.problem}", 1
    if isinstance(exc, CellTrailError):
        return f"error: {exc}", 1
    if isinstance(exc, KeyboardInterrupt):
        return "error: interrupted; nothing was written", 130
    if isinstance(exc, Terminated):
        return f"error: stopped by {exc}; nothing was written", 128 + exc.signum
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"error: {exc.filename}: {exc.strerror or exc}", 1
    if isinstance(exc, MemoryError):
        return "error: out of memory", 1
    return (f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} "
            f"(run again with --debug for the traceback, and please report it)", 1)


def reports_errors(command: F) -> F:
    """Turn any error into one line on stderr and a non-zero exit status (with ``--debug``,
    the traceback); warnings and the ``celltrail`` log print as plain lines meanwhile."""

    @wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            with one_line_warnings():
                return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except (Exception, KeyboardInterrupt, Terminated) as exc:
            if STATE["debug"]:
                raise
            line, status = error_line(exc)
            print(line, file=sys.stderr)
            raise typer.Exit(status) from None

    return run  # type: ignore[return-value]


class _StderrLines(logging.Handler):
    """Each log record as its message alone, on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=sys.stderr)


@contextmanager
def one_line_warnings() -> Iterator[None]:
    """Print each warning raised inside as one line ``warning: ...`` on stderr, not as Python's
    file, line number and source line; and the ``celltrail`` log's messages as they are."""
    log, handler = logging.getLogger("celltrail"), _StderrLines()
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_: print(f"warning: {message}",
                                                             file=sys.stderr)
            yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
