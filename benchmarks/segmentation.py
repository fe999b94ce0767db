"""Benchmark the classical segmentation on the shared CTC sequences (SEG, DET, seconds per frame).

Every segment of every frame is written as a one-frame track, so the scores measure the
segmentation alone (DET and SEG do not depend on linking). A peer baseline — plain scikit-image
Otsu (fluorescence) or Otsu on a Sobel gradient (DIC) plus a default distance-transform watershed —
is scored in the same run. The estimated diameter is printed next to the one measured on the
reference segmentations.

    python benchmarks/segmentation.py [--data ../shared/data/ctc] [--frames N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import gaussian, sobel, threshold_otsu
from skimage.measure import regionprops
from skimage.segmentation import watershed

from celltrail.core.lineage import Lineage, Track
from celltrail.core.result import TrackingResult
from celltrail.io.ctc import read_images, read_segmentation_gt
from celltrail.io.ctc import write_result as write_ctc
from celltrail.metrics import evaluate
from celltrail.segmentation import Segmenter

#: Sequence and the preset of its modality (chosen by modality, not by sequence).
SEQUENCES = {
    "DIC-C2DH-HeLa": "dic",
    "Fluo-N2DH-SIM+": "fluo-nuclei",
    "Fluo-N2DH-GOWT1": "fluo-nuclei",
}


def peer(preset: str) -> Callable[[np.ndarray], np.ndarray]:
    """Plain scikit-image baseline with default-ish settings."""

    def run(image: np.ndarray) -> np.ndarray:
        smooth = gaussian(image.astype(np.float32), sigma=2)
        work = sobel(smooth) if preset == "dic" else smooth
        mask = ndi.binary_fill_holes(work > threshold_otsu(work))
        dist = ndi.distance_transform_edt(mask)
        peaks = peak_local_max(dist, min_distance=10, labels=ndi.label(mask)[0])
        markers = np.zeros(mask.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        return watershed(-dist, markers, mask=mask)

    return run


def one_frame_tracks(masks: list[np.ndarray]) -> TrackingResult:
    """Relabel so labels are unique over the sequence; each segment is a track ``L t t 0``."""
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


def gt_diameter(gt_dir: Path) -> float:
    """Median equivalent diameter of the reference segmentations."""
    import tifffile

    diameters = [
        r.equivalent_diameter_area
        for path in read_segmentation_gt(gt_dir).values()
        for r in regionprops(tifffile.imread(path))
    ]
    return float(np.median(diameters))


def score(method: Callable[[np.ndarray], np.ndarray], frames, gt_dir: Path) -> dict[str, float]:
    start = time.perf_counter()
    masks = [method(frame) for frame in frames]
    seconds = (time.perf_counter() - start) / len(frames)
    with tempfile.TemporaryDirectory() as tmp:
        res = write_ctc(one_frame_tracks(masks), Path(tmp) / "res")
        scores = evaluate(gt_dir, res, threads=1)
    return {"SEG": scores["SEG"], "DET": scores["DET"], "s/frame": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data/ctc")
    args = parser.parse_args()
    rows = []
    for name, preset in SEQUENCES.items():
        seq_dir, gt_dir = args.data / name / "01", args.data / name / "01_GT"
        frames = [np.asarray(f) for f in read_images(seq_dir)]
        ours = Segmenter(preset)
        ours(frames[0])
        for method_name, method in (("celltrail", ours), ("peer", peer(preset))):
            s = score(method, frames, gt_dir)
            rows.append((name, method_name, preset, s, frames[0].shape))
        print(f"{name}: estimated diameter {ours.diameter:.1f} px, "
              f"GT SEG diameter {gt_diameter(gt_dir):.1f} px", flush=True)
    print(f"\n{'sequence':18} {'method':10} {'preset':12} {'SEG':>6} {'DET':>6} {'s/frame':>8}"
          f" {'s/512²':>8}")
    for name, method_name, preset, s, shape in rows:
        per_512 = s["s/frame"] * 512 * 512 / (shape[0] * shape[1])
        print(f"{name:18} {method_name:10} {preset:12} {s['SEG']:6.3f} {s['DET']:6.3f}"
              f" {s['s/frame']:8.4f} {per_512:8.4f}")


if __name__ == "__main__":
    main()
