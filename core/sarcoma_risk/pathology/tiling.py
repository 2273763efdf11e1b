"""The patch grid: which patches of a slide are scored.

Patches tile level 0 without overlap, starting at (0, 0), each ``size0`` level-0 pixels wide (the
physical size of ``patch_px`` pixels at the target spacing). A patch is kept when its centre lies in
tissue, and in the tumor region when one is given (holes excluded). Coordinates are integers: the
level-0 top-left corner, as CLAM and WSInfer store them, so they map back to level 0 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sarcoma_risk.errors import InvalidAnnotation, InvalidSlide
from sarcoma_risk.pathology.regions import TumorRegion
from sarcoma_risk.pathology.slide import PatchGeometry, Slide
from sarcoma_risk.pathology.tissue import TissueMask

DEFAULT_SPACING_UM = 0.5
DEFAULT_PATCH_PX = 224


@dataclass(frozen=True)
class PatchGrid:
    """Kept patches: ``coords`` (n, 2) int64 level-0 top-left (x, y), and how to read them."""

    coords: np.ndarray
    geometry: PatchGeometry
    mpp: float
    tissue_area_mm2: float
    restricted_to_annotation: bool

    def __len__(self) -> int:
        return len(self.coords)

    @property
    def centres(self) -> np.ndarray:
        return self.coords + self.geometry.size0 / 2.0


def grid_coordinates(width: int, height: int, size0: int) -> np.ndarray:
    """Top-left corners of every whole patch of a ``width`` x ``height`` level 0, row by row."""
    xs = np.arange(0, width - size0 + 1, size0, dtype=np.int64)
    ys = np.arange(0, height - size0 + 1, size0, dtype=np.int64)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
    return grid


def plan_patches(slide: Slide, tissue: TissueMask, *, spacing_um: float = DEFAULT_SPACING_UM,
                 patch_px: int = DEFAULT_PATCH_PX, region: TumorRegion | None = None) -> PatchGrid:
    """The patches to score: centre in tissue (and in ``region`` when given)."""
    geometry = slide.patch_geometry(spacing_um, patch_px)
    coords = grid_coordinates(*slide.dimensions, geometry.size0)
    centres = coords + geometry.size0 / 2.0
    keep = tissue.contains(centres[:, 0], centres[:, 1])
    if not keep.any():
        raise InvalidSlide(f"{slide.path}: no tissue found (no stained region of at least 200 x 200 um); "
                           "is this a blank slide or a non-H&E image?")
    if region is not None:
        keep &= region.contains(centres[:, 0], centres[:, 1])
        if not keep.any():
            raise InvalidAnnotation(f"{slide.path}: the tumor annotation covers no tissue patch "
                                    f"({patch_px} px at {spacing_um} um/px); check that it belongs to this slide")
    return PatchGrid(coords[keep], geometry, slide.mpp, tissue.area_mm2(), region is not None)
