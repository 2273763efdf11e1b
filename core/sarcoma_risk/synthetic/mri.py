"""Phantom MRI of a thigh soft tissue sarcoma, with its segmentation, from a latent phenotype.

:func:`write_phantom_mri` renders one case: an axial T2 fat-suppressed and a contrast-enhanced T1
(fat-suppressed) volume of a thigh (subcutaneous fat, muscle, femur) holding a tumor, plus the tumor
segmentation as a 3D Slicer ``.seg.nrrd`` (segments "Tumor" and "Peritumoral edema" sharing one
layer) and as a plain labelmap of the tumor.

What the phenotype (a standard-normal latent, higher = more aggressive) moves, each through a
logistic curve, so the expected value rises monotonically with it and, for a fixed seed, the rendered
quantity does too:

- necrotic core fraction (bright on T2, non-enhancing on T1CE, with an enhancing rim);
- heterogeneity of the viable tumor (amplitude of a smooth multiplicative texture);
- margin infiltration (irregular, finger-like margin) and peritumoral edema thickness.

Per-case noise (from the seed) enters each curve, so the image is a noisy readout of the phenotype.
Tumor size follows ``tumor_size_cm`` (longest diameter along the limb), clamped to the field of view.

The ``hard`` phantom (``difficulty``, :mod:`sarcoma_risk.synthetic.difficulty`) keeps the tumor's
first-order moments level: the necrotic fraction and the texture amplitude no longer follow the
phenotype, and the viable tumor's texture is standardised inside it. The phenotype (as shown, varying
region by region) moves the grain of that texture instead (its correlation length,
:func:`texture_scale_mm`), besides the margin infiltration and the edema, so a model must read spatial
structure; intensity statistics inside the mask see almost nothing of it.

Centres differ like scanners do: centre "A" is the reference; any other centre gets an intensity
scale (a factor between 1.35 and 2 up or down), an offset and a smooth bias field, all derived
deterministically from its name. The same arguments give the same bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.radiology.dicom import uid_from_text, write_series
from sarcoma_risk.radiology.segments import SegmentSpec, write_slicer_segmentation
from sarcoma_risk.synthetic.difficulty import RenderDifficulty, readout_stream, shown_phenotype


class PhantomSize(str, Enum):
    TINY = "tiny"
    SMALL = "small"
    MEDIUM = "medium"


#: Voxels (x, y, z) and spacing (mm) per size: anisotropic, as clinical axial scans are.
GRIDS: dict[PhantomSize, tuple[tuple[int, int, int], tuple[float, float, float]]] = {
    PhantomSize.TINY: ((96, 96, 16), (2.0, 2.0, 5.0)),
    PhantomSize.SMALL: ((256, 256, 24), (0.8, 0.8, 4.5)),
    PhantomSize.MEDIUM: ((512, 512, 40), (0.7, 0.7, 4.5)),
}

TUMOR_LABEL = 1
EDEMA_LABEL = 2
#: Largest share of the field of view the tumor may span (longest axis along z, the limb axis).
_MAX_INPLANE_RADIUS = 0.38  # of the thigh's smaller radius
_MAX_MARGIN = 0.35  # largest reach of the irregular margin beyond the ellipsoid, as a share of the radius
_MARGIN_REACH = 0.45  # margin irregularity + edema, as a share of the radius (bounding box of the tumor)

# Reference intensities (centre A, arbitrary scanner units).
_T2 = {"fat": 70.0, "muscle": 230.0, "cortex": 25.0, "marrow": 90.0, "edema": 470.0, "viable": 620.0, "necrosis": 1050.0}
_T1 = {"fat": 95.0, "muscle": 280.0, "cortex": 25.0, "marrow": 120.0, "edema": 340.0, "viable": 700.0, "necrosis": 170.0}
_NOISE_SIGMA = {"t2fs": 16.0, "t1ce": 18.0}
# The hard phantom's viable tumor: a level texture amplitude, and a grain whose correlation length is
# HARD_TEXTURE_MM at phenotype 0, times exp(HARD_TEXTURE_SLOPE) per SD (blended between 1 and 16 mm).
HARD_HETEROGENEITY = 0.3
HARD_TEXTURE_MM = 4.0
HARD_TEXTURE_SLOPE = 0.6
_GRADED_SCALES_MM = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass(frozen=True)
class PhantomMRI:
    """Paths of one rendered case and the quantities it was rendered with.

    ``t2fs`` and ``t1ce`` are NIfTI files, or DICOM series folders when written with ``dicom=True``.
    ``seg`` is the ``.seg.nrrd`` (segments "Tumor", then "Peritumoral edema"), ``labelmap`` the
    tumor as a 0/1 NIfTI labelmap on the MRI grid.
    """

    t2fs: Path
    t1ce: Path
    seg: Path
    labelmap: Path
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CentreProfile:
    """How a centre's scanner differs from the reference: out = scale * bias * signal + offset."""

    name: str
    scale: float
    offset: float
    bias_amplitude: float
    bias_direction: tuple[float, float, float]


