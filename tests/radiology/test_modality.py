"""Input that is not MR: a CT DICOM series is refused, a CT-like NRRD/NIfTI is read with a warning.

The volumes are written here with SimpleITK, not by the phantom generator: a CT series with CT
Image Storage SOP class, Modality CT and a rescale intercept of -1024 as scanners write it; a CT
body section in Hounsfield units (air, fat, muscle, bone); a single-sequence MR in scanner units
(uint16, noisy background near 0) and the same MR z-scored (negative values, none near -1000).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage
from sarcoma_risk.radiology.dicom import process_locale_kept
from sarcoma_risk.radiology.io import HounsfieldWarning, hounsfield_signs, read_image

SHAPE = (12, 64, 64)  # z, y, x
SPACING = (0.8, 0.8, 3.0)


def body_section(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outside, body, bone) masks of a thigh-like section: an ellipse with a round bone, air around it."""
    z, y, x = np.indices(SHAPE)
    body = ((y - 32) / 24.0) ** 2 + ((x - 32) / 28.0) ** 2 <= 1.0
    bone = ((y - 32) ** 2 + (x - 34) ** 2) <= 36
    return ~body, body & ~bone, bone


def ct_hounsfield(rng: np.random.Generator) -> np.ndarray:
    """A CT body section in Hounsfield units: air -1000, fat -100 / muscle 40, cortical bone about 1200."""
    outside, soft, bone = body_section(rng)
    hu = np.where(outside, -1000.0, 0.0)
    hu[soft] = np.where(rng.random(int(soft.sum())) < 0.3, -100.0, 40.0)
    hu[bone] = 1200.0
    return (hu + rng.normal(0, 12, SHAPE)).astype(np.float32)


def mr_scanner_units(rng: np.random.Generator) -> np.ndarray:
    """A T2 fat-suppressed-like section in scanner units: background noise near 0, tissue 150-900."""
    outside, soft, bone = body_section(rng)
    signal = np.where(outside, 0.0, 300.0)
    signal[bone] = 150.0
    signal[soft] += 600.0 * (rng.random(int(soft.sum())) < 0.1)  # bright oedema-like patches
    return np.abs(signal + rng.normal(0, 15, SHAPE)).astype(np.uint16)


def write_volume(array: np.ndarray, path: Path) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    sitk.WriteImage(image, str(path))
    return path


def write_ct_series(folder: Path, hu: np.ndarray, modality: str = "CT") -> Path:
    """One file per slice, stored as CT scanners do: unsigned values with RescaleIntercept -1024."""
    folder.mkdir()
    stored = np.clip(np.round(hu + 1024.0), 0, 4095).astype(np.int16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.8.498.1"
    with process_locale_kept():  # ITK's GDCM writer would leave this pytest process in the "C" locale
        for k in range(SHAPE[0]):
            plane = sitk.GetImageFromArray(stored[k:k + 1])
            plane.SetSpacing(SPACING)
            plane.SetOrigin((0.0, 0.0, k * SPACING[2]))
            tags = {
                "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
                "0008|0018": f"{series_uid}.{k + 1}",
                "0008|0060": modality,
                "0020|000d": "1.2.826.0.1.3680043.8.498.2",
                "0020|000e": series_uid,
                "0020|0052": "1.2.826.0.1.3680043.8.498.3",
                "0020|0013": str(k + 1),
                "0020|0032": f"0\\0\\{k * SPACING[2]:.3f}",
                "0020|0037": "1\\0\\0\\0\\1\\0",
                "0018|0050": f"{SPACING[2]:g}",
                "0028|1052": "-1024",  # RescaleIntercept
                "0028|1053": "1",  # RescaleSlope
                "0028|1054": "HU",  # RescaleType
            }
            for tag, value in tags.items():
                plane.SetMetaData(tag, value)
            writer.SetFileName(str(folder / f"CT{k + 1:04d}.dcm"))
            writer.Execute(plane)
    return folder


def test_a_ct_dicom_series_is_refused_with_the_modality_found_and_the_one_expected(tmp_path):
    folder = write_ct_series(tmp_path / "ct", ct_hounsfield(np.random.default_rng(0)))
    with pytest.raises(InvalidImage, match=r"Modality 'CT' \(DICOM tag 0008,0060\); expected 'MR'") as caught:
        read_image(folder)
    assert str(folder) in str(caught.value) and "Choose the MR series" in str(caught.value)


def test_the_same_series_labelled_mr_is_read_so_the_modality_alone_decides(tmp_path):
    hu = ct_hounsfield(np.random.default_rng(0))
    # The DICOM path does not run the Hounsfield rule (its modality is recorded), so no warning here.
    image = read_image(write_ct_series(tmp_path / "mr", hu, modality="MR"))
    assert image.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])


@pytest.mark.parametrize("extension", [".nrrd", ".nii.gz", ".mha"])
def test_a_ct_like_volume_file_is_read_with_a_warning_and_a_log_line(tmp_path, caplog, extension):
    path = write_volume(ct_hounsfield(np.random.default_rng(1)), tmp_path / f"ct{extension}")
    with caplog.at_level(logging.WARNING, logger="sarcoma_risk.radiology.io"):
        with pytest.warns(HounsfieldWarning, match=r"looks like a CT in Hounsfield units .*expects an MR volume"):
            image = read_image(path)
    assert image.GetSize() == (SHAPE[2], SHAPE[1], SHAPE[0])
    assert any("Hounsfield" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("kind", ["scanner units", "z-scored"])
def test_an_mr_like_single_sequence_volume_is_read_without_a_warning(tmp_path, caplog, kind):
    mr = mr_scanner_units(np.random.default_rng(2))
    if kind == "z-scored":
        mr = ((mr - mr.mean()) / mr.std()).astype(np.float32)
    path = write_volume(mr, tmp_path / "t2fs.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_hounsfield_rule_needs_both_air_and_dense_values():
    rng = np.random.default_rng(3)
    ct = ct_hounsfield(rng)
    assert "at or below -900" in hounsfield_signs(ct)
    no_bone = np.minimum(ct, 200.0)  # air but nothing dense: e.g. a phase image's negative half alone
    assert hounsfield_signs(no_bone) is None
    no_air = np.maximum(ct, -200.0)  # a CT cropped to soft tissue: not detectable, and not claimed
    assert hounsfield_signs(no_air) is None
    assert hounsfield_signs(mr_scanner_units(rng).astype(np.float32)) is None


def test_score_mri_refuses_a_ct_series_before_touching_the_record(tmp_path, capsys, trained, high_risk_case):
    from sarcoma_risk.cli import main

    folder = write_ct_series(tmp_path / "ct", ct_hounsfield(np.random.default_rng(4)))
    store = tmp_path / "cases.sqlite"
    status = main(["score-mri", "--case", "STS-0042", "--image", str(folder), "--mask", str(high_risk_case.seg),
                   "--image2", str(high_risk_case.t1ce), "--weights", str(trained[1]), "--store", str(store)])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("error: ") and "Modality 'CT'" in err and "expected 'MR'" in err
    assert not store.exists()
