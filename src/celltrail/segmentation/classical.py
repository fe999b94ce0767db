"""Classical cell segmentation: denoise, threshold, watershed, size filters (review, Sec. 2.1).

A histogram threshold (Otsu) separates cells from background and a watershed splits touching
cells. The review's weak points of this paradigm (parameters, noise, uneven brightness, touching
cells) are met by tying every length to the cell diameter ``d``, so no constant is in pixels:

- fluorescent nuclei: a top-hat removes uneven background; Otsu on the log contrast finds the
  bright nuclei, a 3-sigma noise threshold the dim ones; seeds are the maxima of the image
  smoothed at nucleus scale, and a watershed on the smoothed intensity splits touching nuclei.
- dark cells on a bright background (absorption in bright field, phase contrast without bright
  cells): the same, on the inverted image.
- bright-field, phase contrast, DIC: cells differ from the flat background by texture, so a
  local standard deviation is thresholded instead; packed cells are split along their borders by
  a watershed on the gradient magnitude, seeded where edges are sparse and far from background.

Images are block-averaged so that a cell spans about ``work_diameter`` pixels before any of this
(time falls with the square of the factor); labels are scaled back to the full image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from celltrail.core.errors import InputError
from celltrail.segmentation.scale import Scale, SizeFallback, measure_scale


@dataclass(frozen=True)
class SegmentParams:
    """Constants of the pipeline; lengths are fractions of the cell diameter ``d``.

    texture: threshold a local standard deviation instead of the intensity (bright-field, phase,
        DIC: cells are more textured than the background, not brighter).
    smooth: Gaussian sigma of the denoising step (fluorescence).
    background: side of the grey opening that estimates the background; larger than a cell so
        the opening removes every cell and keeps uneven illumination.
    noise_sigmas: dim cells are kept above this many background-noise sigmas, the usual
        detection limit.
    seed_smooth: Gaussian sigma of the image whose maxima seed the watershed; at this scale a
        nucleus has one maximum and its texture none.
    min_separation: seeds closer than this are one cell (centres of cells pressed together are
        still about half a diameter apart).
    min_area: segments below this fraction of the area of a disc of diameter ``d`` are debris.
    texture_window: side of the local-standard-deviation window: wider than the texture grain,
        narrower than the cell.
    edge_smooth: Gaussian sigma of the edge map whose minima seed textured cells: cell interiors
        are where edges are sparse at this scale.
    max_hole: holes in the foreground below this fraction of the cell area are filled.
    work_diameter: the cell diameter in pixels at which the work is done.
    invert: the cells are darker than the background: the intensity is inverted first.
    """

    texture: bool = False
    smooth: float = 1 / 12
    background: float = 1.5
    noise_sigmas: float = 3.0
    seed_smooth: float = 1 / 6
    min_separation: float = 0.3
    min_area: float = 0.1
    texture_window: float = 0.1
    edge_smooth: float = 1 / 8
    max_hole: float = 0.5
    work_diameter: float = 24.0
    invert: bool = False


#: Modality presets, chosen by the imaging modality (never by data set).
PRESETS: dict[str, SegmentParams] = {
    "fluo-nuclei": SegmentParams(),
    "brightfield": SegmentParams(invert=True),
    "dic": SegmentParams(texture=True, min_separation=0.4),
    "phase": SegmentParams(texture=True, min_separation=0.4),
}
#: The preset that chooses one of :data:`PRESETS` from the first frame's look.
AUTO = "auto"
#: The preset every command and method uses unless told otherwise (defined here only).
DEFAULT_PRESET = AUTO


def _params(preset: str, params: SegmentParams | None) -> SegmentParams:
    if params is not None:
        return params
    if preset not in PRESETS:
        raise InputError(None, f"unknown segmentation preset {preset!r}; known: "
                               f"{sorted([AUTO, *PRESETS])}")
    return PRESETS[preset]


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(None, f"segmentation needs a 2D image, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
        raise InputError(None, f"segmentation needs a numeric image, got dtype {image.dtype}")
    return image


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean by an integer factor (edge rows/columns that do not fill a block dropped)."""
    image = image.astype(np.float32, copy=False)
    if factor == 1:
        return image
    h, w = (s // factor for s in image.shape)
    blocks = image[: h * factor, : w * factor].reshape(h, factor, w, factor)
    return blocks.mean(axis=(1, 3), dtype=np.float32)


def _upsample(labels: np.ndarray, factor: int, shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour upsampling back to ``shape`` (edge blocks repeated)."""
    if factor == 1:
        return labels
    big = np.repeat(np.repeat(labels, factor, axis=0), factor, axis=1)
    pad = [(0, shape[0] - big.shape[0]), (0, shape[1] - big.shape[1])]
    return np.pad(big, pad, mode="edge")


def _cell_area(d: float) -> float:
    return np.pi * d * d / 4


def _fill_small_holes(mask: np.ndarray, d: float, p: SegmentParams) -> np.ndarray:
    holes, _ = ndi.label(ndi.binary_fill_holes(mask) & ~mask)
    small = np.bincount(holes.ravel()) < p.max_hole * _cell_area(d)
    small[0] = False
    return mask | small[holes]


def _noise(values: np.ndarray) -> tuple[float, float]:
    """Background level and noise sigma: the background is what Otsu puts below its threshold
    (so dense cultures, where nuclei cover half the frame or more, work too), its median the
    level and the spread below that the noise (1.4826 turns a median deviation into sigma)."""
    background = values[values <= threshold_otsu(values)]
    level = float(np.median(background))
    below = level - background[background < level]
    return level, 1.4826 * float(np.median(below)) if below.size else 0.0


def _fluo_foreground(x: np.ndarray, d: float, p: SegmentParams) -> tuple[np.ndarray, ...]:
    """Nuclei mask, background-free contrast and the minimum peak contrast of a nucleus."""
    smooth = ndi.gaussian_filter(x, p.smooth * d)
    size = round(p.background * d) | 1
    contrast = smooth - ndi.uniform_filter(ndi.grey_opening(smooth, size=(size, size)), size)
    level, noise = _noise(contrast)
    low = ndi.binary_fill_holes(contrast > level + p.noise_sigmas * noise)
    if not low.any():
        return low, contrast, level
    # Otsu on the log contrast (bright nuclei) inside the components that hold one; the noise
    # threshold alone elsewhere (dim nuclei Otsu would drop).
    log_contrast = np.log1p(np.maximum(contrast - level, 0) / max(noise, 1e-6))
    high = ndi.binary_fill_holes(log_contrast > threshold_otsu(log_contrast))
    parts, n = ndi.label(low)
    bright = np.bincount(parts[high], minlength=n + 1) > 0
    bright[0] = False
    mask = np.where(bright[parts], high, low)
    return mask, contrast, level + 2 * p.noise_sigmas * noise


def _seeded_watershed(surface: np.ndarray, height: np.ndarray, mask: np.ndarray, d: float,
                      p: SegmentParams) -> np.ndarray:
    """Watershed of ``surface`` in ``mask`` from the maxima of ``height`` (one per cell).

    Parts of ``mask`` too small to hold a cell that :func:`_keep` would keep (below the
    minimum area, off the border) are left out first: their segments would be dropped anyway,
    and on a speckled or noisy frame they number thousands, each a pass of the seed search.
    What is left holds at most foreground area / minimum area parts.
    """
    parts, _ = ndi.label(mask)
    parts[~_large_enough(parts, d, p)[parts]] = 0
    mask = parts > 0
    peaks = peak_local_max(height, min_distance=max(1, int(p.min_separation * d)),
                           labels=parts, exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(surface, markers, mask=mask)


def _label_fluo(x: np.ndarray, d: float, p: SegmentParams) -> np.ndarray:
    mask, contrast, min_peak = _fluo_foreground(x, d, p)
    blob = ndi.gaussian_filter(contrast, p.seed_smooth * d)
    # seeds where a nucleus is both bright (its dome) and thick (away from its outline): the
    # shape cue splits touching nuclei of flat brightness, the intensity cue those that overlap
    objects, n = ndi.label(mask)
    top = ndi.maximum(blob, objects, np.arange(1, n + 1)) if n else np.zeros(0)
    brightness = blob / np.maximum(np.concatenate([[1.0], top])[objects], 1e-6)
    thickness = np.minimum(ndi.distance_transform_edt(mask) / (d / 2), 1.0)
    height = brightness + thickness
    labels = _seeded_watershed(-height, height, mask, d, p)
    faint = ndi.maximum(contrast, labels, np.arange(1, labels.max() + 1)) <= min_peak
    return _keep(labels, d, p, drop=faint)


def _texture_foreground(x: np.ndarray, d: float, p: SegmentParams) -> np.ndarray:
    window = max(3, round(p.texture_window * d))
    mean = ndi.uniform_filter(x, window)
    std = np.sqrt(np.maximum(ndi.uniform_filter(x * x, window) - mean * mean, 0))
    work = np.log(ndi.gaussian_filter(std, p.texture_window * d) + 1e-3)
    return _fill_small_holes(work > threshold_otsu(work), d, p)


def _label_texture(x: np.ndarray, d: float, p: SegmentParams) -> np.ndarray:
    mask = _texture_foreground(x, d, p)
    if not mask.any():
        return np.zeros(x.shape, np.int32)
    edges = ndi.gaussian_gradient_magnitude(x, 1.0)
    sparse = ndi.gaussian_filter(edges, p.edge_smooth * d)
    inside = np.minimum(ndi.distance_transform_edt(mask) / (0.25 * d), 1.0)
    interior = inside - sparse / max(float(sparse[mask].mean()), 1e-6)
    labels = _seeded_watershed(ndi.gaussian_filter(edges, 1.0), interior, mask, d, p)
    return _keep(labels, d, p)


def _large_enough(labels: np.ndarray, d: float, p: SegmentParams) -> np.ndarray:
    """Per label (background False): whether the segment is not debris, at least the minimum
    area or touching the image border."""
    keep = np.bincount(labels.ravel()) >= p.min_area * _cell_area(d)
    # a cell cut by the image border shows only part of its area: the size test is waived
    keep[np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))] = True
    keep[0] = False
    return keep


def _keep(labels: np.ndarray, d: float, p: SegmentParams,
          drop: np.ndarray | None = None) -> np.ndarray:
    """Number the segments 1..n after removing debris (and those marked in ``drop``)."""
    keep = _large_enough(labels, d, p)
    if drop is not None:
        keep[1:][drop] = False
    lut = np.zeros(len(keep), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def _factor(d: float, p: SegmentParams) -> int:
    return max(1, round(d / p.work_diameter))


def resolve_scale(image: np.ndarray, preset: str = DEFAULT_PRESET,
                  diameter: float | None = None, fallback: SizeFallback | None = None) -> Scale:
    """The preset and cell diameter for ``image`` (see :mod:`celltrail.segmentation.scale`):
    ``preset="auto"`` chooses the modality, a missing ``diameter`` is measured (by
    ``fallback`` where the frame's blobs are not trusted); an unsure measurement stops with an
    :class:`InputError` that asks for the diameter."""
    image = _check_image(image)
    if preset != AUTO:
        _params(preset, None)
    try:
        return measure_scale(image, preset, diameter, fallback)
    except ValueError as exc:
        raise InputError(None, f"cannot tell the cell size: {exc}; give the cell diameter in "
                               "pixels (--diameter)") from None


def estimate_diameter(image: np.ndarray, preset: str = DEFAULT_PRESET) -> float:
    """Typical cell diameter in pixels, measured on the image (raises when unsure)."""
    return resolve_scale(image, preset).diameter


def segment(
    image: np.ndarray,
    preset: str = DEFAULT_PRESET,
    diameter: float | None = None,
    params: SegmentParams | None = None,
) -> np.ndarray:
    """Label the cells of a 2D image (int32, 0 = background).

    ``preset="auto"`` chooses the modality and a missing ``diameter`` (pixels) is measured,
    both from the image; ``params`` overrides the preset's constants.
    """
    image = _check_image(image)
    if preset == AUTO or diameter is None:
        scale = resolve_scale(image, preset, diameter)
        preset, diameter = scale.preset, scale.diameter
    p = _params(preset, params)
    d = float(diameter)
    if d <= 0:
        raise InputError(None, f"cell diameter must be positive, got {d}")
    factor = _factor(d, p)
    small = _downsample(image, factor)
    if p.invert:
        small = small.max() - small
    label = _label_texture if p.texture else _label_fluo
    return _upsample(label(small, d / factor, p), factor, image.shape)


class Segmenter:
    """Segment a whole sequence at one scale and modality, fixed by the first frame seen.

    ``Segmenter("auto")(frame)`` returns the frame's int32 label image; after the first frame
    :attr:`scale` says which preset and diameter are used and where they came from.
    """

    def __init__(
        self,
        preset: str = DEFAULT_PRESET,
        diameter: float | None = None,
        params: SegmentParams | None = None,
        fallback: SizeFallback | None = None,
    ) -> None:
        if preset != AUTO:
            _params(preset, params)
        self.params = params
        self.preset = preset
        self.diameter = diameter
        self.fallback = fallback  #: measures the diameter where the blob estimate is refused
        self.scale: Scale | None = None

    def fix_scale(self, image: np.ndarray) -> float:
        """The diameter used for every frame: measured on ``image`` unless already known (the
        preset too, when it is ``auto``)."""
        if self.scale is None:
            self.scale = resolve_scale(image, self.preset, self.diameter, self.fallback)
            self.preset, self.diameter = self.scale.preset, self.scale.diameter
        assert self.diameter is not None
        return self.diameter

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return segment(image, self.preset, self.fix_scale(image), self.params)
