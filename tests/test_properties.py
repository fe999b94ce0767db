"""Property tests over random label images and track files: our CTC validator agrees with
py-ctcmetrics', and results round-trip through the CTC layout."""

from __future__ import annotations

import contextlib
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
from ctc_metrics.scripts.validate import validate_sequence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage
from celltrail.core.result import TrackingResult
from celltrail.io.ctc import read_result, write_result

SHAPE = (6, 6)


@st.composite
def label_frames(draw: st.DrawFn) -> list[np.ndarray]:
    """1 to 4 frames of 6 x 6 pixels, each pixel background or one of labels 1 to 4."""
    frames = draw(st.integers(1, 4))
    cells = st.lists(st.integers(0, 4), min_size=SHAPE[0] * SHAPE[1],
                     max_size=SHAPE[0] * SHAPE[1])
    return [np.array(draw(cells), dtype=np.uint16).reshape(SHAPE) for _ in range(frames)]


@st.composite
def results(draw: st.DrawFn) -> TrackingResult:
    """Random masks with a track table that is either derived from them (valid) or such a
    table with one row changed, added or removed (often, not always, invalid). Every row keeps
    labels >= 1 and frames within the sequence, the domain in which the CTC's rules and
    py-ctcmetrics' are the same."""
    derived = TrackingResult.from_masks(draw(label_frames()), {})
    masks = list(derived.masks)
    rows = derived.lineage.to_array().tolist()
    last = len(masks) - 1
    change = draw(st.sampled_from(["none", "edit", "add", "remove"]))
    if change == "add" or not rows:
        label = max((r[0] for r in rows), default=0) + 1
        begin = draw(st.integers(0, last))
        rows.append([label, begin, draw(st.integers(begin, last)), 0])
    elif change == "edit":
        row = draw(st.sampled_from(rows))
        row[1] = draw(st.integers(0, last))
        row[2] = draw(st.integers(0, last))
        row[3] = draw(st.sampled_from([0, *(r[0] for r in rows)]))
    elif change == "remove" and len(rows) > 1:
        rows.remove(draw(st.sampled_from(rows)))
    return TrackingResult(masks, Lineage.from_array(np.array(rows, dtype=np.int64)))


def celltrail_valid(folder: Path) -> bool:
    """Our verdict: the track file reads (its own rules hold) and the masks agree with it."""
    try:
        return read_result(folder).errors() == []
    except InputError:
        return False


def ctcmetrics_valid(folder: Path) -> bool:
    """py-ctcmetrics' verdict on a result folder (an error inside it counts as invalid)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return validate_sequence(str(folder), threads=1)["Valid"] == 1
        except (AssertionError, IndexError, ValueError):
            return False


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(result=results())
def test_validate_agrees_with_py_ctcmetrics(result: TrackingResult) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "res"
        write_result(result, folder)  # as it is, valid or not
        assert celltrail_valid(folder) == ctcmetrics_valid(folder)


@settings(max_examples=25, deadline=None)
@given(masks=label_frames())
def test_write_then_read_round_trips(masks: list[np.ndarray]) -> None:
    result = TrackingResult.from_masks(masks, {})
    with tempfile.TemporaryDirectory() as tmp:
        back = read_result(write_result(result, Path(tmp) / "res"))
        np.testing.assert_array_equal(back.lineage.to_array(), result.lineage.to_array())
        assert len(back.masks) == len(result.masks)
        for ours, theirs in zip(back.masks, result.masks, strict=True):
            np.testing.assert_array_equal(ours, theirs)
