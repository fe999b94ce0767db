"""Checks on every output path before any work starts: an output never is, holds or lies
inside an input, never replaces a file or folder celltrail did not write, and can be written.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from celltrail.core.errors import OutputError
from celltrail.io.atomic import SIGNATURE, atomic_file, check_replaceable_dir
from celltrail.io.tables import SUMMARY_COLUMNS, TABLE_COLUMNS

_SNIFF = 1 << 16


def _signed(path: Path) -> bool:
    """Whether a file carries :data:`SIGNATURE` (in its first or last 64 KiB), or is a
    celltrail model checkpoint."""
    if path.suffix.lower() == ".pt":
        return _is_checkpoint(path)
    if path.suffix.lower() == ".csv":
        return _first_line(path) in (",".join(TABLE_COLUMNS), ",".join(SUMMARY_COLUMNS))
    mark = SIGNATURE.rsplit(" ", 1)[0].encode()
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF)
            f.seek(max(0, path.stat().st_size - _SNIFF))
            return mark in head or mark in f.read()
    except OSError:
        return False


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return f.readline().rstrip("\r\n")
    except OSError:
        return ""


def _is_checkpoint(path: Path) -> bool:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # anything unreadable is not ours
        return False
    return isinstance(state, dict) and {"config", "state_dict"} <= set(state)


def model_input(model: str | Path | None) -> Path | None:
    """A ``model`` option as an input path when it names an existing file, else None (the
    name of a shipped model reads nothing of the user's)."""
    return Path(model) if model is not None and Path(model).is_file() else None


def check_inputs_apart(out: Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is, holds or lies inside one of ``inputs``."""
    target = out.resolve()
    for source in inputs:
        if source is None:
            continue
        source = Path(source).resolve()
        if target == source:
            raise OutputError(out, "is an input of this command; inputs are never replaced")
        if source in target.parents:
            raise OutputError(out, f"lies inside the input {source}; inputs are never modified")
        if target in source.parents:
            raise OutputError(out, f"holds the input {source}; inputs are never modified")


def check_writable(out: Path) -> None:
    """Refuse an output whose nearest existing parent is not a folder one can write in."""
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(out, f"cannot be written: {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".celltrail-probe.", dir=parent)
    except OSError as exc:
        raise OutputError(out, f"cannot be written in {parent} ({exc.strerror})") from exc
    os.close(fd)
    os.unlink(probe)


def check_output(
    out: str | Path,
    inputs: Iterable[str | Path | None] = (),
    *,
    folder: bool = False,
    suffixes: tuple[str, ...] = (),
    overwrite: bool = False,
) -> Path:
    """Check an output path before the work starts and return it.

    ``folder`` outputs may replace only a folder celltrail wrote; file outputs must end in one
    of ``suffixes`` (when given) and may replace only a file celltrail wrote; either with
    ``overwrite`` may replace anything but an input.
    """
    out = Path(out).expanduser()
    if suffixes and out.suffix.lower() not in suffixes:
        raise OutputError(out, f"expected a file name ending in {' or '.join(suffixes)}")
    check_inputs_apart(out, inputs)
    if folder:
        check_replaceable_dir(out, overwrite)
    elif out.is_dir():
        raise OutputError(out, "is a folder; give a file name")
    elif out.exists() and not overwrite and not _signed(out):
        raise OutputError(out, "exists and was not written by celltrail; choose another name "
                               "or pass --overwrite")
    check_writable(out)
    return out


def write_json(data: dict, path: str | Path) -> Path:
    """Write ``data`` as indented JSON, atomically, with a ``generator`` entry that marks the
    file as celltrail's (so that a later run may replace it)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps({**data, "generator": SIGNATURE}, indent=2))
    return path
