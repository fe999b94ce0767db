"""What the benchmarks share: the sequences, the peers (scikit-image, laptrack) and scoring."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage import img_as_ubyte
from skimage.feature import peak_local_max
from skimage.filters import gaussian, threshold_otsu
from skimage.filters.rank import entropy
from skimage.morphology import disk
from skimage.segmentation import watershed

from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import TrackingResult
from celltrail.core.sequence import open_sequence, read_tiff
from celltrail.io.ctc import numbered_files, read_segmentation_gt, read_tracking_gt
from celltrail.linking import equivalent_diameters, link_laptrack, measure
from celltrail.metrics import evaluate_result
from celltrail.simulate import subsample
from celltrail.training.embedtrack.data import split_index

#: The shared real sequences, reached from the repo root.
SHARED = Path("../shared/data/ctc")

#: The shared sequences and the preset of their modality (chosen by modality, not by sequence).
SEQUENCES = {
    "DIC-C2DH-HeLa": "dic",
    "Fluo-N2DH-SIM+": "fluo-nuclei",
    "Fluo-N2DH-GOWT1": "fluo-nuclei",
}


def median_diameter(masks: Sequence[np.ndarray]) -> float:
    """Median equivalent diameter of the objects of some label images."""
    areas = np.concatenate([measure(np.asarray(m)).areas for m in masks])
    return float(np.median(equivalent_diameters(areas)))


def gt_diameter(gt_dir: Path) -> float:
    """Cell scale of a sequence: median diameter of its reference (else silver) segmentation.

    Never the TRA markers, which can be far smaller than the cells.
    """
    for folder in (gt_dir, gt_dir.with_name(gt_dir.name.replace("_GT", "_ST"))):
        if (folder / "SEG").is_dir():
            return median_diameter([read_tiff(p) for p in read_segmentation_gt(folder).values()])
    raise FileNotFoundError(f"no SEG folder for {gt_dir}")


def oracle_frames(gt_dir: Path, seed: int) -> list[np.ndarray]:
    """The TRA markers, each frame's labels replaced by a random permutation of 1..n."""
    rng = np.random.default_rng(seed)
    frames = []
    for markers in read_tracking_gt(gt_dir).masks:
        labels, inverse = np.unique(markers, return_inverse=True)
        new = np.zeros(len(labels), dtype=np.int64)
        fg = labels != 0
        new[fg] = rng.permutation(int(fg.sum())) + 1
        frames.append(new[inverse.reshape(markers.shape)].astype(np.uint16))
    return frames


def peer_segmenter(preset: str) -> Callable[[np.ndarray], np.ndarray]:
    """Plain scikit-image segmentation: Gaussian, Otsu (for DIC on the local entropy), hole
    filling, specks removed (below a quarter of the median object area), distance-transform
    watershed with seeds at least a median object radius apart."""

    def run(image: np.ndarray) -> np.ndarray:
        smooth = gaussian(image.astype(np.float32), sigma=2)
        if preset == "dic":  # texture: local entropy of the 8-bit image
            work = gaussian(entropy(img_as_ubyte(smooth / smooth.max()), disk(5)), sigma=4)
        else:
            work = smooth
        mask = ndi.binary_fill_holes(work > threshold_otsu(work))
        objects, n = ndi.label(mask)
        areas = np.bincount(objects.ravel())[1:]
        if n == 0:
            return objects
        typical = float(np.median(areas[areas >= 30])) if (areas >= 30).any() else 30.0
        mask &= np.concatenate([[False], areas >= typical / 4])[objects]
        dist = ndi.distance_transform_edt(mask)
        radius = max(2, int(np.sqrt(typical / np.pi)))
        peaks = peak_local_max(dist, min_distance=radius, labels=ndi.label(mask)[0])
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        return watershed(-dist, markers, mask=mask)

    return run


def laptrack_result(frames: Sequence[np.ndarray], diameter: float) -> TrackingResult:
    """laptrack (splitting and gap closing on, cutoffs (0.8 d)² in squared pixels) as a CTC
    result: celltrail's adapter, :func:`celltrail.linking.link_laptrack`."""
    return link_laptrack(frames, cell_diameter=diameter)


def one_frame_tracks(masks: Sequence[np.ndarray]) -> TrackingResult:
    """Each segment its own one-frame track (labels unique over the sequence): DET and SEG of a
    segmentation without any linking."""
    out, tracks, next_label = [], [], 1
    for t, mask in enumerate(masks):
        ids = np.unique(mask)
        ids = ids[ids > 0]
        lut = np.zeros(int(mask.max(initial=0)) + 1, np.int64)
        lut[ids] = np.arange(next_label, next_label + len(ids))
        out.append(lut[mask])
        tracks += [Track(int(label), t, t, 0) for label in lut[ids]]
        next_label += len(ids)
    return TrackingResult(out, Lineage(tracks))


def score_result(result: TrackingResult, gt_dir: Path) -> dict:
    """py-ctcmetrics scores of a valid result (raises on an invalid one)."""
    result.validate()
    return evaluate_result(result, gt_dir, threads=1)


def tail(name: str, out: Path) -> tuple[Path, str]:
    """The last 10% of ``name``'s sequence 01 with its GT; which truth SEG is scored on."""
    seq = SHARED / name / "01"
    n = len(open_sequence(seq))
    split = split_index(n)
    images = subsample(seq, seq.with_name("01_GT"), out, step=1, start=split)
    seg = images.with_name("01_GT") / "SEG"
    if seg.is_dir():
        return images, "GT"
    silver = numbered_files(seq.with_name("01_ST") / "SEG", "man_seg") \
        if seq.with_name("01_ST").is_dir() else {}
    kept = {t - split: path for t, path in silver.items() if t >= split}
    if not kept:
        return images, "none"
    seg.mkdir()
    for t, path in kept.items():
        shutil.copyfile(path, seg / f"man_seg{t:03d}.tif")
    return images, "ST"


def finished_model(path: Path) -> bool:
    """Whether ``path`` holds a model whose training ran all its steps (a run in progress
    leaves its last checkpoint at the same path)."""
    if not path.is_file():
        return False
    state = torch.load(path, weights_only=True, map_location="cpu")
    return state.get("step", -1) >= state.get("params", {}).get("steps", 0)
