"""Cell scale and modality measured from the images, and the end-of-run summary and warnings."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi
from typer.testing import CliRunner

from celltrail.cli import app
from celltrail.core import open_sequence
from celltrail.core.errors import InputError
from celltrail.core.lineage import Lineage, Track
from celltrail.io.ctc import read_tracking_gt
from celltrail.methods.boxtrack import BoxTracker, ClassicalPromptSegmenter
from celltrail.methods.embedtrack.size import Reading, fixed_points, generalist_diameter
from celltrail.segmentation import resolve_scale
from celltrail.segmentation.scale import (
    MIN_CONFIDENCE,
    estimate_diameter,
    look,
    measure_scale,
)
from celltrail.simulate import SimParams, simulate
from celltrail.summary import broken_tracks, cells_per_frame, summary_lines, warnings_for
from tests.test_boxtrack import dividing_cell

runner = CliRunner()


def simulated_frame(tmp_path: Path, modality: str, diameter: float) -> tuple[np.ndarray, float]:
    """First frame of a simulated sequence (cells covering about 30 % of it) and the median
    equivalent diameter of its true masks."""
    size = max(192, int(4 * diameter))
    cells = max(4, int(0.3 * size * size / (np.pi * diameter**2 / 4)))
    params = SimParams(frames=1, size=size, cells=cells, modality=modality,
                       cell_diameter=diameter)
    seq = simulate(tmp_path / f"{modality}-{diameter:g}", params, seed=1)
    areas = np.bincount(np.asarray(read_tracking_gt(seq.parent / "01_GT").masks[0]).ravel())[1:]
    truth = float(np.median(np.sqrt(4 * areas[areas > 0] / np.pi)))
    return tifffile.imread(next(seq.glob("t*.tif"))), truth


@pytest.mark.parametrize(("modality", "diameter"), [
    ("fluo-nuclei", 10), ("fluo-nuclei", 30), ("fluo-nuclei", 100),
    ("fluo-cells", 10), ("fluo-cells", 30), ("fluo-cells", 100),
    ("dic", 10), ("dic", 30), ("dic", 100), ("phase", 10), ("phase", 30), ("brightfield", 10),
    ("brightfield", 30), ("brightfield", 100),
])
def test_diameter_of_simulated_cells(tmp_path: Path, modality: str, diameter: float) -> None:
    image, truth = simulated_frame(tmp_path, modality, diameter)
    found, confidence = estimate_diameter(image, look(image)[0])
    assert found == pytest.approx(truth, rel=0.25)
    assert confidence >= MIN_CONFIDENCE


def test_large_untextured_cells_ask_for_the_diameter(tmp_path: Path) -> None:
    """100 px phase-contrast cells with flat interiors and bright halos: only their rims are
    textured, and the estimator says it is unsure rather than answering a rim's width."""
    image, _ = simulated_frame(tmp_path, "phase", 100)
    with pytest.raises(InputError, match=r"^cannot tell the cell size: the cell sizes in the "
                                         r"first frame spread over many scales \(estimate "):
        resolve_scale(image)


@pytest.mark.parametrize(("modality", "diameter"), [
    ("fluo-nuclei", 12), ("fluo-nuclei", 100), ("dic", 60), ("phase", 100),
])
def test_generalist_network_measures_simulated_cells(tmp_path: Path, modality: str,
                                                     diameter: float) -> None:
    """The shipped generalist's fixed point, also where the blob estimate is refused (100 px
    phase contrast, see below)."""
    image, truth = simulated_frame(tmp_path, modality, diameter)
    found, where = generalist_diameter(image)
    assert found == pytest.approx(truth, rel=0.25)
    assert re.fullmatch(r"measured by the network 'general' on the first frame \(\d+ cells\)",
                        where)


def test_fixed_point_lies_where_the_measured_size_crosses_the_assumed_one() -> None:
    readings = [Reading(8.0, 20.0, 5, 0.9), Reading(16.0, 32.0, 9, 0.9),
                Reading(32.0, 16.0, 9, 0.9), Reading(64.0, 16.0, 2, 0.9)]
    # ratio 2 at 16 px, 1/2 at 32 px: log-linear crossing halfway, at 16 * sqrt(2)
    assert fixed_points(readings) == [pytest.approx(16 * np.sqrt(2))]
    assert fixed_points(readings[2:]) == []  # too few cells at 64 px, and no crossing


def test_refused_blob_estimate_asks_the_fallback() -> None:
    flat = np.full((64, 64), 100, np.uint16)
    scale = measure_scale(flat, "fluo-nuclei", fallback=lambda image: (42.0, "told"))
    assert (scale.diameter, scale.diameter_from) == (42.0, "told; the blob estimate was refused")

    def unsure(image: np.ndarray) -> tuple[float, str]:
        raise ValueError("no fixed point")

    with pytest.raises(ValueError, match=r"^the first frame shows no cell-like structure to "
                                         r"measure; no fixed point$"):
        measure_scale(flat, "fluo-nuclei", fallback=unsure)