def centre_profile(centre: str) -> CentreProfile:
    """The deterministic scanner profile of a centre ("A" is the reference, unscaled and unbiased)."""
    if not isinstance(centre, str) or not centre.strip():
        raise InvalidInput(f"centre: {centre!r} is not a centre code such as 'A' or 'B'")
    if centre == "A":
        return CentreProfile("A", 1.0, 0.0, 0.0, (1.0, 0.0, 0.0))
    u = [b / 255.0 for b in hashlib.sha256(f"sarcoma-risk-centre:{centre}".encode()).digest()[:6]]
    sign = 1.0 if u[0] >= 0.5 else -1.0
    azimuth, elevation = 2 * math.pi * u[4], (u[5] - 0.5) * math.pi / 2
    direction = (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation))
    return CentreProfile(centre, math.exp(sign * (0.3 + 0.4 * u[1])), 5.0 + 40.0 * u[2], 0.2 + 0.2 * u[3], direction)


def texture_scale_mm(phenotype: float | np.ndarray) -> np.ndarray:
    """Correlation length (mm) of the hard phantom's viable-tumor texture at a phenotype (scalar or array):
    coarser, more clustered structure in more aggressive tumors."""
    return HARD_TEXTURE_MM * np.exp(HARD_TEXTURE_SLOPE * np.asarray(phenotype, dtype=np.float64))


def _graded_noise(rng: np.random.Generator, shape: tuple[int, ...], scale_mm: np.ndarray,
                  spacing_zyx: tuple[float, ...]) -> np.ndarray:
    """Unit-variance noise whose correlation length varies voxel by voxel (``scale_mm``, same shape).

    Fields at scales a factor 2 apart are blended per voxel, linearly in log scale; dividing by the
    blend's norm keeps the variance at 1 everywhere, so only the grain changes, not the contrast.
    """
    fields = np.stack([_smooth_noise(rng, shape, s, spacing_zyx) for s in _GRADED_SCALES_MM])
    position = np.clip(np.log2(np.asarray(scale_mm) / _GRADED_SCALES_MM[0]), 0, len(_GRADED_SCALES_MM) - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), len(_GRADED_SCALES_MM) - 2)
    upper_weight = (position - lower).astype(np.float32)
    low = np.take_along_axis(fields, lower[None], 0)[0]
    high = np.take_along_axis(fields, lower[None] + 1, 0)[0]
    return ((1 - upper_weight) * low + upper_weight * high) / np.sqrt((1 - upper_weight) ** 2 + upper_weight ** 2)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_mm: float,
                  spacing_zyx: tuple[float, ...]) -> np.ndarray:
    """Gaussian-correlated noise with unit standard deviation (correlation length ``sigma_mm``)."""

    white = rng.standard_normal(shape).astype(np.float32)
    field_ = gaussian_filter(white, [sigma_mm / s for s in spacing_zyx], mode="reflect")
    return field_ / max(float(field_.std(dtype=np.float64)), 1e-6)


