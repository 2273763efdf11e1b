"""Scoring one case: radiology score, percentile, tumor volume and Grad-CAM in the MRI's geometry.

:func:`score_case` runs preprocessing, the networks of a sequence set's model and Grad-CAM on an
:class:`~sarcoma_risk.radiology.io.MRICase` (which model fits which sequences: :mod:`sarcoma_risk.sequences`;
on the networks' device, in fp32 or in a reduced precision that :func:`check_precision_for` found
accurate enough on a fixed probe batch);
:func:`staged_volume` / :func:`write_volume` save the Grad-CAM as NRRD, NIfTI or MetaImage (by
extension) through a temporary file and a rename, so a viewer such as 3D Slicer never sees half a
file, and give its sha256 for the case record.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from sarcoma_risk.device import Precision, autocast
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import atomic_path
from sarcoma_risk.precision import RADIOLOGY_SCORE_TOLERANCE, PrecisionCheck, guard_precision
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.radiology.dicom import itk_error_text
from sarcoma_risk.radiology.ensemble import RadiologyEnsemble
from sarcoma_risk.radiology.gradcam import cam_to_original, empty_map_reason, grad_cam
from sarcoma_risk.radiology.io import MRICase
from sarcoma_risk.radiology.config import PreprocessConfig
from sarcoma_risk.radiology.preprocess import prepare_case

#: Single-file formats only: a temporary name plus a rename keeps the write atomic.
VOLUME_EXTENSIONS = (".nrrd", ".nii.gz", ".nii", ".mha")


@dataclass
class RadiologyResult:
    """What scoring one case gives. ``score`` is a log relative hazard (higher = riskier);
    ``sequence_set`` names the model that made it (e.g. ``"t2fs"``: the T2FS-only model).

    ``gradcam`` is the signed map in [-1, 1] (positive: raised the risk, negative: lowered it);
    ``gradcam_note`` says why it is 0 everywhere when it is, and is None otherwise.
    """

    score: float
    percentile: float
    tumor_volume_ml: float
    sequences: list[str]
    sequence_set: str
    patch_spacing_mm: float
    gradcam: sitk.Image | None = field(default=None, repr=False)
    gradcam_note: str | None = None


def score_case(model: RadiologyEnsemble, case: MRICase, *, gradcam: bool = True,
               precision: str | Precision = Precision.FP32) -> RadiologyResult:
    """Score one case with a sequence set's model; with ``gradcam`` also map the signed Grad-CAM onto the
    first sequence's grid (the mean of the members' voxel shares, which sums to the score).

    The networks run where they are (:meth:`RadiologyEnsemble.to`) in ``precision``; use the one
    :func:`check_precision_for` allowed.
    """
    prepared = prepare_case(case, model.preprocess)
    cam, note = None, None
    with autocast(model.device, precision):
        if gradcam:
            results = [grad_cam(member._check_fitted(), prepared.array) for member in model.members]
            score = float(np.mean([r.score for r in results]))
        else:
            score = float(model.predict(prepared.array[None])[0])
    if gradcam:
        shares = np.mean([r.shares for r in results], axis=0)
        cam = cam_to_original(shares, prepared.geometry, model.model.feature_stride, case.reference)
        note = empty_map_reason(shares, cam)
    return RadiologyResult(score=score, percentile=float(model.percentile(score)[0]),
                           tumor_volume_ml=prepared.tumor_volume_ml, sequences=list(prepared.sequences),
                           sequence_set=model.sequence_set, patch_spacing_mm=prepared.geometry.spacing, gradcam=cam,
                           gradcam_note=note)


def probe_volumes(config: PreprocessConfig, n: int = 8, seed: int = 0) -> np.ndarray:
    """A fixed batch of prepared-patch-like inputs (n, channels, p, p, p) float32 for the precision guard.

    A sphere of tumor (mask channel 1) in a smooth random field z-scored over the region around
    it, the sequences 0 outside that region as preprocessing leaves them. Not an MRI, but on the
    shipped weights its fp32-to-bf16 differences match those of prepared phantom cases
    (tests/radiology/test_precision.py).
    """

    rng = np.random.default_rng(seed)
    p = config.patch_size
    axis = np.arange(p, dtype=np.float32) - (p - 1) / 2
    zz, yy, xx = np.meshgrid(axis, axis, axis, indexing="ij")
    out = np.zeros((n, config.in_channels, p, p, p), np.float32)
    for i in range(n):
        radius = p * rng.uniform(0.18, 0.36)
        dz, dy, dx = rng.uniform(-0.08, 0.08, 3) * p
        distance = np.sqrt((zz - dz) ** 2 + (yy - dy) ** 2 + (xx - dx) ** 2)
        tumor, region = distance <= radius, distance <= radius + 0.12 * p
        for channel in range(len(config.sequences)):
            field = gaussian_filter(rng.normal(size=(p, p, p)).astype(np.float32), p / 16)
            field = (field - field[region].mean()) / (field[region].std() + 1e-6)
            field += np.where(tumor, rng.uniform(0.5, 1.5), -0.5)
            out[i, channel] = np.where(region, field, 0) if config.zero_outside_region else field
        if config.mask_channel:
            out[i, -1] = tumor
    return out


def check_precision_for(model: RadiologyEnsemble, precision: str | Precision) -> PrecisionCheck:
    """Compare ``precision`` with fp32 on :func:`probe_volumes` with the model's weights, where it runs.

    Returns the check; its ``used`` precision is the requested one when the scores stay within
    :data:`~sarcoma_risk.precision.RADIOLOGY_SCORE_TOLERANCE`, else fp32 (with a warning).
    """
    device = model.device

    def run(chosen: Precision) -> np.ndarray:
        with autocast(device, chosen):
            return model.predict(probe_volumes(model.preprocess))

    return guard_precision(run, precision, model="radiology", quantity="radiology score (log relative hazard)",
                           tolerance=RADIOLOGY_SCORE_TOLERANCE)


def volume_extension(path: str | Path) -> str:
    """The volume format extension of ``path``; :class:`InvalidInput` when it is not supported."""
    name = Path(path).name.lower()
    for extension in VOLUME_EXTENSIONS:
        if name.endswith(extension) and len(name) > len(extension):
            return extension
    raise InvalidInput(f"{path}: cannot tell the volume format; use one of {', '.join(VOLUME_EXTENSIONS)}")


@contextlib.contextmanager
def staged_volume(image: sitk.Image, path: str | Path) -> Iterator[str]:
    """Write ``image`` to a temporary file beside ``path``; yield its sha256; move it into place on exit.

    When the ``with`` body raises, the temporary file is removed and ``path`` is left as it was:
    wrap the record update in the body so that the volume appears only if the record was written.
    """
    path = Path(path)
    extension = volume_extension(path)
    if not path.parent.is_dir():
        raise InvalidInput(f"{path}: the folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"{path}: cannot write in {path.parent} (permission denied)")
    with atomic_path(path, suffix=extension) as tmp:
        try:
            sitk.WriteImage(image, str(tmp), useCompression=extension != ".nii")
        except RuntimeError as exc:
            raise InvalidInput(f"{path}: cannot be written ({itk_error_text(exc)})") from None
        yield sha256_file(tmp)


def write_volume(image: sitk.Image, path: str | Path) -> str:
    """Write ``image`` (format from the extension, gzip-compressed) atomically; returns the file's sha256."""
    with staged_volume(image, path) as digest:
        return digest
