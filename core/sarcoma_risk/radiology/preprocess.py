"""From an MRI case to the network's input: a fixed-size, isotropic, normalised patch around the tumor.

One resampling does the crop, the isotropic resampling and the pad/crop to a fixed size: the patch
is a grid of ``patch_size``³ voxels of ``spacing`` mm, with the MRI's own direction, centred on the
tumor's bounding box. It is sized to hold the box plus ``margin_mm`` on every side; a tumor too
large for ``patch_size * spacing_mm`` gets a coarser spacing, so the tumor is never cut. Its
geometry (:class:`PatchGeometry`) is kept, so that anything computed on the patch (Grad-CAM) maps
back to the MRI exactly through physical space, whatever the MRI's direction.

Intensities: each sequence is smoothed before downsampling (no aliasing from 0.7 mm pixels), then
clipped to percentiles of the dilated tumor region and z-scored within it. That makes the input the
same under any scanner scale and offset ``a * x + b`` (the centre differences of the phantom cohort)
and nearly so under a smooth bias field, since the region is small. Voxels outside the MRI, and by
default outside the dilated tumor region, are 0 (the network reads 0 as "nothing here").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import distance_transform_edt

from sarcoma_risk.errors import InvalidImage, InvalidInput
from sarcoma_risk.radiology.config import PreprocessConfig
from sarcoma_risk.radiology.geometry import direction_matrix, index_to_physical, physical_to_index
from sarcoma_risk.radiology.io import MRICase

_FWHM_PER_SIGMA = 2.3548


@dataclass(frozen=True)
class PatchGeometry:
    """The patch grid in physical space (LPS mm): ``size``³ voxels of ``spacing`` mm."""

    origin: tuple[float, float, float]
    spacing: float
    direction: tuple[float, ...]
    size: int

    def image(self, array: np.ndarray | None = None, stride: int = 1) -> sitk.Image:
        """An image on this grid (or on its ``stride``-times coarser grid, voxel j at patch voxel stride*j).

        Holds ``array`` (z, y, x) when given, else zeros.
        """
        n = -(-self.size // stride)
        if array is None:
            array = np.zeros((n, n, n), dtype=np.float32)
        image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
        image.SetOrigin(self.origin)
        image.SetSpacing([self.spacing * stride] * 3)
        image.SetDirection(self.direction)
        return image

    def to_dict(self) -> dict[str, Any]:
        return {"origin": list(self.origin), "spacing": self.spacing, "direction": list(self.direction),
                "size": self.size}


@dataclass
class PreparedCase:
    """The network input of one case and where it came from.

    ``array`` is (channels, z, y, x) float32: the sequences in config order, then the mask.
    """

    array: np.ndarray
    geometry: PatchGeometry
    tumor_volume_ml: float
    sequences: tuple[str, ...]


def patch_geometry(mask: sitk.Image, config: PreprocessConfig) -> PatchGeometry:
    """The patch grid for a tumor mask (non-empty, any direction)."""
    kji = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)
    if len(kji) == 0:
        raise InvalidImage("tumor mask: empty; nothing to crop around")
    lo, hi = kji.min(axis=0)[::-1].astype(float), kji.max(axis=0)[::-1].astype(float)  # (i, j, k)
    spacing = np.asarray(mask.GetSpacing())
    extent_mm = (hi - lo + 1) * spacing + 2 * config.margin_mm
    step = max(config.spacing_mm, float(extent_mm.max()) / config.patch_size)
    centre = index_to_physical(mask, ((lo + hi) / 2)[None])[0]
    direction = direction_matrix(mask)
    origin = centre - direction @ np.full(3, step * (config.patch_size - 1) / 2)
    return PatchGeometry(tuple(float(v) for v in origin), float(step), tuple(float(v) for v in direction.ravel()),
                         config.patch_size)


def _source_region(image: sitk.Image, patch: PatchGeometry, pad: np.ndarray) -> tuple[list[int], list[int]] | None:
    """Index start and size of the part of ``image`` the patch needs (None when they do not meet)."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float) * (patch.size - 1)
    reference = patch.image(np.zeros((1, 1, 1), dtype=np.float32))
    index = physical_to_index(image, index_to_physical(reference, corners))
    size = np.asarray(image.GetSize())
    start = np.maximum(np.floor(index.min(axis=0) - pad), 0).astype(int)
    stop = np.minimum(np.ceil(index.max(axis=0) + pad) + 1, size).astype(int)
    if np.any(stop <= start):
        return None
    return start.tolist(), (stop - start).tolist()