def test_track_on_cells_the_blobs_cannot_size_uses_the_network(tmp_path: Path) -> None:
    image, truth = simulated_frame(tmp_path, "phase", 100)
    tifffile.imwrite(tmp_path / "phase.tif", np.stack([image, image]))
    result = runner.invoke(app, ["track", str(tmp_path / "phase.tif"), "--out",
                                 str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stderr.splitlines() if line.startswith("diameter: "))
    assert float(line.split()[1]) == pytest.approx(truth, rel=0.25)
    assert re.search(r"\(measured by the network 'general' on the first frame \(\d+ cells\); "
                     r"the blob estimate was refused\)$", line)


@pytest.mark.parametrize(("modality", "preset"), [
    ("fluo-nuclei", "fluo-nuclei"), ("fluo-cells", "fluo-nuclei"), ("dic", "dic"),
    ("phase", "brightfield"), ("brightfield", "brightfield"),
])
def test_auto_preset_picks_the_modality(tmp_path: Path, modality: str, preset: str) -> None:
    """The simulated phase contrast of 30 px cells has halos too faint to count (1 % of the
    signal is brighter than the background): its cells only absorb, as in bright field."""
    image, _ = simulated_frame(tmp_path, modality, 30)
    assert look(image)[0] == preset


def test_packed_textured_cells_ask_for_the_diameter() -> None:
    """One textured clump 220 px wide with no borders inside (as packed DIC cells): the blobs
    measure the texture grain, and most of the clump lies deeper than that: refused."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    inside = (yy - 128) ** 2 + (xx - 128) ** 2 <= 110**2
    image = 128 + rng.normal(0, 2, inside.shape)
    image[inside] += ndi.gaussian_filter(rng.normal(0, 60, inside.shape), 1.0)[inside]
    with pytest.raises(InputError, match=r"^cannot tell the cell size: most of the textured "
                                         r"foreground lies in clumps over two cells of the "
                                         r"estimated \d+ px wide"):
        resolve_scale(image.clip(0, 255).astype(np.uint8))


def lineage() -> Lineage:
    # 1 lives in frames 0-2 and divides into 2 and 3 (frames 3-4); 4 is in frame 4 only
    return Lineage([Track(1, 0, 2), Track(2, 3, 4, 1), Track(3, 3, 4, 1), Track(4, 4, 4)])


def test_summary_counts_cells_tracks_divisions() -> None:
    np.testing.assert_array_equal(cells_per_frame(lineage(), 6), [1, 1, 1, 2, 3, 0])
    lines = summary_lines(lineage(), 6, {"method": "classical"})
    assert lines[:3] == ["cells per frame: min 0, median 1, max 3 (6 frames)",
                         "tracks: 4, divisions: 1", "method: classical"]
    assert lines[3] == "warning: no cell found in 1 of 6 frames"


def test_counts_far_above_the_first_frame_warn() -> None:
    assert warnings_for(np.array([10, 12, 31]), "") == [
        "31 cells in frame 2, over 3 times the 10 of frame 0: false objects? (a model on data "
        "unlike its training set, or a diameter too small)"]
    assert warnings_for(np.array([10, 12, 30]), "") == []


def test_tracks_that_keep_breaking_warn() -> None:
    # three cells whose tracks all break after frame 0: 6 new parentless tracks, 3 cells a frame
    broken = Lineage([Track(k, 0, 0) for k in (1, 2, 3)]
                     + [Track(k, 1 + (k - 4) // 3, 1 + (k - 4) // 3) for k in range(4, 10)])
    assert broken_tracks(broken, cells_per_frame(broken, 3)) == [
        "6 tracks begin after frame 0 without a parent, more than the 3 cells of a median frame: "
        "tracks broken? (a model or diameter unlike these images), or many cells entering the "
        "field"]
    assert broken_tracks(lineage(), cells_per_frame(lineage(), 6)) == []  # 1 new, median 1


def test_a_run_with_no_detections_warns(tmp_path: Path) -> None:
    stack = np.full((4, 64, 64), 100, np.uint16)
    tifffile.imwrite(tmp_path / "flat.tif", stack)
    result = runner.invoke(app, ["track", str(tmp_path / "flat.tif"), "--out",
                                 str(tmp_path / "res"), "--preset", "fluo-nuclei",
                                 "--diameter", "12"])
    assert result.exit_code == 0, result.output
    assert ("warning: no cell found in 4 of 4 frames: probably the preset (fluo-nuclei) or the "
            "cell diameter (12.0 px) does not fit these images; try another --preset or "
            "--diameter") in result.stderr.splitlines()


def test_unsure_scale_stops_the_run(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "flat.tif", np.full((3, 64, 64), 100, np.uint16))
    result = runner.invoke(app, ["track", str(tmp_path / "flat.tif"), "--out",
                                 str(tmp_path / "res")])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: {tmp_path / 'flat.tif'} (frame 0): cannot tell the cell size: the first frame "
        "shows no cell-like structure to measure; the network 'general' finds no size at which "
        "the cells it segments match the size it assumes; give the cell diameter in pixels "
        "(--diameter)")
    assert not (tmp_path / "res").exists()


def test_track_prints_the_summary(sample: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["track", str(sample / "01"), "--out", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    counts = next(line for line in lines if line.startswith("cells per frame: min "))
    assert int(counts.split("min ")[1].split(",")[0]) > 0
    assert "method: classical" in lines
    assert any(line.startswith("preset: fluo-nuclei (auto: bright objects on a dark background")
               for line in lines)
    assert any(line.startswith("diameter: ") and "estimated from the first frame" in line
               for line in lines)
    assert not any(line.startswith("warning:") for line in lines)


def test_boxtrack_classical_backend_reports_its_settings() -> None:
    frames, boxes, _ = dividing_cell()
    tracker = BoxTracker(segmenter=ClassicalPromptSegmenter())
    result = tracker.track(open_sequence(frames), boxes)
    assert tracker.settings() == {
        "method": "boxtrack", "backend": "classical", "preset": "fluo-nuclei (classical backend)",
        "diameter": "20.0 px (the first prompts' median box size)"}
    assert summary_lines(result.lineage, len(frames), tracker.settings())[:2] == [
        "cells per frame: min 2, median 2.5, max 3 (8 frames)", "tracks: 4, divisions: 1"]
