"""Draw ``docs/modalities.png``: synthetic frames (top row) above real CTC frames (bottom row).

Top: celltrail's ``fluo-nuclei``, ``dic`` and ``phase`` simulations. Bottom: Fluo-N2DH-GOWT1,
DIC-C2DH-HeLa and Fluo-N2DH-SIM+ (frame 10, a 512-pixel crop shown at half size), read from
``../shared/data/ctc`` or the folder given as the first argument. Every tile is contrast
stretched to its 0.5-99.8 percentiles. Run: ``python docs/make_modalities.py [CTC_DIR]``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from skimage.transform import resize

from celltrail.simulate import SimParams, simulate

TILE = 256
SYNTHETIC = (
    SimParams(frames=12, size=TILE, cells=22, modality="fluo-nuclei", cell_diameter=24),
    SimParams(frames=12, size=TILE, cells=12, modality="dic", cell_diameter=56, overlap=0.05),
    SimParams(frames=12, size=TILE, cells=18, modality="phase", cell_diameter=34),
)
REAL = ("Fluo-N2DH-GOWT1", "DIC-C2DH-HeLa", "Fluo-N2DH-SIM+")


def _stretch(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.8))
    return (np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8)


def _real_tile(ctc: Path, name: str) -> np.ndarray:
    frame = tifffile.imread(ctc / name / "01" / "t010.tif").astype(np.float64)
    crop = frame[:512, :512]
    return resize(crop, (TILE, TILE), anti_aliasing=True, preserve_range=True)


def main() -> None:
    ctc = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2] / "shared/data/ctc"
    with tempfile.TemporaryDirectory() as tmp:
        top = [tifffile.imread(simulate(Path(tmp) / str(i), params, seed=4) / "t010.tif")
               for i, params in enumerate(SYNTHETIC)]
    bottom = [_real_tile(ctc, name) for name in REAL]
    gap = np.full((TILE, 4), 255, dtype=np.uint8)
    rows = []
    for tiles in (top, bottom):
        row = [part for tile in tiles for part in (_stretch(tile), gap)][:-1]
        rows.append(np.concatenate(row, axis=1))
    figure = np.concatenate([rows[0], np.full((4, rows[0].shape[1]), 255, np.uint8), rows[1]])
    out = Path(__file__).parent / "modalities.png"
    iio.imwrite(out, figure)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
