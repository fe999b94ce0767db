"""Overlay of cell contours and track ids on a frame, written as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from skimage.measure import regionprops
from skimage.segmentation import find_boundaries

from celltrail.io.atomic import atomic_file


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Contrast-stretch a frame to 8 bits between its 1st and 99.8th percentiles."""
    lo, hi = np.percentile(image, (1, 99.8))
    scaled = (image.astype(np.float32) - lo) / max(float(hi - lo), 1e-6)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def label_colour(label: int) -> tuple[int, int, int]:
    """A bright colour fixed by the label, so a track keeps its colour over time."""
    rng = np.random.default_rng(int(label))
    hue = rng.random()
    rgb = np.array([abs(hue * 6 - 3) - 1, 2 - abs(hue * 6 - 2), 2 - abs(hue * 6 - 4)])
    return tuple(int(c) for c in (np.clip(rgb, 0, 1) * 200 + 55))


def overlay_frame(image: np.ndarray, mask: np.ndarray) -> Image.Image:
    """RGB picture of ``image`` with each labelled cell's contour and id drawn in its colour."""
    grey = to_uint8(image)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    edges = find_boundaries(mask, mode="inner")
    regions = regionprops(mask)
    for region in regions:
        sl = region.slice
        sel = edges[sl] & (mask[sl] == region.label)
        rgb[sl][sel] = label_colour(region.label)
    picture = Image.fromarray(rgb)
    draw = ImageDraw.Draw(picture)
    for region in regions:
        y, x = region.centroid
        draw.text((x, y), str(region.label), fill=label_colour(region.label), anchor="mm",
                  stroke_width=1, stroke_fill=(0, 0, 0))
    return picture


def write_overlay(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], frames: Sequence[int], path: Path
) -> Path:
    """Write the overlays of ``frames`` side by side as one PNG."""
    tiles = [overlay_frame(images[t], masks[t]) for t in frames]
    width = sum(tile.width for tile in tiles) + 4 * (len(tiles) - 1)
    sheet = Image.new("RGB", (width, max(tile.height for tile in tiles)), (255, 255, 255))
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + 4
    with atomic_file(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path
