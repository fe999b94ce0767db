"""What bad frames cost each method: seconds per frame on good and on bad frames, and objects.

A simulated fluorescent-nuclei sequence (512², 30 cells at the start, 30 frames, seed 0) in
which four blocks of three frames are spoilt in ways that make detectors see objects that are
not there; good blocks of three frames lie between them, so every bad block is met by a
tracker that has seen good frames first:

- ``noise``: read noise far above the signal (s.d. twice the frame's 1–99 percentile range);
  percentile normalisation stretches it to full contrast, a carpet of one-pixel "nuclei";
- ``speckle``: bright spots about a tenth of a cell wide, four per cell area, over the
  whole frame (dust, precipitate, a stain gone wrong): textured blobs of sub-cell size;
- ``dark``: the shutter closed, cells gone, only camera noise left, which normalisation
  stretches as it does a real frame;
- ``defocus``: a flare, the frame blurred to several cell diameters and a bright gradient
  added, saturating part of it.

Each method runs in a fresh process that builds its tracker (model loading, not timed) and
tracks the whole sequence in memory; a frame's time is the interval between the tracker's
progress calls (so it includes what the method does between them: clustering, linking). Good
s/frame is the median over good frames, leaving out frame 0 and the first frame after a bad
block; bad s/frame the median over a kind's three frames. Objects are labels in the result
masks. Settings as :mod:`benchmarks.speed`: classical with the fluo-nuclei preset; BoxTrack's
learned backend as shipped from the first frame's GT boxes; EmbedTrack and CellBoxify with the
models trained on Fluo-N2DH-SIM+ 01 (none saw these simulated frames). CAP is left out.

    python benchmarks/bad_frames.py [--threads 2] [--methods classical embedtrack ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

import celltrail
from celltrail.simulate import SimParams, simulate
from celltrail.summary import summary_lines

#: Each method's options for this benchmark (as benchmarks/speed.py).
SETTINGS = {
    "classical": {"preset": "fluo-nuclei"},
    "embedtrack": {"model": "Fluo-N2DH-SIM+"},
    "cellboxify": {"model": "Fluo-N2DH-SIM+_box"},
    "boxtrack": {"backend": "learned", "adapt": False},
}
#: The ways a frame is spoilt, in the order of their blocks.
KINDS = ("noise", "speckle", "dark", "defocus")
#: Frames per block; the sequence is a good block, then each kind's block and a good block.
BLOCK = 3
SIDE, CELLS, DIAMETER = 512, 30, 24.0


def layout() -> list[str]:
    """Each frame's kind: ``good`` or one of :data:`KINDS`."""
    frames = ["good"] * 2 * BLOCK
    for kind in KINDS:
        frames += [kind] * BLOCK + ["good"] * BLOCK
    return frames


def spoil(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``image`` spoilt the ``kind`` way, in its own dtype's range."""
    x = image.astype(np.float64)
    top = float(np.iinfo(image.dtype).max)
    low, high = np.percentile(x, [1, 99])
    if kind == "noise":
        x = x + rng.normal(0.0, 2 * (high - low), x.shape)
    elif kind == "speckle":
        spots = rng.random(x.shape) < 400 / (np.pi * DIAMETER**2 / 4) / 100
        x = x + ndi.gaussian_filter(spots * 1.0, DIAMETER / 20) * (DIAMETER / 20) ** 2 * \
            2 * np.pi * (high - low)
    elif kind == "dark":
        x = low + rng.normal(0.0, max(1.0, 0.02 * (high - low)), x.shape)
    elif kind == "defocus":
        ramp = np.linspace(0.0, 1.0, x.shape[1])[None, :]
        x = ndi.gaussian_filter(x, 3 * DIAMETER) + 1.5 * (high - low) * ramp
        x = x + rng.normal(0.0, 0.02 * (high - low), x.shape)
    return np.clip(np.rint(x), 0, top).astype(image.dtype)


def make_sequence(folder: Path) -> Path:
    """The simulated sequence with its bad blocks written over the good frames."""
    kinds = layout()
    seq = simulate(folder, SimParams(frames=len(kinds), size=SIDE, cells=CELLS,
                                     cell_diameter=DIAMETER), seed=0)
    rng = np.random.default_rng(1)
    for path, kind in zip(sorted(seq.glob("t*.tif")), kinds, strict=True):
        if kind != "good":
            tifffile.imwrite(path, spoil(tifffile.imread(path), kind, rng))
    return seq


def one(method: str, seq: Path, threads: int) -> dict[str, list[float]]:
    """Track ``seq`` with ``method`` in this process: each frame's seconds and objects."""
    celltrail.set_threads(threads)
    tracker = celltrail.load_tracker(method, **SETTINGS[method])
    images = celltrail.open_sequence(seq)
    prompts = seq.with_name(f"{seq.name}_GT") if method == "boxtrack" else None
    stamps = [time.perf_counter()]
    result = tracker.track(images, prompts, on_frame=lambda t: stamps.append(time.perf_counter()))
    objects = [float(len(np.unique(m)) - 1) for m in result.masks]
    return {"seconds": np.diff(stamps).tolist(), "objects": objects,
            "warnings": [w for w in summary_lines(
                result.lineage, len(images), result.settings) if w.startswith("warning")]}


def rows(method: str, r: dict[str, list[float]]) -> list[str]:
    """The table rows of one method's run, one per kind of bad frame."""
    kinds, seconds, objects = layout(), np.array(r["seconds"]), np.array(r["objects"])
    good = [t for t, k in enumerate(kinds) if k == "good" and t and kinds[t - 1] == "good"]
    g_sec, g_obj = float(np.median(seconds[good])), float(np.median(objects[good]))
    out = []
    for kind in KINDS:
        bad = [t for t, k in enumerate(kinds) if k == kind]
        b_sec, b_obj = float(np.median(seconds[bad])), float(np.median(objects[bad]))
        out.append(f"| {method} | {kind} | {g_sec:.3f} | {b_sec:.3f} | {b_sec / g_sec:.1f} | "
                   f"{g_obj:.0f} | {b_obj:.0f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "SEQ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], Path(args.one[1]), args.threads)))
        return
    print("| method | bad frames | good s/frame | bad s/frame | bad/good | objects/good frame "
          "| objects/bad frame |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        seq = make_sequence(Path(tmp))
        notes = []
        for method in args.methods:
            out = subprocess.run([sys.executable, __file__, "--one", method, str(seq),
                                  "--threads", str(args.threads)],
                                 capture_output=True, text=True, check=False)
            if out.returncode:
                print(f"| {method} | failed: {out.stderr.strip().splitlines()[-1]} |||||")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print("\n".join(rows(method, r)), flush=True)
            notes += [f"{method}: {w}" for w in r["warnings"]]
            notes += [f"{method}: warning: {line}" for line in out.stderr.splitlines()
                      if "Warning" in line]
    print("\n".join(notes))


if __name__ == "__main__":
    main()
