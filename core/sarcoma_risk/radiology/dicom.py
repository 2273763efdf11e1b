"""DICOM MR series: choose a series in a folder, check its slices, read it; write one (phantoms).

GDCM (through SimpleITK) groups a folder's files by SeriesInstanceUID and sorts them along the slice
normal. It does not refuse a series with a missing slice: it reads the volume with an average slice
spacing, which silently shifts every slice after the gap. The positions are therefore checked here
first, from ImagePositionPatient projected on the normal of ImageOrientationPatient.
"""

from __future__ import annotations

import hashlib
import locale
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage

TAG_IMAGE_POSITION = "0020|0032"
TAG_IMAGE_ORIENTATION = "0020|0037"
TAG_MODALITY = "0008|0060"
#: What the radiology model scores (DICOM Modality defined term for magnetic resonance).
MR_MODALITY = "MR"
#: Slices may deviate from the series' median spacing by this share (scanners round positions).
SPACING_TOLERANCE = 0.05


def list_series(folder: Path) -> dict[str, list[str]]:
    """Series UID -> its files sorted along the slice normal, for the DICOM files directly in ``folder``."""
    reader = sitk.ImageSeriesReader()
    return {uid: list(reader.GetGDCMSeriesFileNames(str(folder), uid)) for uid in reader.GetGDCMSeriesIDs(str(folder))}


def _header(file: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(file)
    reader.ReadImageInformation()
    return reader


def _numbers(text: str, count: int, what: str, file: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.strip().split("\\")], dtype=float)
    except ValueError:
        values = np.array([])
    if values.size != count or not np.all(np.isfinite(values)):
        raise InvalidImage(f"{file}: {what} {text!r} is not {count} numbers separated by '\\'")
    return values


def check_slice_positions(files: Sequence[str], folder: Path) -> None:
    """Refuse a series whose slices are not evenly spaced (a missing or duplicated slice).

    Raises
    ------
    InvalidImage
        Naming the folder, the positions around the gap and the expected spacing.
    """
    if len(files) < 2:
        return
    orientations, positions = [], []
    for file in files:
        header = _header(file)
        keys = set(header.GetMetaDataKeys())
        if TAG_IMAGE_POSITION not in keys or TAG_IMAGE_ORIENTATION not in keys:
            raise InvalidImage(f"{file}: no ImagePositionPatient/ImageOrientationPatient; cannot place the slice "
                               "in space (is this a secondary capture rather than an MR image?)")
        orientations.append(_numbers(header.GetMetaData(TAG_IMAGE_ORIENTATION), 6, "ImageOrientationPatient", file))
        positions.append(_numbers(header.GetMetaData(TAG_IMAGE_POSITION), 3, "ImagePositionPatient", file))
    orientations_arr = np.array(orientations)
    if np.abs(orientations_arr - orientations_arr[0]).max() > 1e-3:
        raise InvalidImage(f"{folder}: the slice orientation changes within the series (localizer or "
                           "reformatted slices mixed in?); export the axial series alone")
    normal = np.cross(orientations_arr[0, :3], orientations_arr[0, 3:])
    distance = np.sort(np.array(positions) @ normal)
    gaps = np.diff(distance)
    median = float(np.median(gaps))
    if median <= 1e-6:
        raise InvalidImage(f"{folder}: several slices lie at the same position (duplicated files, or several "
                           "acquisitions sharing a SeriesInstanceUID); keep one copy of each slice")
    bad = np.flatnonzero(np.abs(gaps - median) > SPACING_TOLERANCE * median)
    if bad.size:
        i = int(bad[0])
        missing = gaps[i] / median - 1
        what = f"about {missing:.0f} slice(s) missing" if missing >= 0.5 else "uneven slice spacing"
        raise InvalidImage(
            f"{folder}: {what} between slice positions {distance[i]:.2f} and {distance[i + 1]:.2f} mm "
            f"(gap {gaps[i]:.2f} mm, the series' spacing is {median:.2f} mm); a volume with a gap would put "
            "every later slice in the wrong place. Export the complete series again.")


def check_modality(files: Sequence[str], folder: Path, series_uid: str, expected: str) -> None:
    """Refuse a series whose Modality (0008,0060) is recorded and is not ``expected``.

    A CT scored as if it were MR gives a meaningless score (Hounsfield units are not MR
    intensities), so this is an error, not a warning. A series without the tag (it is required by
    the standard, but anonymisers sometimes strip it) is read.
    """
    header = _header(files[0])
    if TAG_MODALITY not in header.GetMetaDataKeys():
        return
    modality = header.GetMetaData(TAG_MODALITY).strip()
    if modality and modality.upper() != expected:
        raise InvalidImage(f"{folder}: series {series_uid} has Modality {modality!r} (DICOM tag 0008,0060); expected "
                           f"{expected!r}: the radiology model scores MR images (T2 fat-suppressed, contrast-enhanced "
                           "T1), and other modalities' intensities mean something else. Choose the MR series.")


