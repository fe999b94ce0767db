"""Movie sizes: the same overlay movie as GIF and as MP4, on the bundled sample and the shared
CTC sequences, each drawn from its ground truth taken as the result (contours, ids, trails,
family colours, frame numbers).

Run from the repo root: ``python benchmarks/movie_sizes.py``. Prints one row per sequence:
frames, frame size, the GIF's and the MP4's size in MB, how many times smaller the MP4 is, and
the seconds each took to draw and write. The shared sequences are skipped where
``../shared/data/ctc`` is missing.
"""

from __future__ import annotations

import tempfile
import time
from importlib.resources import files
from pathlib import Path

from common import SEQUENCES, SHARED

from celltrail.core.sequence import open_sequence
from celltrail.io.ctc import gt_as_result
from celltrail.viz.movie import write_movie

SAMPLE = Path(str(files("celltrail") / "sample_data" / "Fluo-N2DH-GOWT1-crop"))


def sizes(sequence: Path, out: Path) -> list[str]:
    """The row of one sequence (``NN`` folder beside its ``NN_GT``)."""
    images = open_sequence(sequence)
    result = gt_as_result(sequence.with_name(sequence.name + "_GT"))
    row = [f"{len(images)}", "x".join(map(str, images.shape))]
    megabytes, seconds = [], []
    for suffix in (".gif", ".mp4"):
        start = time.perf_counter()
        path = write_movie(images, result.masks, out / f"movie{suffix}", lineage=result.lineage)
        seconds.append(time.perf_counter() - start)
        megabytes.append(path.stat().st_size / 1e6)
    return row + [f"{m:.2f}" for m in megabytes] + [f"{megabytes[0] / megabytes[1]:.1f}"] + [
        f"{s:.1f}" for s in seconds]


def main() -> None:
    sequences = {"bundled sample (GOWT1 01 crop)": SAMPLE / "01"}
    sequences |= {name: SHARED / name / "01" for name in SEQUENCES
                  if (SHARED / name / "01").is_dir()}
    print("| sequence | frames | size | GIF MB | MP4 MB | GIF/MP4 | GIF s | MP4 s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, sequence in sequences.items():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"| {name} | " + " | ".join(sizes(sequence, Path(tmp))) + " |", flush=True)


if __name__ == "__main__":
    main()
