"""How many threads celltrail's work may use: torch's intra-op threads and the classical
pipeline's worker threads, one setting for the process (``celltrail --threads N``, or
:func:`set_threads`), so that a run beside other work takes no more than its share.

The command line always sets it (by default to :func:`default_threads`); in Python, until
:func:`set_threads` is called, torch keeps its own thread count and the classical pipeline
uses :func:`default_threads` workers.
"""

from __future__ import annotations

import os
import sys

from celltrail.core.errors import OptionError

#: The thread count set for this process (None: not set).
_SETTING: dict[str, int | None] = {"threads": None}


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_threads() -> int:
    """``OMP_NUM_THREADS`` where it is a positive whole number (a dask worker's is 1), else
    :func:`available_cores`."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(given) if given.isdigit() and int(given) > 0 else available_cores()


def set_threads(threads: int | None) -> None:
    """Use ``threads`` threads from now on: torch's (at once if torch is loaded, else when a
    learned method is built) and the classical pipeline's workers. None unsets it."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):
        raise OptionError("threads", f"must be a whole number of at least 1, not {threads!r}")
    _SETTING["threads"] = threads
    if "torch" in sys.modules:
        use_torch_threads()


def thread_setting() -> int | None:
    """The thread count set for this process, or None."""
    return _SETTING["threads"]


def threads() -> int:
    """The threads celltrail's work may use: the setting, else :func:`default_threads`."""
    return _SETTING["threads"] or default_threads()


def use_torch_threads() -> None:
    """Set torch's intra-op threads to the setting, if there is one."""
    wanted = _SETTING["threads"]
    if wanted is not None:
        import torch

        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
