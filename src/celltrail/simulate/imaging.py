"""Drawing cells and forming microscope images of them.

Cells are drawn on a canvas that covers the whole simulated domain (the field of view plus a
margin), so blur and phase halos near the image border come from real neighbours. Each cell is
drawn inside its own bounding box only; the image-formation steps are whole-frame array
operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MODALITIES = ("fluo-nuclei", "phase", "phase-bright", "dic", "fluo-cells", "brightfield")
#: fluo-cells: protrusion length, in cell radii (thin spikes along the outline's three phases),
#: and brightness relative to nuclei (cell bodies are dim: the stain spreads over the cytoplasm)
_SPIKE_LENGTH, _CELL_BODY_BRIGHTNESS = 0.9, 0.35
#: angular sharpness of a protrusion (cos^p; p = 400 gives about 0.05 rad half-width)
_SPIKE_SHARPNESS = 400
DTYPES = {"uint8": 255.0, "uint16": 4095.0}  # uint16 images use a 12-bit camera range
_HARMONICS = np.array([2.0, 3.0, 4.0])
_TEXTURE_SIZE = 128


@dataclass
class Shape:
    """What the renderer needs of a cell: centre, mean radius, outline and look."""

    y: float
    x: float
    radius: float
    amps: np.ndarray  # relative amplitudes of the outline harmonics 2, 3, 4
    phases: np.ndarray
    brightness: float
    texture_offset: tuple[int, int]


class Renderer:
    """Draws cells on the domain canvas and turns a canvas into a frame of one modality.

    ``view`` is the field of view as ``(top, left, height, width)`` inside the domain.
    """

    def __init__(
        self,
        domain: tuple[int, int],
        view: tuple[int, int, int, int],
        modality: str,
        dtype: str,
        cell_diameter: float,
        blur: float,
        noise: float,
        illumination: float,
        bleaching: float,
        rng: np.random.Generator,
    ) -> None:
        self.domain = domain
        self.view = view
        self.modality = modality
        self.dtype = np.dtype(dtype)
        self.scale = DTYPES[dtype]
        self.cell_diameter = cell_diameter
        self.blur = blur
        self.noise = noise
        self.bleaching = bleaching
        self.rng = rng
        self.fluo = modality.startswith("fluo")
        self.spikes = _SPIKE_LENGTH if modality == "fluo-cells" else 0.0
        self.texture = _smooth_noise(rng, _TEXTURE_SIZE, (1.0, 3.0), (0.6, 0.4))
        self.illumination = _illumination_field(rng, view[2:], illumination)
        if modality.startswith("phase"):  # the low-pass that makes halo and shade-off
            freq_y = np.fft.fftfreq(domain[0])[:, None]
            freq_x = np.fft.rfftfreq(domain[1])[None, :]
            sigma = 0.3 * cell_diameter
            self._lowpass = np.exp(-2 * (np.pi * sigma) ** 2 * (freq_y**2 + freq_x**2))

    def draw(self, shapes: list[Shape]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw cells back to front (list order) on a fresh canvas.

        Returns the signal canvas (fluorescence or optical thickness), the index canvas (cell
        ``i`` is ``i + 1``, later cells cover earlier ones) and each cell's unoccluded area inside
        the field of view.
        """
        signal = np.zeros(self.domain, dtype=np.float32)
        index = np.zeros(self.domain, dtype=np.int32)
        in_view = np.zeros(len(shapes), dtype=np.int64)
        top, left, height, width = self.view
        look = (0.7, 0.3) if self.fluo else (0.0, 0.12)  # flat nuclei, or dome-shaped cells
        for i, shape in enumerate(shapes):
            patch = self._patch(shape, *look)
            if patch is None:
                continue
            (y0, x0), mask, alpha, value = patch
            y1, x1 = y0 + mask.shape[0], x0 + mask.shape[1]
            box = (slice(y0, y1), slice(x0, x1))
            signal[box] = signal[box] * (1 - alpha) + alpha * value
            index[box][mask] = i + 1
            vy0, vy1 = max(y0, top) - y0, min(y1, top + height) - y0
            vx0, vx1 = max(x0, left) - x0, min(x1, left + width) - x0
            if vy1 > vy0 and vx1 > vx0:
                in_view[i] = np.count_nonzero(mask[vy0:vy1, vx0:vx1])
        return signal, index, in_view

    def _patch(
        self, shape: Shape, flatness: float, texture_strength: float
    ) -> tuple[tuple[int, int], np.ndarray, np.ndarray, np.ndarray] | None:
        """Mask, anti-aliased coverage and signal of one cell in its clipped bounding box."""
        reach = shape.radius * (1 + float(np.abs(shape.amps).sum()) + self.spikes) + 2
        y0, x0 = max(int(shape.y - reach), 0), max(int(shape.x - reach), 0)
        y1 = min(int(shape.y + reach) + 2, self.domain[0])
        x1 = min(int(shape.x + reach) + 2, self.domain[1])
        if y1 <= y0 or x1 <= x0:
            return None
        rows, cols = np.arange(y0, y1), np.arange(x0, x1)
        dy, dx = (rows - shape.y)[:, None], (cols - shape.x)[None, :]
        dist = np.hypot(dy, dx)
        angle = np.arctan2(dy, dx)
        outline = shape.radius * (
            1 + np.cos(angle[..., None] * _HARMONICS + shape.phases) @ shape.amps
        )
        if self.spikes:  # thin protrusions in the directions of the outline's phases
            toward = np.maximum(np.cos(angle[..., None] - shape.phases), 0) ** _SPIKE_SHARPNESS
            outline = outline + shape.radius * self.spikes * toward.sum(axis=-1)
        inside = outline - dist
        alpha = np.clip(inside + 0.5, 0.0, 1.0)
        q = np.minimum(dist / np.maximum(outline, 1e-6), 1.0)
        dome = np.sqrt(1.0 - q * q)
        ty = (rows - round(shape.y) + shape.texture_offset[0]) % _TEXTURE_SIZE
        tx = (cols - round(shape.x) + shape.texture_offset[1]) % _TEXTURE_SIZE
        texture = self.texture[np.ix_(ty, tx)]
        profile = flatness + (1 - flatness) * dome
        value = shape.brightness * profile * (1 + texture_strength * texture)
        return (y0, x0), inside > 0, alpha, value

    def image(self, signal: np.ndarray, t: float) -> np.ndarray:
        """The camera frame of the field of view at (simulated) time ``t``."""
        top, left, height, width = self.view
        view = (slice(top, top + height), slice(left, left + width))
        if self.fluo:
            sharp = ndimage.gaussian_filter(signal[view], self.blur) if self.blur else signal[view]
            if self.modality == "fluo-cells":
                sharp = _CELL_BODY_BRIGHTNESS * sharp
            bleach = np.exp(-self.bleaching * t)
            frame = 0.06 + self.illumination * bleach * sharp
            if self.noise:  # Poisson photon noise, then Gaussian read noise
                gain = 80.0 / self.noise**2
                frame = self.rng.poisson(frame * gain) / gain
                frame += self.rng.normal(0.0, 0.012 * self.noise, frame.shape)
        else:
            thick = ndimage.gaussian_filter(signal, self.blur) if self.blur else signal
            if self.modality.startswith("phase"):  # phase-bright: rounded cells, dark halo
                low = np.fft.irfft2(np.fft.rfft2(thick) * self._lowpass, s=thick.shape)
                sign = 1.0 if self.modality == "phase-bright" else -1.0
                frame = 0.55 + sign * 0.5 * (thick - low)[view]
            elif self.modality == "brightfield":  # slight absorption, a bright defocus rim
                rim = thick - ndimage.gaussian_filter(thick, 1.0 + 0.05 * self.cell_diameter)
                frame = 0.6 - 0.2 * thick[view] + 0.4 * rim[view]
            else:  # DIC: shear along the diagonal gives the relief look
                grad_y, grad_x = np.gradient(thick)
                frame = 0.5 + 0.15 * self.cell_diameter**0.5 * (grad_y + grad_x)[view]
            frame = (0.5 + 0.5 * self.illumination) * frame  # transmitted light: milder
            if self.noise:
                read_noise = {"phase": 0.015, "phase-bright": 0.015,
                              "brightfield": 0.01}.get(self.modality, 0.008)
                frame = frame + self.rng.normal(0.0, read_noise * self.noise, frame.shape)
        return np.clip(np.rint(frame * self.scale), 0, self.scale).astype(self.dtype)


def _smooth_noise(
    rng: np.random.Generator, size: int, sigmas: tuple[float, ...], weights: tuple[float, ...]
) -> np.ndarray:
    """Periodic band-limited noise (zero mean, unit s.d.): the cells' internal texture."""
    field = np.zeros((size, size))
    for sigma, weight in zip(sigmas, weights, strict=True):
        layer = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
        field += weight * layer / layer.std()
    return ((field - field.mean()) / field.std()).astype(np.float32)


def _illumination_field(
    rng: np.random.Generator, shape: tuple[int, int], strength: float
) -> np.ndarray:
    """Uneven illumination: a smooth vignette around an off-centre point, 1 at its brightest."""
    height, width = shape
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    yy, xx = np.ogrid[:height, :width]
    r2 = ((yy - cy) ** 2 + (xx - cx) ** 2) / (0.5 * (height**2 + width**2))
    return np.clip(1.0 - strength * r2, 0.2, 1.0).astype(np.float32)
