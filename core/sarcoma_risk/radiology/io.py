"""Reading MRI volumes and tumor masks with their physical geometry (SimpleITK).

Public API, used by preprocessing, training, the CLI and the Slicer module:

- :func:`read_image`: a DICOM series folder (series chosen by UID), NIfTI, NRRD/NHDR or MHA/MHD,
  returned as a float32 3D image; 2D images, 4D series, NaN/inf voxels and DICOM series of another
  modality than MR are refused; a file whose values look like CT Hounsfield units is read with a
  warning (:func:`hounsfield_signs`).
- :func:`read_mask`: a labelmap or a 3D Slicer ``.seg.nrrd`` segment, returned as a 0/1 uint8 mask
  on the reference image's grid (resampled by nearest neighbour when it was drawn on another grid).
- :func:`align_sequence`: a second sequence resampled (linear) onto the first one's grid.
- :func:`read_case`: the three together for one case, as :class:`MRICase`.

Every error names the file and says what was expected.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage
from sarcoma_risk.provenance import fingerprint, sha256_file
from sarcoma_risk.radiology import dicom, geometry
from sarcoma_risk.radiology.segments import read_segment_table, segment_mask, select_segment

log = logging.getLogger(__name__)

SUPPORTED = "a DICOM series folder, NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd)"
#: A second sequence must cover at least this share of the tumor to be used.
MIN_TUMOR_COVERAGE = 0.9
_FLOAT_TYPES = {sitk.sitkFloat32, sitk.sitkFloat64}
#: The Hounsfield-unit rule (:func:`hounsfield_signs`): air and the scanners' padding lie at or below
#: AIR_HU (air is -1000 HU; padding -1024, -2048 or -3024), bone and contrast at or above DENSE_HU.
AIR_HU = -900.0
DENSE_HU = 300.0
MIN_AIR_SHARE = 0.05
MIN_DENSE_SHARE = 0.001


class HounsfieldWarning(UserWarning):
    """An MRI file whose intensities look like CT Hounsfield units (scored anyway; check the input)."""


def hounsfield_signs(array: np.ndarray) -> str | None:
    """Why ``array`` looks like a CT in Hounsfield units, or None when it does not.

    The rule: at least 5% of the voxels at or below -900 (air around the body is -1000 HU, and
    scanners pad outside the field of view with -1024 or lower) and at least 0.1% at or above +300
    (cortical bone, calcification or contrast). MR magnitude images have no negative intensities,
    and intensity-normalised MR (z-scores, 0-1) has none that low, so both signs together do not
    occur in MR input. A CT cropped to soft tissue without air in view is not caught.
    """
    n = array.size
    if n == 0:
        return None
    air = int(np.count_nonzero(array <= AIR_HU))
    dense = int(np.count_nonzero(array >= DENSE_HU))
    if air < MIN_AIR_SHARE * n or dense < MIN_DENSE_SHARE * n:
        return None
    return (f"{100 * air / n:.0f}% of the voxels are at or below {AIR_HU:g} (air is -1000 HU) and values reach "
            f"{float(array.max()):.0f}")


def _read_file(path: Path) -> sitk.Image:
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as exc:
        detail = dicom.itk_error_text(exc)
        raise InvalidImage(f"{path}: cannot be read as an image ({detail}); expected {SUPPORTED}") from None


def _check_exists(path: Path, role: str) -> None:
    if not path.exists():
        raise InvalidImage(f"{path}: no such file or folder (the {role})")


def _as_volume(image: sitk.Image, path: Path, role: str) -> sitk.Image:
    """Refuse what is not a scalar 3D volume; drop a trailing length-1 fourth axis."""
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() == 4:
        raise InvalidImage(f"{path}: a 4D image with {image.GetSize()[3]} volumes (dynamic or diffusion series?); "
                           f"the {role} must be one 3D volume")
    if image.GetDimension() == 2 or min(image.GetSize()) < 2:
        raise InvalidImage(f"{path}: a 2D image (size {'x'.join(map(str, image.GetSize()))}); the {role} must be a "
                           "3D volume with several slices (for a DICOM series, give the folder holding its files)")
    spacing = np.asarray(image.GetSpacing())
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InvalidImage(f"{path}: voxel spacing {tuple(spacing)} is not positive and finite")
    return image


def read_image(path: str | Path, series_uid: str | None = None) -> sitk.Image:
    """Read one MRI volume as a float32 SimpleITK image in LPS physical space.

    Parameters
    ----------
    path : path
        A folder with a DICOM series, or a NIfTI, NRRD/NHDR or MetaImage file.
    series_uid : str, optional
        SeriesInstanceUID when ``path`` is a folder holding several series.

    Raises
    ------
    InvalidImage
        Unreadable file, several DICOM series and none chosen (the UIDs are listed), a DICOM series
        with a missing slice or whose Modality is not MR, a 2D or 4D image, a multi-component image,
        NaN or infinite voxels.

    Warns
    -----
    HounsfieldWarning
        A file (NIfTI, NRRD, MetaImage) whose values look like CT Hounsfield units
        (:func:`hounsfield_signs`); also logged. The image is returned all the same.
    """
    path = Path(path)
    _check_exists(path, "MRI")
    from_file = not path.is_dir()
    if not from_file:
        image = dicom.read_series(path, series_uid)
    else:
        if series_uid is not None:
            log.info("%s is a file; --series-uid applies to DICOM folders and is ignored", path.name)
        image = _read_file(path)
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImage(f"{path}: {image.GetNumberOfComponentsPerPixel()} values per voxel (colour or vector "
                           "image); expected a grey-level MRI volume")
    image = _as_volume(image, path, "MRI")
    was_float = image.GetPixelID() in _FLOAT_TYPES
    image = sitk.Cast(image, sitk.sitkFloat32)
    if was_float:
        array = sitk.GetArrayViewFromImage(image)
        bad = ~np.isfinite(array)
        if bad.any():
            k = int(np.argwhere(bad)[0][0])
            raise InvalidImage(f"{path}: {int(bad.sum())} voxel(s) are NaN or infinite (first in slice {k}); "
                               "expected finite intensities (re-export the volume from the scanner or viewer)")
    if from_file:  # a DICOM series says its modality (checked when it was read); a file does not
        signs = hounsfield_signs(sitk.GetArrayViewFromImage(image))
        if signs is not None:
            message = (f"{path}: looks like a CT in Hounsfield units ({signs}); the radiology model expects an MR "
                       "volume (T2 fat-suppressed or contrast-enhanced T1) and its score of a CT means nothing. "
                       "Scoring goes on; check that this is the MRI.")
            log.warning("%s", message)
            warnings.warn(message, HounsfieldWarning, stacklevel=2)
    return image


def _labelmap_mask(image: sitk.Image, path: Path, segment: str | None) -> sitk.Image:
    """A 0/1 mask from a plain labelmap: its single label, or the label value given by ``segment``."""
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImage(f"{path}: {image.GetNumberOfComponentsPerPixel()} values per voxel but no Slicer segment "
                           "table in the header; expected a labelmap or a .seg.nrrd")
    array = sitk.GetArrayViewFromImage(image)
    if image.GetPixelID() in _FLOAT_TYPES and not np.all(np.isfinite(array) & (array == np.round(array))):
        raise InvalidImage(f"{path}: holds non-integer values (a probability map?); expected a labelmap with "
                           "integer labels (0 = background)")
    labels = [int(v) for v in np.unique(array) if v != 0]
    if segment is not None:
        try:
            wanted = int(segment)
        except ValueError:
            raise InvalidImage(f"{path}: a plain labelmap has no segment names; give the label value "
                               f"({', '.join(map(str, labels)) or 'none present'}) instead of {segment!r}") from None
        if wanted not in labels:
            raise InvalidImage(f"{path}: label {wanted} is empty or absent; labels present: "
                               f"{', '.join(map(str, labels)) or 'none'}")
        labels = [wanted]
    if len(labels) > 1:
        raise InvalidImage(f"{path}: a labelmap with labels {', '.join(map(str, labels))}; choose the tumor's "
                           "label with --segment VALUE")
    value = labels[0] if labels else 1
    return sitk.Cast(sitk.Equal(image, float(value)), sitk.sitkUInt8)


def read_mask(path: str | Path, reference: sitk.Image, segment: str | None = None) -> sitk.Image:
    """Read the tumor mask and put it on ``reference``'s grid.

    Parameters
    ----------
    path : path
        A 3D Slicer ``.seg.nrrd`` (single- or multi-layer) or a labelmap (any format of
        :func:`read_image`; 0 = background).
    reference : SimpleITK.Image
        The MRI the mask belongs to.
    segment : str, optional
        Segment name or ID in a ``.seg.nrrd`` (default: the first segment); for a labelmap with
        several labels, the label value.

    Returns
    -------
    SimpleITK.Image
        uint8, 1 inside the tumor, with ``reference``'s size, spacing, origin and direction. A mask
        drawn on another grid is resampled by nearest neighbour when it overlaps the image.

    Raises
    ------
    InvalidImage
        Unreadable file, unknown segment, empty mask, or a mask that lies outside the image.
    """
    path = Path(path)
    _check_exists(path, "tumor mask")
    if path.is_dir():
        raw = dicom.read_series(path, modality=None)
    else:
        raw = _read_file(path)
    raw = _as_volume(raw, path, "tumor mask")
    segments = read_segment_table(raw, path)
    if segments:
        chosen = select_segment(segments, segment, path)
        what = f"segment {chosen.name!r}"
        if chosen.recorded_empty:
            raise InvalidImage(f"{path}: {what} is empty (3D Slicer saved it with no extent); draw the tumor, or "
                               "choose another segment")
        mask = segment_mask(raw, chosen)
    else:
        mask = _labelmap_mask(raw, path, segment)
        what = "the mask"
    points = geometry.foreground_points(mask)
    if len(points) == 0:
        raise InvalidImage(f"{path}: {what} is empty (no voxel set); draw the tumor, or choose another segment")
    if geometry.same_grid(mask, reference):
        mask.CopyInformation(reference)  # drop float noise in the geometry
        return mask
    inside = geometry.inside_fraction(reference, points)
    if inside == 0:
        raise InvalidImage(
            f"{path}: {what} lies entirely outside the MRI volume (no physical overlap); the mask belongs to "
            f"another image or was saved with another origin/orientation. Mask geometry "
            f"{_describe(mask)}; image {_describe(reference)}")
    if inside < 1:
        log.warning("%s: %.0f%% of %s lies outside the MRI volume and is ignored", path.name, 100 * (1 - inside), what)
    resampled = geometry.resample_onto(mask, reference, linear=False, pixel_type=sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(resampled).any():
        raise InvalidImage(f"{path}: {what} covers no voxel centre of the MRI after resampling onto its grid "
                           "(thinner than one voxel?)")
    return resampled


def _describe(image: sitk.Image) -> str:
    lo = geometry.corner_points(image).min(axis=0)
    hi = geometry.corner_points(image).max(axis=0)
    box = ", ".join(f"{a:.0f}..{b:.0f}" for a, b in zip(lo, hi))
    return f"size {'x'.join(map(str, image.GetSize()))}, LPS box {box} mm"


def align_sequence(image: sitk.Image, reference: sitk.Image, mask: sitk.Image, *, name: str = "second sequence",
                   path: str | Path | None = None) -> sitk.Image:
    """``image`` on ``reference``'s grid (linear interpolation through physical space).

    Refused when it covers less than :data:`MIN_TUMOR_COVERAGE` of the tumor ``mask`` (on
    ``reference``'s grid): the network would see an empty region where the tumor is.
    """
    if geometry.same_grid(image, reference):
        out = sitk.Image(image)
        out.CopyInformation(reference)
        return out
    coverage = geometry.inside_fraction(image, geometry.foreground_points(mask))
    label = str(path) if path is not None else name
    if coverage < MIN_TUMOR_COVERAGE:
        raise InvalidImage(f"{label}: the {name} covers {100 * coverage:.0f}% of the tumor outlined on the first "
                           f"sequence (at least {100 * MIN_TUMOR_COVERAGE:.0f}% needed); are both from the same "
                           f"study? {name}: {_describe(image)}; first sequence: {_describe(reference)}")
    return geometry.resample_onto(image, reference, linear=True, pixel_type=sitk.sitkFloat32)


@dataclass
class MRICase:
    """One case's MRI: the sequences on the first one's grid, the tumor mask, input fingerprints.

    ``images`` maps a sequence name (``"t2fs"``, ``"t1ce"``) to its image, in channel order; every
    image and the mask share the first sequence's grid, which is the "original geometry" of outputs
    such as Grad-CAM.
    """

    images: dict[str, sitk.Image]
    mask: sitk.Image
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def reference(self) -> sitk.Image:
        return next(iter(self.images.values()))

    @property
    def sequences(self) -> tuple[str, ...]:
        """The sequences read, in channel order."""
        return tuple(self.images)

    def tumor_volume_ml(self) -> float:
        voxels = int(np.count_nonzero(sitk.GetArrayViewFromImage(self.mask)))
        return voxels * float(np.prod(self.mask.GetSpacing())) / 1000.0


def input_fingerprint(path: Path, series_uid: str | None = None) -> dict[str, Any]:
    """Content fingerprint of an input; for a DICOM folder, of the chosen series' files only."""
    if path.is_dir():
        files = dicom.series_files(path, series_uid)
        if files:
            digest = hashlib.sha256()
            for file in sorted(files):
                digest.update(Path(file).relative_to(path).as_posix().encode())
                digest.update(sha256_file(file).encode())
            return {"sha256": digest.hexdigest(), "bytes": sum(Path(f).stat().st_size for f in files),
                    "files": len(files)}
    return fingerprint(path)


def read_case(t2fs: str | Path | None, mask: str | Path, t1ce: str | Path | None = None, *,
              segment: str | None = None, series_uid: str | None = None,
              series_uid2: str | None = None) -> MRICase:
    """Read a case's MRI (the T2 fat-suppressed, the contrast-enhanced T1, or both) and its tumor mask.

    The first sequence given (the T2 when there is one) is the reference: the mask and the other
    sequence are put on its grid, and outputs such as Grad-CAM come back on it. ``series_uid`` picks
    the T2's DICOM series, ``series_uid2`` the T1CE's.
    """
    if t2fs is None and t1ce is None:
        raise InvalidImage("no MRI given: the tumor needs the T2 fat-suppressed or the contrast-enhanced T1 "
                           "sequence (or both)")
    given = [(name, Path(path), uid) for name, path, uid in (("t2fs", t2fs, series_uid), ("t1ce", t1ce, series_uid2))
             if path is not None]
    (first, first_path, first_uid), others = given[0], given[1:]
    mask = Path(mask)
    reference = read_image(first_path, first_uid)
    tumor = read_mask(mask, reference, segment)
    images = {first: reference}
    for name, path, uid in others:
        images[name] = align_sequence(read_image(path, uid), reference, tumor, name=f"{name.upper()} sequence",
                                      path=path)
    fingerprints = case_fingerprints(t2fs, mask, t1ce, series_uid=series_uid, series_uid2=series_uid2)
    return MRICase(images, tumor, fingerprints)


def case_fingerprints(t2fs: str | Path | None, mask: str | Path, t1ce: str | Path | None = None, *,
                      series_uid: str | None = None, series_uid2: str | None = None) -> dict[str, dict[str, Any]]:
    """The input fingerprints :func:`read_case` records (roles ``t2fs``, ``mask``, ``t1ce``, for the sequences
    given), without reading the images: a batch compares them with a record's provenance to skip a case
    scored before."""
    fingerprints = {"mask": input_fingerprint(Path(mask))}
    if t2fs is not None:
        fingerprints = {"t2fs": input_fingerprint(Path(t2fs), series_uid), **fingerprints}
    if t1ce is not None:
        fingerprints["t1ce"] = input_fingerprint(Path(t1ce), series_uid2)
    return fingerprints