def _rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([
        [c + x * x * (1 - c), x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
        [y * x * (1 - c) + z * s, c + y * y * (1 - c), y * z * (1 - c) - x * s],
        [z * x * (1 - c) - y * s, z * y * (1 - c) + x * s, c + z * z * (1 - c)],
    ])


@dataclass
class _Rendered:
    t2fs: np.ndarray  # float32, (z, y, x)
    t1ce: np.ndarray
    labels: np.ndarray  # uint8: 1 tumor, 2 edema
    direction: np.ndarray
    origin: np.ndarray
    stats: dict[str, Any]


def _render(phenotype: float, tumor_size_cm: float, centre: CentreProfile, size: PhantomSize, seed: int,
            oblique: bool, difficulty: RenderDifficulty | None = None) -> _Rendered:
    (nx, ny, nz), (sx, sy, sz) = GRIDS[size]
    rng = np.random.default_rng(seed)
    # Scalar draws first, in a fixed order, so every array below is the same for the same seed
    # whatever the phenotype (the rendered quantities then move monotonically with it).
    eps = rng.normal(0.0, 1.0, size=4)
    ratio_a, ratio_b = rng.uniform(0.55, 0.8), rng.uniform(0.5, 0.75)
    theta = rng.uniform(0, math.pi)
    shift = rng.uniform(-1, 1, size=3)
    axis = rng.normal(size=3) * np.array([1.0, 1.0, 0.3])
    tilt = rng.uniform(10.0, 20.0)
    table = rng.uniform([-20, -20, -400], [20, 20, -200])
    # A harder phantom draws from its own stream, so the standard one keeps its bytes.
    hard = difficulty is not None and difficulty.active
    hard_rng = readout_stream(seed) if hard else None
    shown = phenotype
    if hard:
        shown = shown_phenotype(phenotype, difficulty, hard_rng)
        nuisance = float(np.exp(difficulty.nuisance_sd * hard_rng.standard_normal()))
    phenotype_rendered = phenotype
    phenotype = shown

    if hard:
        # First-order moments of the tumor do not follow the phenotype (module docstring).
        target_necrosis = 0.55 * _sigmoid(-0.4 + eps[0])
        heterogeneity = HARD_HETEROGENEITY * math.exp(0.2 * eps[1])
    else:
        target_necrosis = 0.55 * _sigmoid(1.3 * phenotype - 0.4 + 0.35 * eps[0])
        heterogeneity = 0.06 + 0.22 * _sigmoid(1.2 * phenotype + 0.3 * eps[1])
    infiltration = 0.04 + 0.30 * _sigmoid(1.2 * phenotype + 0.3 * eps[2])
    edema_mm = 2.0 + 10.0 * _sigmoid(phenotype + 0.3 * eps[3])

    fov = np.array([nx * sx, ny * sy, nz * sz])
    thigh_rx, thigh_ry = 0.44 * fov[0], 0.40 * fov[1]
    # The tumor: longest diameter along the limb (z), in-plane radii a fraction of it.
    half_len = 5.0 * tumor_size_cm
    radii = np.array([half_len * ratio_a, half_len * ratio_b, half_len])
    # Along z the tumor, margin included, stays half a slice inside the first and last slices.
    limits_hi = np.array([_MAX_INPLANE_RADIUS * min(thigh_rx, thigh_ry)] * 2 + [(fov[2] / 2 - sz) / (1 + _MAX_MARGIN)])
    limits_lo = np.array([2.5 * sx, 2.5 * sy, 1.5 * sz])
    clamped_radii = np.clip(radii, limits_lo, limits_hi)
    clamped = bool(np.any(np.abs(clamped_radii - radii) > 1e-9))
    a, b, c = clamped_radii
    reach = 1 + _MARGIN_REACH
    centre_xyz = np.array([
        min(0.30 * thigh_rx + 0.05 * thigh_rx * shift[0], 0.95 * thigh_rx - reach * max(a, b)),
        0.15 * thigh_ry * shift[1],
        max(fov[2] / 2 - reach * c - sz, 0.0) * 0.5 * shift[2],
    ])

    # Anatomy, in mm about the volume centre (image axes; the direction only changes the metadata).
    x = ((np.arange(nx) - (nx - 1) / 2) * sx).astype(np.float32)
    y = ((np.arange(ny) - (ny - 1) / 2) * sy).astype(np.float32)
    z = ((np.arange(nz) - (nz - 1) / 2) * sz).astype(np.float32)
    rho_thigh = np.sqrt((x[None, :] / thigh_rx) ** 2 + (y[:, None] / thigh_ry) ** 2)
    femur_r = 0.13 * min(thigh_rx, thigh_ry)
    rho_femur = np.sqrt((x[None, :] + 0.22 * thigh_rx) ** 2 + (y[:, None] - 0.05 * thigh_ry) ** 2) / femur_r
    texture = _smooth_noise(rng, (ny, nx), 8.0, (sy, sx))
    tissue = np.zeros((ny, nx), dtype=np.uint8)  # 0 air, 1 fat, 2 muscle, 3 cortex, 4 marrow
    tissue[rho_thigh < 1.0] = 1
    tissue[rho_thigh < 0.88] = 2
    tissue[rho_femur < 1.0] = 3
    tissue[rho_femur < 0.7] = 4
    plane = {}
    for name, table_ in (("t2fs", _T2), ("t1ce", _T1)):
        values = np.array([0.0, table_["fat"], table_["muscle"], table_["cortex"], table_["marrow"]], dtype=np.float32)
        image2d = values[tissue]
        image2d[tissue == 2] *= 1 + 0.06 * texture[tissue == 2]
        plane[name] = image2d
    t2 = np.broadcast_to(plane["t2fs"], (nz, ny, nx)).copy()
    t1 = np.broadcast_to(plane["t1ce"], (nz, ny, nx)).copy()
    muscle = np.broadcast_to(tissue == 2, (nz, ny, nx))

    # The tumor, computed inside its bounding box only.
    centre_index = centre_xyz / np.array([sx, sy, sz]) + (np.array([nx, ny, nz]) - 1) / 2
    half_box = np.array([reach * max(a, b) / sx, reach * max(a, b) / sy, reach * c / sz])
    lo = np.maximum(np.floor(centre_index - half_box).astype(int), 0)
    hi = np.minimum(np.ceil(centre_index + half_box).astype(int) + 1, [nx, ny, nz])
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    bx, by, bz = x[lo[0]:hi[0]] - centre_xyz[0], y[lo[1]:hi[1]] - centre_xyz[1], z[lo[2]:hi[2]] - centre_xyz[2]
    u = math.cos(theta) * bx[None, None, :] + math.sin(theta) * by[None, :, None]
    v = -math.sin(theta) * bx[None, None, :] + math.cos(theta) * by[None, :, None]
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (bz[:, None, None] / c) ** 2).astype(np.float32)
    shape = rho.shape
    spacing_zyx = (sz, sy, sx)
    mean_r = float((a * b * c) ** (1 / 3))
    n_margin_low = _smooth_noise(rng, shape, 0.35 * mean_r, spacing_zyx)
    n_margin_high = _smooth_noise(rng, shape, 3.0, spacing_zyx)
    n_necrosis = _smooth_noise(rng, shape, 0.25 * mean_r, spacing_zyx)
    n_t2 = _smooth_noise(rng, shape, 2.5, spacing_zyx)
    n_t1 = _smooth_noise(rng, shape, 2.5, spacing_zyx)
    n_edema = _smooth_noise(rng, shape, 0.3 * mean_r, spacing_zyx)
    margin = (0.06 + 0.10 * infiltration) * n_margin_low + 0.45 * infiltration * n_margin_high
    tumor = rho < 1 + np.clip(margin, -_MAX_MARGIN, _MAX_MARGIN)
    necrosis_radius = target_necrosis ** (1 / 3)
    necrosis = tumor & (rho < necrosis_radius * (1 + 0.18 * n_necrosis))
    viable = tumor & ~necrosis
    if hard:
        # Intratumoral heterogeneity: the phenotype shown varies by region, and with it the grain of the
        # viable tumor's texture; one tissue structure, seen by both sequences. It replaces n_t2 and n_t1,
        # which were still drawn so that the scanner noise after them keeps its place in the stream.
        local = phenotype + difficulty.regional_sd * _smooth_noise(hard_rng, shape, 0.3 * mean_r, spacing_zyx)
        grain = _graded_noise(hard_rng, shape, texture_scale_mm(local), spacing_zyx)
        if viable.any():  # a tumor necrotic throughout has no viable texture to standardise
            grain = (grain - grain[viable].mean()) / max(float(grain[viable].std()), 1e-6)
        n_t2 = n_t1 = grain
    edema = ~tumor & muscle[box] & (rho < 1 + (edema_mm / mean_r) * (1 + 0.3 * n_edema))
    # float64: numpy's float32 exp may differ by one ulp with the array's alignment, which would make
    # the written bytes depend on the process that rendered them
    rho64 = rho.astype(np.float64)
    rim = np.exp(-(((rho64 - necrosis_radius) / 0.08) ** 2)) + 0.5 * np.exp(-(((rho64 - 1) / 0.1) ** 2))

    t2_box, t1_box = t2[box], t1[box]
    t2_box[edema] = _T2["edema"] * (1 + 0.08 * n_edema[edema])
    t1_box[edema] = _T1["edema"] * (1 + 0.05 * n_edema[edema])
    viable_t2, viable_t1 = (_T2["viable"] * nuisance, _T1["viable"] * nuisance) if hard else (_T2["viable"], _T1["viable"])
    t2_box[viable] = viable_t2 * (1 + heterogeneity * n_t2[viable])
    t1_box[viable] = viable_t1 * (1 + heterogeneity * n_t1[viable]) * (1 + 0.35 * rim[viable])
    t2_box[necrosis] = _T2["necrosis"] * (1 + 0.04 * n_margin_high[necrosis])
    t1_box[necrosis] = _T1["necrosis"] * (1 + 0.04 * n_margin_high[necrosis])
    labels = np.zeros((nz, ny, nx), dtype=np.uint8)
    labels[box][edema] = EDEMA_LABEL
    labels[box][tumor] = TUMOR_LABEL

    # Scanner: bias field, Rician noise, intensity scale and offset of the centre.
    r_fov = float(np.linalg.norm(fov) / 2)
    g = np.asarray(centre.bias_direction, dtype=np.float32)
    linear = (g[0] * x[None, None, :] + g[1] * y[None, :, None] + g[2] * z[:, None, None]) / r_fov
    radial = (x[None, None, :] ** 2 + y[None, :, None] ** 2 + z[:, None, None] ** 2) / r_fov**2
    bias = 1 + centre.bias_amplitude * (linear + 0.5 * (radial - 0.33))
    out = {}
    for name, signal in (("t2fs", t2), ("t1ce", t1)):
        sigma = _NOISE_SIGMA[name]
        real = bias * signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
        imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
        out[name] = (centre.scale * np.sqrt(real * real + imag * imag) + centre.offset).astype(np.float32)

    direction = _rotation(axis, tilt) if oblique else np.eye(3)
    spacing = np.array([sx, sy, sz])
    origin = table - direction @ ((np.array([nx, ny, nz]) - 1) / 2 * spacing)
    voxel_ml = sx * sy * sz / 1000.0
    n_tumor = int(tumor.sum())
    stats = {
        "phenotype": float(phenotype_rendered),
        "centre": centre.name,
        "size": size.value,
        "seed": int(seed),
        "shape_xyz": [nx, ny, nz],
        "spacing_mm": [sx, sy, sz],
        "oblique_degrees": float(tilt) if oblique else 0.0,
        "tumor_size_cm": float(tumor_size_cm),
        "tumor_size_cm_rendered": float(2 * max(a, b, c) / 10),
        "tumor_size_clamped": clamped,
        "tumor_volume_ml": n_tumor * voxel_ml,
        "necrotic_fraction": float(necrosis.sum()) / max(n_tumor, 1),
        "target_necrotic_fraction": float(target_necrosis),
        "heterogeneity": float(heterogeneity),
        "infiltration": float(infiltration),
        "edema_mm": float(edema_mm),
        "edema_volume_ml": float(edema.sum()) * voxel_ml,
        "centre_scale": float(centre.scale),
        "centre_offset": float(centre.offset),
        "bias_amplitude": float(centre.bias_amplitude),
    }
    if hard:
        stats.update({"phenotype_shown": float(shown), "intensity_nuisance": nuisance,
                      "texture_scale_mm": float(texture_scale_mm(shown)),
                      "difficulty": difficulty.to_dict()})
    return _Rendered(out["t2fs"], out["t1ce"], labels, direction, origin, stats)


