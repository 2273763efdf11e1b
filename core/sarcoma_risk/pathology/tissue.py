"""Tissue detection on a low-resolution image: stained tissue in, glass, pen marks and debris out.

The conventions of CLAM and WSInfer: HSV saturation of a low-resolution overview, a median blur,
a fixed threshold, a morphological closing, then removal of objects smaller than 200 x 200 um.
Saturation alone also keeps pen ink (blue, green and black markers are saturated or dark too), so
each pixel must also look like H&E: hematoxylin and eosin both absorb green more than red, so
stained tissue is red-dominant (hue from violet through pink to red), while blue, cyan and green ink
has green >= red; black ink is darker than any stained tissue at this resolution. Ink is dilated a
little before it is removed, since its blurred rim is neither ink-coloured nor tissue.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

#: Defaults (0-255 scales, as in CLAM's ``sthresh``): glass has saturation under ~10, H&E over ~30.
SATURATION_THRESHOLD = 15
MEDIAN_PX = 7
MASK_SPACING_UM = 8.0  # um per mask pixel (CLAM segments near 1/64 of a 40x scan: 16 um)
MAX_MASK_SIDE = 4096  # bounds memory for very large slides
MIN_OBJECT_UM2 = 200.0 * 200.0
CLOSING_UM = 24.0
#: H&E hues in degrees: violet (hematoxylin) through pink to red/orange (eosin).
HE_HUE_DEGREES = (245.0, 40.0)
INK_DARK_VALUE = 60  # HSV value (0-255) below which a pixel is black ink, not tissue


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask and how it maps to level-0 pixels (``downsample`` level-0 px per mask px)."""

    mask: np.ndarray
    downsample: float
    mpp: float

    @property
    def spacing_um(self) -> float:
        return self.downsample * self.mpp

    def area_mm2(self) -> float:
        return float(self.mask.sum()) * (self.spacing_um / 1000.0) ** 2

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether level-0 points (x, y) fall in tissue (points outside the mask are not tissue)."""
        col = np.floor(np.asarray(x, dtype=float) / self.downsample).astype(np.int64)
        row = np.floor(np.asarray(y, dtype=float) / self.downsample).astype(np.int64)
        h, w = self.mask.shape
        inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
        out = np.zeros(np.shape(col), dtype=bool)
        out[inside] = self.mask[row[inside], col[inside]]
        return out


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return xx ** 2 + yy ** 2 <= radius ** 2


def ink_mask(hsv: np.ndarray, saturation_threshold: int = SATURATION_THRESHOLD) -> np.ndarray:
    """Pixels of pen ink: saturated but not H&E-coloured (blue, cyan, green), or very dark (black)."""
    hue_deg = hsv[..., 0].astype(np.float32) * (360.0 / 256.0)
    lo, hi = HE_HUE_DEGREES
    he_hue = (hue_deg >= lo) | (hue_deg <= hi)
    saturated = hsv[..., 1] > saturation_threshold
    return (saturated & ~he_hue) | (hsv[..., 2] < INK_DARK_VALUE)


def median_above(image: np.ndarray, size: int, threshold: float) -> np.ndarray:
    """Whether the ``size`` x ``size`` median of ``image`` exceeds ``threshold``, pixel by pixel.

    Exactly ``median_filter(image) > threshold`` with edge pixels repeated at the border (what
    Pillow's ``MedianFilter`` does), computed without sorting: the median of the k = size^2 values
    (the ``k // 2``-th smallest, 0-based) exceeds the threshold when more than ``k // 2`` of them do,
    and those counts are box sums of a binary image (a summed-area table). On a 1024^2 overview
    this is about 20x faster than the sorting filter.
    """
    k = size * size
    above = np.pad(image > threshold, size // 2, mode="edge").astype(np.int32)
    table = np.zeros((above.shape[0] + 1, above.shape[1] + 1), np.int32)
    np.cumsum(np.cumsum(above, axis=0), axis=1, out=table[1:, 1:])
    counts = table[size:, size:] - table[:-size, size:] - table[size:, :-size] + table[:-size, :-size]
    return counts > k // 2


def detect_tissue(rgb: np.ndarray, spacing_um: float, *, saturation_threshold: int = SATURATION_THRESHOLD,
                  median_px: int = MEDIAN_PX, min_object_um2: float = MIN_OBJECT_UM2,
                  closing_um: float = CLOSING_UM) -> np.ndarray:
    """Boolean tissue mask of an RGB overview whose pixels are ``spacing_um`` microns wide.

    Steps: HSV; median-blurred saturation above ``saturation_threshold``; minus (dilated) pen ink;
    closing with a disk of ``closing_um``; holes smaller than ``min_object_um2`` filled; objects
    smaller than ``min_object_um2`` removed.
    """

    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"))
    ink = ink_mask(hsv, saturation_threshold)
    saturation = np.where(ink, 0, hsv[..., 1]).astype(np.uint8)  # ink must not bleed into the blur
    tissue = median_above(saturation, median_px, saturation_threshold)
    if ink.any():
        tissue &= ~ndimage.binary_dilation(ink, _disk(max(1, round(16.0 / spacing_um))))
    radius = max(1, round(closing_um / spacing_um))
    tissue = ndimage.binary_closing(np.pad(tissue, radius), _disk(radius))[radius:-radius, radius:-radius]
    min_px = min_object_um2 / spacing_um ** 2
    holes, n_holes = ndimage.label(~tissue)
    if n_holes:
        sizes = np.bincount(holes.ravel())
        small = sizes < min_px
        small[0] = False
        border = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        small[border] = False  # the glass around the tissue is not a hole
        tissue |= small[holes]
    labels, n = ndimage.label(tissue)
    if n:
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_px
        keep[0] = False
        tissue = keep[labels]
    return tissue


def tissue_mask(slide, spacing_um: float = MASK_SPACING_UM, **options: float) -> TissueMask:
    """Detect tissue on ``slide`` (a :class:`~sarcoma_risk.pathology.slide.Slide`) at about ``spacing_um``."""
    downsample = max(1.0, spacing_um / slide.mpp, max(slide.dimensions) / MAX_MASK_SIDE)
    rgb = slide.read_downsampled(downsample)
    actual = downsample * slide.mpp
    return TissueMask(detect_tissue(rgb, actual, **options), downsample, slide.mpp)
