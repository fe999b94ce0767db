"""Write outputs to a temporary path first and rename, so nothing is ever half-written, and
never replace a folder or file that celltrail did not write.

Every folder written here carries a marker file (:data:`MARKER`); an existing folder is replaced
only when it carries one (or holds nothing but what a CTC result holds), or when the caller says
``overwrite``. A file is never replaced by a folder, nor a folder by a file. Temporary names hold
the host and process id, so the next run on the same output removes what a killed run left.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celltrail import __version__
from celltrail.core.errors import OutputError

#: The marker file in every folder celltrail writes.
MARKER = ".celltrail"
#: Text written into files celltrail writes where the format has room for it.
SIGNATURE = f"written by celltrail {__version__}"
#: Names a CTC result folder holds (results written before the marker existed).
_RESULT_NAME = re.compile(r"mask\d+\.tiff?|res_track\.txt|tracks\.(csv|parquet)"
                          r"|tracking_results\.txt")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, mode: int) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would (temporary files and
    folders are created readable by their owner only)."""
    path.chmod(mode & ~_umask())


def _host() -> str:
    """This machine's name as temporary names hold it (no dots: they separate the parts)."""
    return socket.gethostname().replace(".", "_")


def _owner_tag() -> str:
    return f"{_host()}-{os.getpid()}"


def _alive(tag: str) -> bool:
    """Whether the process named by a temporary name's tag may still be running (a tag of
    another host, or none, counts as alive: it is not ours to judge)."""
    host, _, pid = tag.rpartition("-")
    if host != _host() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(final: Path) -> list[Path]:
    """Remove the temporary files and folders that killed runs left beside ``final``
    (``.NAME.HOST-PID.XXXX.tmp`` / ``.old`` of a process no longer running); returns them."""
    removed = []
    if not final.parent.is_dir():
        return removed
    pattern = re.compile(rf"\.{re.escape(final.name)}\.([^.]+)\.[^.]+\.(tmp|old)")
    for path in final.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not _alive(match.group(1)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def is_celltrail_folder(path: Path) -> bool:
    """Whether the folder ``path`` may be replaced: it is empty, carries :data:`MARKER`, or
    holds nothing but the files of a CTC result."""
    entries = [entry.name for entry in path.iterdir()]
    return MARKER in entries or all(_RESULT_NAME.fullmatch(name) for name in entries)


def check_replaceable_dir(final: Path, overwrite: bool = False) -> None:
    """Raise :class:`OutputError` unless ``final`` is free for a folder: absent, or a folder
    celltrail wrote (or any folder, with ``overwrite``)."""
    if final.is_symlink() or final.is_file() or (final.exists() and not final.is_dir()):
        raise OutputError(final, "exists and is not a folder; celltrail never replaces a "
                                 "file by a folder (choose another output)")
    if final.is_dir() and not overwrite and not is_celltrail_folder(final):
        foreign = next(e.name for e in sorted(final.iterdir())
                       if not _RESULT_NAME.fullmatch(e.name))
        raise OutputError(final, f"folder exists and holds {foreign!r}, which celltrail did "
                                 f"not write; choose another output or pass --overwrite")


def _prefix(final: Path) -> str:
    """The start of a temporary name beside ``final``: its name and this process's tag."""
    return f".{final.name}.{_owner_tag()}."


@contextmanager
def atomic_dir(final: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success it gets :data:`MARKER` and
    replaces ``final`` whole. An existing ``final`` must be a folder celltrail wrote, unless
    ``overwrite``; leftovers of killed runs on ``final`` are removed first."""
    final = Path(final)
    check_replaceable_dir(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    for leftover in remove_leftovers(final):
        warnings.warn(f"removed {leftover}, left by an interrupted run", stacklevel=3)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(final), suffix=".tmp",
                                dir=final.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text(SIGNATURE + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _usual_mode(tmp, 0o777)
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=_prefix(final), suffix=".old",
                                    dir=final.parent))
        os.replace(final, old / final.name)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


@contextmanager
def atomic_file(final: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``final``; on success it is renamed to ``final``.
    A folder at ``final`` is never replaced."""
    final = Path(final)
    if final.is_dir():
        raise OutputError(final, "is a folder; give a file name")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=_prefix(final), suffix=".tmp",
                                dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _usual_mode(tmp, 0o666)
    os.replace(tmp, final)