def _to_image(array: np.ndarray, rendered: _Rendered, spacing: tuple[float, float, float], pixel: str):
    if pixel == "int16":
        array = np.clip(np.rint(array), 0, np.iinfo(np.int16).max).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin([float(v) for v in rendered.origin])
    image.SetDirection([float(v) for v in rendered.direction.ravel()])
    return image


def _check_arguments(phenotype: float, tumor_size_cm: float, seed: int) -> None:
    if not isinstance(phenotype, (int, float)) or not math.isfinite(phenotype):
        raise InvalidInput(f"phenotype: {phenotype!r} is not a finite number (a standard-normal latent)")
    if not isinstance(tumor_size_cm, (int, float)) or not math.isfinite(tumor_size_cm) or tumor_size_cm <= 0:
        raise InvalidInput(f"tumor_size_cm: {tumor_size_cm!r} is not a positive number of centimetres")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise InvalidInput(f"seed: {seed!r} is not a non-negative integer")


def write_phantom_mri(out_dir: Path, *, phenotype: float, tumor_size_cm: float, centre: str, size: str,
                      seed: int, oblique: bool = False, dicom: bool = False,
                      difficulty: RenderDifficulty | None = None) -> PhantomMRI:
    """Render one phantom case into ``out_dir`` (created if needed).

    Parameters
    ----------
    out_dir : Path
        Folder for the case's files: ``t2fs.nii.gz``, ``t1ce.nii.gz`` (or ``t2fs/``, ``t1ce/`` DICOM
        series folders), ``tumor.seg.nrrd``, ``tumor_label.nii.gz``.
    phenotype : float
        MRI phenotype, a standard-normal latent; higher = more aggressive (more necrosis,
        heterogeneity, infiltration and edema; on the hard phantom a coarser texture grain,
        infiltration and edema).
    tumor_size_cm : float
        Longest tumor diameter; clamped to what the field of view holds (``stats`` says so).
    centre : str
        Centre code; "A" is the reference scanner, any other name a deterministic variant.
    size : {"tiny", "small", "medium"}
        Volume size: 96x96x16 at 2x2x5 mm, 256x256x24 at 0.8x0.8x4.5 mm, 512x512x40 at
        0.7x0.7x4.5 mm.
    seed : int
        Random seed; the same arguments give the same bytes.
    oblique : bool
        Give the volume a direction cosine matrix rotated 10-20 degrees from the scanner axes.
    dicom : bool
        Write the two sequences as DICOM MR series (one study) instead of NIfTI.
    difficulty : RenderDifficulty, optional
        Readout error, intratumoral heterogeneity and nuisance of the ``hard`` phantom
        (:mod:`sarcoma_risk.synthetic.difficulty`); None renders the standard phantom.
    """

    size_ = check_choice(size, PhantomSize, "size")
    _check_arguments(phenotype, tumor_size_cm, seed)
    profile = centre_profile(centre)
    rendered = _render(float(phenotype), float(tumor_size_cm), profile, size_, int(seed), bool(oblique), difficulty)
    spacing = GRIDS[size_][1]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    paths: dict[str, Path] = {}
    key = f"{seed}/{centre}/{phenotype!r}/{tumor_size_cm!r}/{size_.value}/{oblique}"
    study_uid, frame_uid = uid_from_text(f"phantom-study/{key}"), uid_from_text(f"phantom-frame/{key}")
    descriptions = {"t2fs": "T2 FS AX", "t1ce": "T1 FS AX POST GD"}
    for number, name in enumerate(("t2fs", "t1ce"), start=1):
        image = _to_image(getattr(rendered, name), rendered, spacing, "int16")
        if dicom:
            paths[name] = out_dir / name
            pseudonym = f"PHANTOM-{seed}"
            write_series(image, paths[name], study_uid=study_uid, series_uid=uid_from_text(f"phantom-series/{key}/{name}"),
                         frame_uid=frame_uid, series_description=descriptions[name], series_number=number,
                         study_date="20250101", study_time="120000",
                         extra_tags={"0010|0010": pseudonym, "0010|0020": pseudonym, "0008|0021": "20250101", "0008|0031": "120000",
                                     "0008|0012": "20250101", "0008|0013": "120000", "0008|0070": "SarcomaRisk phantom",
                                     "0008|1030": "MRI thigh (phantom)", "0018|0015": "THIGH",
                                     "0018|0087": "1.5", "0020|0010": "1"})
        else:
            paths[name] = out_dir / f"{name}.nii.gz"
            sitk.WriteImage(image, str(paths[name]), useCompression=True)

    labels = _to_image(rendered.labels, rendered, spacing, "uint8")
    paths["labelmap"] = out_dir / "tumor_label.nii.gz"
    sitk.WriteImage(sitk.Equal(labels, TUMOR_LABEL), str(paths["labelmap"]), useCompression=True)
    paths["seg"] = out_dir / "tumor.seg.nrrd"
    category = "Segmentation category and type - 3D Slicer General Anatomy list~SCT^49755003^Morphologically Altered Structure"
    write_slicer_segmentation(labels, [
        SegmentSpec(TUMOR_LABEL, "Tumor", "Segment_1", (0.85, 0.32, 0.26),
                    f"{category}~SCT^108369006^Neoplasm~^^~Anatomic codes - DICOM master list~^^~^^"),
        SegmentSpec(EDEMA_LABEL, "Peritumoral edema", "Segment_2", (0.35, 0.62, 0.86),
                    f"{category}~SCT^79654002^Edema~^^~Anatomic codes - DICOM master list~^^~^^"),
    ], paths["seg"])
    stats = {**rendered.stats, "format": "dicom" if dicom else "nifti"}
    return PhantomMRI(paths["t2fs"], paths["t1ce"], paths["seg"], paths["labelmap"], stats)
