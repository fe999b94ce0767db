"""Classical segmentation on synthetic images with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from celltrail.core import open_sequence
from celltrail.core.errors import InputError
from celltrail.io.ctc import read_tracking_gt
from celltrail.segmentation import PRESETS, Segmenter, estimate_diameter, segment
from celltrail.simulate import SimParams, simulate

CENTRES = [(40, 40), (40, 130), (40, 210), (130, 60), (140, 170), (210, 110)]
DIAMETER = 30


def discs(centres, diameter: float, shape=(256, 256), seed: int = 0) -> np.ndarray:
    """Bright discs on a dark background with Gaussian noise, as uint16."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100.0)
    for y, x in centres:
        image[(yy - y) ** 2 + (xx - x) ** 2 <= (diameter / 2) ** 2] += 200
    return (image + rng.normal(0, 15, shape)).clip(0).astype(np.uint16)


def test_counts_noisy_discs():
    labels = segment(discs(CENTRES, DIAMETER))
    assert labels.dtype == np.int32
    assert labels.max() == len(CENTRES)
    assert labels[0, 0] == 0
    for y, x in CENTRES:
        assert labels[y, x] > 0
    assert len({labels[y, x] for y, x in CENTRES}) == len(CENTRES)


def test_diameter_estimate():
    assert estimate_diameter(discs(CENTRES, DIAMETER)) == pytest.approx(DIAMETER, rel=0.15)
    big = discs([(100, 100), (100, 300), (300, 200)], 80, shape=(400, 400))
    assert estimate_diameter(big) == pytest.approx(80, rel=0.15)


