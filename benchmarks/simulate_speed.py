"""Time the simulator on the reference size: 256x256 pixels, 50 frames, 30 cells, per modality.

Run: ``python benchmarks/simulate_speed.py``. The target is under 5 s per sequence.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from celltrail.simulate import MODALITIES, SimParams, simulate


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for modality in MODALITIES:
            params = SimParams(frames=50, size=256, cells=30, modality=modality)
            start = time.perf_counter()
            simulate(Path(tmp) / modality, params, seed=0)
            print(f"{modality:12s} 256x256x50, 30 cells: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