def read_series(folder: Path, series_uid: str | None = None, *, modality: str | None = MR_MODALITY) -> sitk.Image:
    """Read one MR series from a folder of DICOM files.

    Parameters
    ----------
    folder : Path
        Folder holding the DICOM files (not searched recursively).
    series_uid : str, optional
        SeriesInstanceUID to read; needed when the folder holds several series.
    modality : str or None
        The Modality (0008,0060) the series must have (default ``"MR"``); None reads any (a
        labelmap exported as a DICOM series).
    """
    series = list_series(folder)
    if not series:
        n_files = sum(1 for p in folder.iterdir() if p.is_file())
        subfolders = [p.name for p in folder.iterdir() if p.is_dir()]
        hint = f"; it has subfolders ({', '.join(sorted(subfolders)[:5])}): give the folder of one series" if subfolders else ""
        raise InvalidImage(f"{folder}: no DICOM series found among its {n_files} file(s){hint}")
    if series_uid is None:
        if len(series) > 1:
            listing = "\n  ".join(f"{uid} ({len(files)} files)" for uid, files in sorted(series.items()))
            raise InvalidImage(f"{folder}: holds {len(series)} DICOM series; choose one by SeriesInstanceUID "
                               f"(--series-uid):\n  {listing}")
        series_uid = next(iter(series))
    elif series_uid not in series:
        raise InvalidImage(f"{folder}: no series with SeriesInstanceUID {series_uid!r}; found "
                           f"{', '.join(sorted(series))}")
    files = series[series_uid]
    if modality is not None:
        check_modality(files, folder, series_uid, modality)
    check_slice_positions(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        return reader.Execute()
    except RuntimeError as exc:
        raise InvalidImage(f"{folder}: series {series_uid} cannot be read as one volume ({itk_error_text(exc)})") from None


def series_files(folder: Path, series_uid: str | None) -> list[str]:
    """The files of the series :func:`read_series` reads (for fingerprints of exactly that input)."""
    series = list_series(folder)
    if series_uid is None and len(series) == 1:
        return next(iter(series.values()))
    return series.get(series_uid or "", [])


def uid_from_text(text: str) -> str:
    """A DICOM UID under the 2.25 root (UUID-derived) computed from ``text``: same text, same UID."""
    return "2.25." + str(int(hashlib.sha256(text.encode()).hexdigest()[:30], 16))


def itk_error_text(exc: BaseException) -> str:
    """The useful line of an ITK exception message (its description comes last)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _set_rescale_on_write(folder: Path) -> None:
    """Make every MR slice written in this process carry Rescale Intercept/Slope/Type.

    ITK switches on GDCM's process-wide ForceRescaleInterceptSlope the first time it reads a DICOM
    header, and from then on writes those tags; a fresh process writes none. Reading one header here
    makes the written bytes the same whatever the process did before.
    """
    probe = sitk.GetImageFromArray(np.zeros((1, 1, 1), dtype=np.int16))
    probe.SetMetaData("0008|0016", "1.2.840.10008.5.1.4.1.1.4")
    with tempfile.TemporaryDirectory(dir=folder) as scratch:
        path = str(Path(scratch) / "probe.dcm")
        sitk.WriteImage(probe, path)
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()


@contextmanager
def process_locale_kept() -> Iterator[None]:
    """Put the process's C locale back afterwards.

    ITK's GDCM writer leaves the whole process in the "C" locale, LC_CTYPE included, so Python's
    text I/O would then default to ASCII (a later ``subprocess.run(text=True)`` fails on any "µ").
    """
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def write_series(image: sitk.Image, folder: Path, *, study_uid: str, series_uid: str, frame_uid: str,
                 series_description: str, series_number: int, study_date: str, study_time: str,
                 extra_tags: Mapping[str, str] | None = None) -> list[Path]:
    """Write a 3D integer image as an MR Image Storage series, one file per slice.

    Every UID, date and time is given by the caller (ITK would otherwise take them from the clock),
    so the same inputs give the same bytes. ``study_date`` is DICOM DA (YYYYMMDD), ``study_time`` TM
    (HHMMSS). ``extra_tags`` (``"gggg|eeee" -> value``) are added to every slice.
    """
    if image.GetDimension() != 3:
        raise InvalidImage(f"{folder}: a DICOM series needs a 3D image, got {image.GetDimension()}D")
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    orientation = "\\".join(f"{v:.8f}" for v in (*direction[:, 0], *direction[:, 1]))
    thickness = f"{image.GetSpacing()[2]:.6g}"
    common = {
        "0008|0016": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
        "0008|0060": "MR",
        "0008|0008": "ORIGINAL\\PRIMARY\\M\\NONE",
        "0020|000d": study_uid,
        "0020|000e": series_uid,
        "0020|0052": frame_uid,
        "0008|0020": study_date,
        "0008|0030": study_time,
        "0020|0011": str(series_number),
        "0008|103e": series_description,
        "0020|0037": orientation,
        "0018|0050": thickness,  # SliceThickness
        "0018|0088": thickness,  # SpacingBetweenSlices (contiguous slices)
        **dict(extra_tags or {}),
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # use the UIDs above instead of fresh random ones
    _set_rescale_on_write(folder)
    paths = []
    with process_locale_kept():
        for k in range(image.GetSize()[2]):
            plane = image[:, :, k:k + 1]  # one-slice 3D, so ITK writes the real SpacingBetweenSlices (2D planes get 1)
            for tag, value in common.items():
                plane.SetMetaData(tag, value)
            position = image.TransformIndexToPhysicalPoint((0, 0, k))
            plane.SetMetaData("0020|0032", "\\".join(f"{v:.6f}" for v in position))
            plane.SetMetaData("0020|0013", str(k + 1))
            plane.SetMetaData("0008|0018", uid_from_text(f"{series_uid}/{k + 1}"))
            path = folder / f"IM{k + 1:04d}.dcm"
            writer.SetFileName(str(path))
            writer.Execute(plane)
            paths.append(path)
    return paths
