"""Draw ``docs/embedtrack.png``: what EmbedTrack predicts on a frame it was not trained on.

Panels: the frame; the seediness; every foreground pixel moved by its segmentation offset (the
shifted pixels pile up at the cell centres, the clusters); the instances after clustering; the
tracking offsets, as the pixels of frame t moved onto frame t − 1 (drawn over frame t − 1).
Frame 60 of Fluo-N2DH-SIM+ 01 (in the last 10%, held out from training), a 256-pixel crop, with
the shipped model. Run: ``python docs/make_embedtrack_figure.py [CTC_DIR]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import tifffile
from skimage.segmentation import find_boundaries

from celltrail.methods.embedtrack import EmbedTracker
from celltrail.methods.embedtrack.clustering import cluster
from celltrail.models.embedtrack import COORD_UNIT

NAME, FRAME, CROP = "Fluo-N2DH-SIM+", 60, (slice(200, 456), slice(150, 406))


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/ctc") / NAME / "01"
    frames = [tifffile.imread(root / f"t{t:03d}.tif") for t in (FRAME - 1, FRAME)]
    tracker = EmbedTracker(model=NAME)
    tracker.predict(frames[0])
    prediction = tracker.predict(frames[1])
    labels = cluster(prediction[:5], tracker.min_size)
    rows, cols = np.nonzero(prediction[4] > 0.5)
    fig, axes = plt.subplots(1, 5, figsize=(17, 3.8))
    shown = [frames[1][CROP], prediction[4][CROP], frames[1][CROP], frames[1][CROP],
             frames[0][CROP]]
    titles = ["frame t", "seediness", "shifted pixels (segmentation)", "instances",
              "shifted pixels (tracking) on t − 1"]
    for ax, image, title in zip(axes, shown, titles, strict=True):
        ax.imshow(image, cmap="magma" if title == "seediness" else "gray")
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    top, left = CROP[0].start, CROP[1].start
    for ax, channels in ((axes[2], (0, 1)), (axes[4], (5, 6))):
        ey = rows + prediction[channels[0], rows, cols] * COORD_UNIT - top
        ex = cols + prediction[channels[1], rows, cols] * COORD_UNIT - left
        keep = (ey >= 0) & (ey < 256) & (ex >= 0) & (ex < 256)
        ax.scatter(ex[keep], ey[keep], s=0.3, c=labels[rows, cols][keep], cmap="tab20",
                   alpha=0.5)
        ax.set_xlim(-0.5, 255.5)
        ax.set_ylim(255.5, -0.5)
    crop = labels[CROP]
    overlay = np.ma.masked_where(crop == 0, crop % 20)
    axes[3].imshow(overlay, cmap="tab20", alpha=0.45, interpolation="nearest")
    axes[3].contour(find_boundaries(crop), levels=[0.5], colors="white", linewidths=0.4)
    fig.tight_layout()
    out = Path(__file__).with_name("embedtrack.png")
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
