"""The classical segmentation alone on the shared CTC sequences: SEG, DET, seconds per frame.

Every segment of every frame is written as a one-frame track, so the scores measure the
segmentation alone (DET and SEG do not depend on linking). The peer (plain scikit-image Otsu, or
Otsu on a Sobel gradient for DIC, plus a distance-transform watershed) is scored in the same run.
The estimated cell diameter is printed next to the one of the reference segmentation.

    python benchmarks/segmentation.py [--data ../shared/data/ctc]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import SEQUENCES, gt_diameter, one_frame_tracks, peer_segmenter, score_result

from celltrail.io.ctc import read_images
from celltrail.segmentation import Segmenter, estimate_diameter


def score(method: Callable[[np.ndarray], np.ndarray], frames, gt_dir: Path) -> dict[str, float]:
    """SEG, DET and seconds per frame of a segmentation method."""
    start = time.perf_counter()
    masks = [method(frame) for frame in frames]
    seconds = (time.perf_counter() - start) / len(frames)
    scores = score_result(one_frame_tracks(masks), gt_dir)
    return {"SEG": scores["SEG"], "DET": scores["DET"], "s/frame": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/ctc"))
    args = parser.parse_args()
    print("| sequence | method | diameter (px) | SEG | DET | s/frame |\n|---|---|---|---|---|---|")
    for name, preset in SEQUENCES.items():
        seq_dir, gt_dir = args.data / name / "01", args.data / name / "01_GT"
        frames = [np.asarray(f) for f in read_images(seq_dir)]
        reference = gt_diameter(gt_dir)
        texture = preset != "fluo-nuclei"
        estimated = reference if texture else estimate_diameter(frames[0], preset)
        how = "reference" if texture else "estimated"
        print(f"| {name} | (reference diameter {reference:.1f}) | | | | |")
        for method, run, size in (("celltrail", Segmenter(preset, estimated), f"{estimated:.1f} "
                                   f"({how})"), ("peer", peer_segmenter(preset), "-")):
            s = score(run, frames, gt_dir)
            print(f"| {name} | {method} | {size} | {s['SEG']:.3f} | {s['DET']:.3f} | "
                  f"{s['s/frame']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