def domes(centres, diameter: float, shape=(200, 200), seed: int = 0) -> np.ndarray:
    """Nuclei as domes (brightest at the centre, as a thick nucleus is), touching ones meeting
    at a dim neck, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape)
    for y, x in centres:
        r2 = ((yy - y) ** 2 + (xx - x) ** 2) / (diameter / 2) ** 2
        image = np.maximum(image, 200 * np.sqrt(np.clip(1 - r2, 0, 1)))
    return (100 + image + rng.normal(0, 10, shape)).clip(0).astype(np.uint16)


def test_splits_touching_nuclei():
    labels = segment(domes([(100, 80), (100, 80 + 0.85 * 40)], 40), diameter=40)
    assert labels.max() == 2
    assert labels[100, 80] != labels[100, 114]
    assert labels[100, 80] > 0 and labels[100, 114] > 0


def test_unsure_scale_asks_for_the_diameter():
    with pytest.raises(InputError) as err:
        estimate_diameter(np.zeros((64, 64), np.uint8), "dic")
    assert str(err.value) == ("cannot tell the cell size: the first frame shows no cell-like "
                              "structure to measure; give the cell diameter in pixels "
                              "(--diameter)")


def test_deterministic():
    image = discs(CENTRES, DIAMETER, seed=3)
    np.testing.assert_array_equal(segment(image), segment(image))


def test_dic_preset_finds_textured_blobs():
    rng = np.random.default_rng(1)
    shape = (256, 256)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = 128 + rng.normal(0, 2, shape)
    centres = [(70, 70), (180, 180)]
    for y, x in centres:
        inside = (yy - y) ** 2 + (xx - x) ** 2 <= 30**2
        image[inside] += rng.normal(0, 25, int(inside.sum()))
    labels = segment(image.clip(0, 255).astype(np.uint8), "dic", diameter=60)
    assert labels.max() == 2
    assert labels[70, 70] > 0 and labels[180, 180] > 0
    assert labels[10, 240] == 0


def test_segmenter_fixes_scale_from_first_frame():
    seg = Segmenter("fluo-nuclei")
    first = seg(discs(CENTRES, DIAMETER))
    assert seg.diameter == pytest.approx(DIAMETER, rel=0.15)
    scale = seg.diameter
    seg(discs(CENTRES[:2], 60, seed=5))
    assert seg.diameter == scale
    assert first.max() == len(CENTRES)


def test_presets_cover_modalities():
    assert {"fluo-nuclei", "dic"} <= set(PRESETS)
    assert PRESETS["dic"].texture and not PRESETS["fluo-nuclei"].texture


def test_rejects_bad_input():
    with pytest.raises(InputError):
        segment(np.zeros((4, 32, 32)))
    with pytest.raises(InputError):
        segment(np.zeros((32, 32)), preset="confocal-unicorn")
    with pytest.raises(InputError):
        Segmenter("nope")
    with pytest.raises(InputError):
        estimate_diameter(np.zeros(10))


def test_dense_culture(tmp_path: Path) -> None:
    """Nuclei covering about 40% of the frame: the background is not the median pixel."""
    params = SimParams(frames=1, size=192, cells=56, cell_diameter=20.0, division_rate=0,
                       apoptosis_rate=0)
    seq = simulate(tmp_path, params, seed=1)
    truth = read_tracking_gt(tmp_path / "01_GT").masks[0]
    assert (truth > 0).mean() > 0.35
    found = segment(open_sequence(seq)[0], "fluo-nuclei", 20.0).max()
    assert found >= 0.9 * (len(np.unique(truth)) - 1)  # measured 55 of 56


def test_specks_cost_no_seed_search(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specks too small to be a cell (dust, a stain gone wrong) are left out before the seed
    search, which costs a pass per part of the foreground: every part it sees is at least the
    minimum cell area or cut by the border (so at most foreground area / minimum area parts),
    and the nuclei are still found."""
    from celltrail.segmentation import classical

    rng = np.random.default_rng(0)
    image = discs(CENTRES, DIAMETER).astype(np.float64)
    yy, xx = np.mgrid[:256, :256]
    for y, x in rng.integers(0, 256, (600, 2)):  # specks 3 px wide
        image[(yy - y) ** 2 + (xx - x) ** 2 <= 2] = 400
    searched = []
    search = classical.peak_local_max
    monkeypatch.setattr(classical, "peak_local_max", lambda height, labels, **kw: searched.append(
        labels) or search(height, labels=labels, **kw))
    labels = segment(image.astype(np.uint16), "fluo-nuclei", DIAMETER)
    parts = searched[0]
    border = np.unique(np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]]))
    areas = np.bincount(parts.ravel())
    small = np.flatnonzero((areas > 0) &
                           (areas < PRESETS["fluo-nuclei"].min_area * np.pi * DIAMETER**2 / 4))
    assert np.setdiff1d(small, [0, *border]).size == 0
    assert np.unique(parts).size > 40  # specks big enough to stay in the foreground
    assert len({labels[y, x] for y, x in CENTRES} - {0}) == len(CENTRES)


def test_absorbing_cells_segmented_on_the_inverted_image(tmp_path: Path) -> None:
    """Simulated bright field (dark cells, a faint bright rim): with no option the frame is read
    as absorbing cells and nearly every cell is matched at IoU > 0.5, few objects besides."""
    params = SimParams(frames=1, size=256, cells=14, modality="brightfield", cell_diameter=30.0,
                       division_rate=0, apoptosis_rate=0)
    seq = simulate(tmp_path, params, seed=1)
    truth = np.asarray(read_tracking_gt(tmp_path / "01_GT").masks[0])
    segmenter = Segmenter()
    found = segmenter(open_sequence(seq)[0])
    assert segmenter.scale is not None and segmenter.scale.preset == "brightfield"
    n, m = int(found.max()), int(truth.max())
    overlap = np.bincount(found.ravel() * (m + 1) + truth.ravel(),
                          minlength=(n + 1) * (m + 1)).reshape(n + 1, m + 1)
    union = overlap.sum(1, keepdims=True) + overlap.sum(0, keepdims=True) - overlap
    matched = int((overlap[1:, 1:] > 0.5 * union[1:, 1:]).sum())
    cells = len(np.unique(truth)) - 1
    assert matched >= 0.85 * cells and n <= 1.2 * cells, (matched, n, cells)
