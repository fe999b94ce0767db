"""Make the small real sample shipped in the package (run once; its output is committed).

Crops a window of frames and pixels out of a CTC training sequence with its ground truth and
rewrites ``man_track.txt`` so the crop is a valid CTC sequence on its own.

    python tools/make_sample_data.py ../shared/data/ctc/Fluo-N2DH-GOWT1 \
        src/celltrail/sample_data/Fluo-N2DH-GOWT1-crop --y 256 --x 192 --size 384 --frames 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import tifffile

from celltrail.core.result import TrackingResult
from celltrail.io.atomic import atomic_dir
from celltrail.io.ctc import numbered_files, read_man_track, read_tracking_gt, write_man_track


def crop_sequence(src: Path, out: Path, y: int, x: int, size: int, frames: int) -> None:
    """Write ``src`` (a CTC dataset folder holding ``01`` and ``01_GT``) cropped to ``out``."""
    window = (slice(y, y + size), slice(x, x + size))
    truth = read_tracking_gt(src / "01_GT")
    parents = {label: track.parent for label, track in read_man_track(
        src / "01_GT" / "TRA" / "man_track.txt").items()}
    markers = [np.asarray(truth.masks[t])[window] for t in range(frames)]
    cropped = TrackingResult.from_masks(markers, parents)
    with atomic_dir(out, overwrite=True) as tmp:  # the sample is ours to rewrite
        for sub in ("01", "01_GT/TRA", "01_GT/SEG"):
            (tmp / sub).mkdir(parents=True)
        for t in range(frames):
            image = tifffile.imread(src / "01" / f"t{t:03d}.tif")[window]
            tifffile.imwrite(tmp / "01" / f"t{t:03d}.tif", image, compression="zlib")
            tifffile.imwrite(tmp / "01_GT" / "TRA" / f"man_track{t:03d}.tif", cropped.masks[t],
                             compression="zlib")
        write_man_track(cropped.lineage, tmp / "01_GT" / "TRA" / "man_track.txt")
        for t, path in numbered_files(src / "01_GT" / "SEG", "man_seg").items():
            if t < frames:
                seg = tifffile.imread(path)[window]
                # cells whose marker lies outside the crop have no track here: drop them
                seg[~np.isin(seg, np.unique(seg[markers[t] > 0]))] = 0
                tifffile.imwrite(tmp / "01_GT" / "SEG" / path.name, seg, compression="zlib")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--y", type=int, required=True)
    parser.add_argument("--x", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--frames", type=int, required=True)
    args = parser.parse_args()
    crop_sequence(args.src, args.out, args.y, args.x, args.size, args.frames)


if __name__ == "__main__":
    main()
