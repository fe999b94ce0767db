"""Draw the docs' result pictures from Fluo-N2DH-SIM+ 01, its ground truth taken as a result
(95 tracks, 28 divisions): ``docs/lineage.png`` (the lineage tree), ``docs/movie.gif`` (every
2nd frame at half size, with contours, ids, trails and family colours) and ``docs/report.html``
(the HTML report, scored against that same ground truth, so every score is 1).

The sequence is read from ``../shared/data/ctc`` or the folder given as the first argument.
Run from the repository root: ``python docs/make_pictures.py [CTC_DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from celltrail.core.sequence import open_sequence
from celltrail.io.ctc import gt_as_result, write_result
from celltrail.viz.lineage import plot_lineage
from celltrail.viz.movie import write_movie
from celltrail.viz.report import write_report

DOCS = Path(__file__).parent
#: Every STEP-th frame at 1/STEP of the size keeps the GIF small.
STEP = 2


def halve(frame: np.ndarray, label: bool) -> np.ndarray:
    """Every 2nd pixel of a label mask, or the mean of each 2x2 block of an image."""
    if label:
        return frame[::STEP, ::STEP]
    h, w = (s - s % STEP for s in frame.shape)
    return frame[:h, :w].reshape(h // STEP, STEP, w // STEP, STEP).mean(axis=(1, 3))


def main() -> None:
    ctc = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ctc")
    sequence = ctc / "Fluo-N2DH-SIM+"
    result = gt_as_result(sequence / "01_GT")
    images = open_sequence(sequence / "01")
    print(f"wrote {plot_lineage(result.lineage, DOCS / 'lineage.png', result.masks)}")

    frames = range(0, len(images), STEP)
    small_images = [halve(images[t], label=False) for t in frames]
    small_masks = [halve(result.masks[t], label=True) for t in frames]
    movie = write_movie(small_images, small_masks, DOCS / "movie.gif", fps=6,
                        lineage=result.lineage)
    print(f"wrote {movie}")

    with tempfile.TemporaryDirectory() as tmp:
        res = write_result(result, Path(tmp) / "01_RES")
        report = write_report(res, images, DOCS / "report.html", gt_dir=sequence / "01_GT")
    print(f"wrote {report}")


if __name__ == "__main__":
    main()
