"""The cell scale and the imaging look of a frame, measured from the frame itself.

Look: in fluorescence nothing is darker than the background, so the pixels far from the
background level (its histogram mode, beyond ``_OUTLIER_SIGMAS`` noise sigmas) are all on the
bright side; cells that absorb light (bright field) are the mirror image, all on the dark side;
otherwise (DIC, phase contrast) cells show both darker and brighter pixels than the background.
DIC shows the relief along one shear direction: its gradient energy is anisotropic (an ideal DIC
image of isotropic cells has structure-tensor anisotropy 1/2, any isotropic image 0; the cut is
halfway).

Size: Lindeberg's scale-normalised Laplacian-of-Gaussian (LoG) blob detector on an object map,
the intensity for bright objects and, for textured cells, the mask of high local texture (a
binary map, so the texture inside a cell does not vote). Every scale-space maximum is a blob of
diameter ``2 sqrt(2) sigma`` (a disc's LoG response peaks at ``sigma = r / sqrt(2)``); the
diameter is the median of the blobs weighted by response times area, so that the cell scale
wins over the many small texture and noise blobs. The confidence is the share of that weight
within a factor sqrt(2) of the answer: low when the sizes spread over many scales. Textured
cells packed into clumps show no size at all (the mask is one plateau; only their borders,
which texture does not mark, separate them): when most of the mask lies deeper inside it than
a measured diameter, which no isolated cell of that size reaches, the estimate is refused too.

When refused, the caller asks for the diameter (``--diameter``), saying which of these it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

#: Pixels beyond this many noise sigmas from the background level are signal (Gaussian noise
#: leaves 6e-5 of the pixels there).
_OUTLIER_SIGMAS = 4.0
#: Fluorescence: of the signal pixels, at most this share may be darker than the background
#: (ideally none: a fluorescence background has nothing below it but noise); the same share
#: brighter, for cells that only absorb.
_MAX_DARK_SHARE = 0.05
#: DIC: structure-tensor anisotropy above this (halfway between isotropic 0 and ideal DIC 1/2).
_DIC_ANISOTROPY = 0.25
#: Scales per octave of the blob detector and the smallest sigma (pixels; a 4 px cell).
_PER_OCTAVE, _SIGMA_MIN = 4, 1.4
#: Presets whose size is measured on the texture mask, and the largest share of its foreground
#: that may lie in packed clumps (deeper than a diameter) before the size is not trusted: most.
PRESETS_TEXTURED, MAX_PACKED = ("dic", "phase"), 0.5
#: Below this confidence the estimate is not used: under a quarter of the blob weight lies
#: within a factor sqrt(2) of the answer (one octave out of the four to five a frame spans).
MIN_CONFIDENCE = 0.25


@dataclass(frozen=True)
class Scale:
    """The preset and cell diameter used for a sequence, and where each came from."""

    preset: str
    diameter: float
    preset_from: str
    diameter_from: str
    confidence: float = 1.0


#: Smoothing (pixels) of the texture map: the 3x3 standard deviation is noisy pixel to pixel.
SMOOTH = 2.0


def _normalise(image: np.ndarray, factor: int = 1) -> np.ndarray:
    """Float image block-averaged by ``factor``, robustly scaled to about [0, 1]."""
    x = np.asarray(image, dtype=np.float32)
    if factor > 1:
        h, w = (s // factor for s in x.shape)
        x = x[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))
    lo, hi = np.percentile(x, [0.1, 99.9])
    return (x - lo) / max(float(hi - lo), 1e-6)


def _background(x: np.ndarray) -> tuple[float, float]:
    """Background level (the mode of the histogram) and noise sigma (from the spread below the
    mode, which cells of either look barely reach; 1.4826 turns a median deviation into sigma),
    on the 256-bin histogram of ``x`` scaled to [0, 1]."""
    hist, edges = np.histogram(x, bins=256, range=(0.0, 1.0))
    level = edges[int(np.argmax(ndi.gaussian_filter1d(hist.astype(float), 2)))] + 0.5 / 256
    below = level - x[x < level]
    noise = 1.4826 * float(np.median(below)) if below.size else 0.0
    return float(level), max(noise, 1 / 256)  # at least a bin: a background clipped at zero


def look(image: np.ndarray) -> tuple[str, str]:
    """The preset for the look of ``image`` (fluo-nuclei, brightfield, dic or phase) and why."""
    x = _normalise(image, 2)  # averaging 2x2 quarters the noise variance, keeps cells
    level, noise = _background(x)
    bright = float(np.mean(x > level + _OUTLIER_SIGMAS * noise))
    dark = float(np.mean(x < level - _OUTLIER_SIGMAS * noise))
    share = dark / max(bright + dark, 1e-9)
    if bright > 0 and share <= _MAX_DARK_SHARE:
        return "fluo-nuclei", (f"bright objects on a dark background, {100 * share:.0f}% of "
                               "the signal darker than the background")
    if dark > 0 and share >= 1 - _MAX_DARK_SHARE:
        return "brightfield", (f"dark objects on a bright background, {100 * (1 - share):.0f}% "
                               "of the signal brighter than the background")
    gy, gx = np.gradient(ndi.gaussian_filter(x, 1.0))
    tensor = np.array([[np.mean(gx * gx), np.mean(gx * gy)], [np.mean(gx * gy), np.mean(gy * gy)]])
    low, high = np.linalg.eigvalsh(tensor)
    anisotropy = float((high - low) / max(high + low, 1e-12))
    what = (f"cells darker and brighter than a mid-grey background, {100 * share:.0f}% of the "
            f"signal darker, gradient anisotropy {anisotropy:.2f}")
    if anisotropy > _DIC_ANISOTROPY:
        return "dic", f"{what}: relief along one direction"
    return "phase", f"{what}: isotropic texture, phase contrast or bright field"


def _blobs(objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sigma and response of the scale-space maxima of the normalised -LoG of ``objects``,
    one octave at a time on a 2x coarser image (the sigmas stay 1.4-3.4 px at each level)."""
    sigmas, responses = [], []
    level, factor = objects.astype(np.float32), 1
    steps = _SIGMA_MIN * 2.0 ** (np.arange(-1, _PER_OCTAVE + 1) / _PER_OCTAVE)
    while min(level.shape) >= 8 * steps[-1]:
        stack = np.stack([-(s * s) * ndi.gaussian_laplace(level, s) for s in steps])
        peak = (stack == ndi.maximum_filter(stack, size=3, mode="nearest")) & (stack > 0)
        k, y, x = np.nonzero(peak[1:-1])
        sigmas.append(steps[k + 1] * factor)
        responses.append(stack[k + 1, y, x])
        h, w = (s // 2 for s in level.shape)
        level = level[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))
        factor *= 2
    if not sigmas:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(sigmas), np.concatenate(responses)