def resample_to_patch(image: sitk.Image, patch: PatchGeometry, *, linear: bool = True,
                      anti_alias: bool = True) -> np.ndarray:
    """``image`` on the patch grid as a (z, y, x) float32 array (0 outside the image).

    With ``anti_alias`` each axis coarser in the patch than in the image is first smoothed with a
    Gaussian whose FWHM brings the image's resolution to the patch's.
    """
    spacing = np.asarray(image.GetSpacing())
    sigma_mm = np.sqrt(np.maximum(patch.spacing**2 - spacing**2, 0)) / _FWHM_PER_SIGMA if anti_alias else np.zeros(3)
    pad = np.ceil(3 * sigma_mm / spacing) + 2
    region = _source_region(image, patch, pad)
    reference = patch.image(np.zeros((patch.size,) * 3, dtype=np.float32))
    if region is None:
        return np.zeros((patch.size,) * 3, dtype=np.float32)
    crop = sitk.RegionOfInterest(sitk.Cast(image, sitk.sitkFloat32), region[1], region[0])
    if np.any(sigma_mm > 0):
        crop = sitk.DiscreteGaussian(crop, variance=[float(v) ** 2 for v in sigma_mm], maximumKernelWidth=64,
                                     useImageSpacing=True)
    interpolator = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    out = sitk.Resample(crop, reference, sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def inside_image(image: sitk.Image, patch: PatchGeometry) -> np.ndarray:
    """Boolean (z, y, x) array: which patch voxels lie inside ``image`` (whose direction the patch shares)."""
    n = patch.size
    reference = patch.image(np.zeros((1, 1, 1), dtype=np.float32))
    size = np.asarray(image.GetSize())
    axes = []
    # The patch shares the image's direction, so patch axis a moves along image axis a only.
    for axis in range(3):
        idx = np.zeros((n, 3))
        idx[:, axis] = np.arange(n)
        continuous = physical_to_index(image, index_to_physical(reference, idx))[:, axis]
        axes.append((continuous >= -0.5) & (continuous <= size[axis] - 0.5))
    return axes[2][:, None, None] & axes[1][None, :, None] & axes[0][None, None, :]


def tumor_region(mask_patch: np.ndarray, spacing: float, dilation_mm: float) -> np.ndarray:
    """The tumor (mask >= 0.5) dilated by ``dilation_mm`` (Euclidean distance in the patch)."""

    tumor = mask_patch >= 0.5
    if not tumor.any():  # a tumor thinner than one patch voxel: keep what the resampling saw
        tumor = mask_patch > 0
    if dilation_mm <= 0:
        return tumor
    return distance_transform_edt(~tumor, sampling=spacing) <= dilation_mm


def normalise(patch: np.ndarray, region: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float],
              name: str) -> np.ndarray:
    """Clip to percentiles of ``region`` and z-score with its mean and standard deviation; 0 where not ``valid``."""
    values = patch[region & valid]
    if values.size < 8:
        raise InvalidImage(f"{name}: the tumor region holds {values.size} voxel(s) inside the image; too few to "
                           "normalise (is the mask on the right image?)")
    lo, hi = np.percentile(values, percentiles)
    clipped = np.clip(patch, lo, hi)
    inside = clipped[region & valid]
    mean, std = float(inside.mean()), float(inside.std())
    if std <= 1e-6 * max(abs(mean), 1.0):
        raise InvalidImage(f"{name}: no intensity variation inside the tumor region (constant image?)")
    out = ((clipped - mean) / std).astype(np.float32)
    out[~valid] = 0.0
    return out


def prepare_case(case: MRICase, config: PreprocessConfig) -> PreparedCase:
    """The network input for one case.

    Raises
    ------
    InvalidInput
        The case lacks a sequence the configuration needs.
    InvalidImage
        No usable intensities in the tumor region.
    """
    missing = [s for s in config.sequences if s not in case.images]
    if missing:
        raise InvalidInput(f"this radiology model needs the sequence(s) {', '.join(missing)} "
                           f"(it was trained on {', '.join(config.sequences)}); give them (--t2fs, --t1ce)")
    geometry = patch_geometry(case.mask, config)
    mask_patch = np.clip(resample_to_patch(case.mask, geometry, anti_alias=False), 0.0, 1.0)
    valid = inside_image(case.reference, geometry)
    region = tumor_region(mask_patch, geometry.spacing, config.norm_dilation_mm)
    channels = []
    for name in config.sequences:
        raw = resample_to_patch(case.images[name], geometry)
        channels.append(normalise(raw, region, valid & region if config.zero_outside_region else valid,
                                  config.clip_percentiles, name))
    if config.mask_channel:
        channels.append(mask_patch.astype(np.float32))
    return PreparedCase(np.stack(channels), geometry, case.tumor_volume_ml(), tuple(config.sequences))
