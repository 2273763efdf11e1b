"""Scoring one case: radiology score, percentile, tumor volume and Grad-CAM in the MRI's geometry.

:func:`score_case` runs preprocessing, the network and Grad-CAM on an :class:`~sarcoma_risk.radiology.io.MRICase`;
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

import SimpleITK as sitk

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import atomic_path
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.radiology.dicom import itk_error_text
from sarcoma_risk.radiology.gradcam import cam_to_original, empty_map_reason, grad_cam
from sarcoma_risk.radiology.io import MRICase
from sarcoma_risk.radiology.preprocess import prepare_case
from sarcoma_risk.radiology.train import RadiologyCoxModel

#: Single-file formats only: a temporary name plus a rename keeps the write atomic.
VOLUME_EXTENSIONS = (".nrrd", ".nii.gz", ".nii", ".mha")


@dataclass
class RadiologyResult:
    """What scoring one case gives. ``score`` is a log relative hazard (higher = riskier).

    ``gradcam`` is the signed map in [-1, 1] (positive: raised the risk, negative: lowered it);
    ``gradcam_note`` says why it is 0 everywhere when it is, and is None otherwise.
    """

    score: float
    percentile: float
    tumor_volume_ml: float
    sequences: list[str]
    patch_spacing_mm: float
    gradcam: sitk.Image | None = field(default=None, repr=False)
    gradcam_note: str | None = None


def score_case(model: RadiologyCoxModel, case: MRICase, *, gradcam: bool = True) -> RadiologyResult:
    """Score one case; with ``gradcam`` also map the signed Grad-CAM onto the first sequence's grid."""
    prepared = prepare_case(case, model.preprocess)
    cam, note = None, None
    if gradcam:
        result = grad_cam(model._check_fitted(), prepared.array)
        score = result.score
        cam = cam_to_original(result.shares, prepared.geometry, model.model.feature_stride, case.reference)
        note = empty_map_reason(result.shares, cam)
    else:
        score = float(model.predict(prepared.array[None])[0])
    return RadiologyResult(score=score, percentile=float(model.percentile(score)[0]),
                           tumor_volume_ml=prepared.tumor_volume_ml, sequences=list(prepared.sequences),
                           patch_spacing_mm=prepared.geometry.spacing, gradcam=cam, gradcam_note=note)


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