def _texture_mask(x: np.ndarray) -> np.ndarray:
    """Cells in transmitted light: where the local (3x3) standard deviation, lightly smoothed,
    is above Otsu's threshold of its logarithm (textured cells on a flat background), holes
    filled."""
    mean = ndi.uniform_filter(x, 3)
    std = np.sqrt(np.maximum(ndi.uniform_filter(x * x, 3) - mean * mean, 0))
    work = np.log(ndi.gaussian_filter(std, SMOOTH) + 1e-4)
    if work.max() - work.min() < 1e-6:
        return np.zeros(x.shape, bool)
    mask = ndi.binary_fill_holes(work > threshold_otsu(work))
    # the window and the smoothing spread a cell's texture by about their reach
    return ndi.binary_erosion(mask, iterations=round(1 + SMOOTH) - 1)


def estimate_diameter(image: np.ndarray, preset: str) -> tuple[float, float]:
    """Typical cell diameter in pixels and the confidence (0-1) of that estimate.

    ``preset`` says which object map is measured: the intensity (fluo-nuclei), the inverted
    intensity (brightfield) or the texture mask (dic, phase). Returns confidence 0 when the
    frame holds no blob at all.
    """
    x = _normalise(image)
    if preset in PRESETS_TEXTURED:
        objects = _texture_mask(x).astype(np.float32)
    else:
        objects = 1 - x if preset == "brightfield" else x
    sigma, response = _blobs(objects)
    if sigma.size == 0:
        return 0.0, 0.0
    diameter = 2 * np.sqrt(2) * sigma
    weight = response * sigma * sigma
    order = np.argsort(diameter)
    cumulative = np.cumsum(weight[order])
    d = float(diameter[order][np.searchsorted(cumulative, cumulative[-1] / 2)])
    near = np.abs(np.log2(diameter / d)) <= 0.5
    return d, float(weight[near].sum() / weight.sum())


def packed_share(image: np.ndarray, diameter: float) -> float:
    """Share of the textured foreground lying deeper inside it than ``diameter``: twice as deep
    as the middle of an isolated cell of that size, so only clumps of packed cells have any."""
    mask = _texture_mask(_normalise(image))
    if not mask.any():
        return 0.0
    return float(np.mean(ndi.distance_transform_edt(mask)[mask] > diameter))


#: A second opinion on the diameter, asked when the frame's blobs give none: the diameter and
#: where it came from, or ValueError saying why not.
SizeFallback = Callable[[np.ndarray], tuple[float, str]]


def measure_scale(image: np.ndarray, preset: str = "auto", diameter: float | None = None,
                  fallback: SizeFallback | None = None) -> Scale:
    """The preset and diameter for ``image``: those given, the others measured; when the blob
    estimate is refused, ``fallback``'s (for example a network's measurement).

    Raises ValueError, saying why, when no measured diameter is trustworthy.
    """
    preset_from = "given"
    if preset == "auto":
        preset, why = look(image)
        preset_from = f"auto: {why}"
    if diameter is not None:
        return Scale(preset, float(diameter), preset_from, "given")
    try:
        d, confidence = _blob_diameter(image, preset)
    except ValueError as refused:
        if fallback is None:
            raise
        try:
            d, where = fallback(image)
        except ValueError as failed:
            raise ValueError(f"{refused}; {failed}") from None
        return Scale(preset, d, preset_from, f"{where}; the blob estimate was refused")
    where = f"estimated from the first frame, confidence {confidence:.2f}"
    return Scale(preset, d, preset_from, where, confidence)


def _blob_diameter(image: np.ndarray, preset: str) -> tuple[float, float]:
    """:func:`estimate_diameter`, refused (ValueError, saying why) when it is not trustworthy."""
    d, confidence = estimate_diameter(image, preset)
    if confidence == 0.0:
        raise ValueError("the first frame shows no cell-like structure to measure")
    if confidence < MIN_CONFIDENCE:
        raise ValueError(f"the cell sizes in the first frame spread over many scales (estimate "
                         f"{d:.0f} px, confidence {confidence:.2f} < {MIN_CONFIDENCE})")
    if d > min(np.shape(image)) / 2:
        raise ValueError(f"the estimated cell diameter ({d:.0f} px) is over half the frame")
    if preset in PRESETS_TEXTURED and packed_share(image, d) > MAX_PACKED:
        raise ValueError(f"most of the textured foreground lies in clumps over two cells of "
                         f"the estimated {d:.0f} px wide, so the texture does not show where one "
                         "cell ends (packed cells)")
    return d, confidence
