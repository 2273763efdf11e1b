"""Slide colour baseline: optical density and H&E stain intensities over the tumor tissue.

The slide is read at about 2 um per pixel; tissue is detected as the tile pipeline does
(:func:`sarcoma_risk.pathology.tissue.tissue_mask`) and restricted to the tumor annotation when
there is one. Each pixel's optical density per channel is ``-ln((I + 1) / 256)``; colour
deconvolution with Ruifrok and Johnston's H and E vectors gives hematoxylin and eosin
concentrations. Features: mean and standard deviation of the OD of R, G and B and of H and E. No
morphology at all: a negative control for the patch CNN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.pathology.regions import read_tumor_region
from sarcoma_risk.pathology.slide import open_slide
from sarcoma_risk.pathology.tissue import tissue_mask

SPACING_UM = 2.0
#: Ruifrok & Johnston's OD vectors of hematoxylin and eosin; the third completes the basis.
_H = np.array([0.650, 0.704, 0.286])
_E = np.array([0.072, 0.990, 0.105])


def _stain_matrix() -> np.ndarray:
    h, e = _H / np.linalg.norm(_H), _E / np.linalg.norm(_E)
    residual = np.cross(h, e)
    return np.linalg.inv(np.stack([h, e, residual / np.linalg.norm(residual)]))


def _pixels(slide_path: Path, annotation: Path | None) -> np.ndarray:
    """OD (n, 3) of the tumor tissue pixels of one slide."""
    with open_slide(slide_path) as slide:
        downsample = max(1.0, SPACING_UM / slide.mpp)
        rgb = slide.read_downsampled(downsample)
        # Tissue is detected on the tile pipeline's coarser mask, then looked up per pixel.
        rows, cols = np.mgrid[0:rgb.shape[0], 0:rgb.shape[1]]
        x, y = (cols.ravel() + 0.5) * downsample, (rows.ravel() + 0.5) * downsample
        keep = tissue_mask(slide).contains(x, y)
        if annotation is not None:
            region = read_tumor_region(annotation, slide.dimensions)
            keep[keep] = region.contains(x[keep], y[keep])
        keep = keep.reshape(rgb.shape[:2])
    if not keep.any():
        raise InvalidInput(f"{slide_path}: no tumor tissue found for the colour baseline")
    return -np.log((rgb[keep].astype(np.float64) + 1.0) / 256.0)


def colour_features(slides: Sequence[str | Path], annotations: Sequence[str | Path | None] = ()) -> dict[str, float]:
    """Mean and SD of OD per channel and of H and E concentration over a case's tumor tissue (all its slides)."""
    if not slides:
        raise InvalidInput("colour features: the case has no slide")
    notes = list(annotations) + [None] * (len(slides) - len(annotations))
    od = np.concatenate([_pixels(Path(s), Path(a) if a else None) for s, a in zip(slides, notes)])
    stains = od @ _stain_matrix()
    features: dict[str, float] = {}
    for name, values in (("od_r", od[:, 0]), ("od_g", od[:, 1]), ("od_b", od[:, 2]),
                         ("hematoxylin", stains[:, 0]), ("eosin", stains[:, 1])):
        features[f"{name}_mean"] = float(values.mean())
        features[f"{name}_sd"] = float(values.std())
    return features
