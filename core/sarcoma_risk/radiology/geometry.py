"""Physical geometry of SimpleITK images: grids, overlap and resampling between grids.

An image's voxel (i, j, k) lies at ``origin + D @ (spacing * (i, j, k))`` in LPS millimetres, where
``D`` is the direction cosine matrix. Two images "share a grid" when size, spacing, origin and
direction agree; otherwise data moves between them only through physical space (resampling), so
that oblique acquisitions, cropped Slicer segmentations and second sequences land where they belong.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

#: Relative tolerance for spacing/origin and absolute tolerance for direction cosines when deciding
#: whether two grids are the same (DICOM and NIfTI round-trips leave float noise around 1e-6).
GRID_TOLERANCE = 1e-4


def direction_matrix(image: sitk.Image) -> np.ndarray:
    """The 3x3 direction cosine matrix (columns are the image axes in LPS)."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = GRID_TOLERANCE) -> bool:
    """True when both images have the same voxel grid in physical space."""
    if a.GetSize() != b.GetSize():
        return False
    spacing_a, spacing_b = np.asarray(a.GetSpacing()), np.asarray(b.GetSpacing())
    if not np.allclose(spacing_a, spacing_b, rtol=tolerance, atol=0):
        return False
    # Origins are compared in units of the voxel size, so the test means the same at 0.5 and 5 mm.
    if np.any(np.abs(np.asarray(a.GetOrigin()) - np.asarray(b.GetOrigin())) > tolerance * spacing_a.min() * 10):
        return False
    return bool(np.allclose(direction_matrix(a), direction_matrix(b), atol=tolerance))


def index_to_physical(image: sitk.Image, index_xyz: np.ndarray) -> np.ndarray:
    """Physical points (n, 3) of continuous voxel indices (n, 3) given in (i, j, k) order."""
    spacing = np.asarray(image.GetSpacing())
    return np.asarray(image.GetOrigin()) + (np.asarray(index_xyz, dtype=float) * spacing) @ direction_matrix(image).T


def physical_to_index(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Continuous voxel indices (n, 3), (i, j, k) order, of physical points (n, 3)."""
    relative = np.asarray(points, dtype=float) - np.asarray(image.GetOrigin())
    # D is orthonormal for every image ITK accepts, but the inverse keeps this exact for sheared ones.
    return (relative @ np.linalg.inv(direction_matrix(image)).T) / np.asarray(image.GetSpacing())


def inside_fraction(image: sitk.Image, points: np.ndarray) -> float:
    """Share of physical points that fall inside ``image``'s voxels (their half-voxel boxes)."""
    if len(points) == 0:
        return 0.0
    index = physical_to_index(image, points)
    size = np.asarray(image.GetSize())
    inside = np.all((index >= -0.5) & (index <= size - 0.5), axis=1)
    return float(inside.mean())


def foreground_points(mask: sitk.Image, max_points: int = 200_000) -> np.ndarray:
    """Physical centres (n, 3) of a mask's non-zero voxels (an even subsample when there are many)."""
    array = sitk.GetArrayViewFromImage(mask)
    kji = np.argwhere(array != 0)
    if len(kji) > max_points:
        kji = kji[:: int(np.ceil(len(kji) / max_points))]
    return index_to_physical(mask, kji[:, ::-1])


def corner_points(image: sitk.Image) -> np.ndarray:
    """Physical positions (8, 3) of the outer corners of an image's voxel grid."""
    size = np.asarray(image.GetSize(), dtype=float)
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float)
    return index_to_physical(image, corners * size - 0.5)


def resample_onto(image: sitk.Image, reference: sitk.Image, *, linear: bool, default: float = 0.0,
                  pixel_type: int | None = None) -> sitk.Image:
    """``image`` resampled onto ``reference``'s grid through physical space (no registration)."""
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    output_type = image.GetPixelID() if pixel_type is None else pixel_type
    return sitk.Resample(image, reference, sitk.Transform(), interpolator, default, output_type)
