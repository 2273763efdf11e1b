"""The signed Grad-CAM: a case scored below the development average still gets a map.

The MRI here is written with SimpleITK in the test (a thigh section with a heterogeneous ellipsoid
tumour, T2 fat-suppressed and contrast-enhanced T1 on the same 2 x 2 x 5 mm grid), not by the
phantom generator.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sarcoma_risk.radiology.gradcam import empty_map_reason, grad_cam
from sarcoma_risk.radiology.infer import score_case
from sarcoma_risk.radiology.io import read_case
from sarcoma_risk.radiology.preprocess import prepare_case

from .conftest import as_deployed

SHAPE = (16, 96, 96)  # z, y, x
SPACING = (2.0, 2.0, 5.0)


def write_case(folder: Path, seed: int = 5) -> tuple[Path, Path, Path]:
    """(T2FS, T1CE, labelmap) NIfTI files of one thigh with a tumour, in scanner units."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE).astype(float)
    thigh = ((y - 48) / 40) ** 2 + ((x - 48) / 44) ** 2 <= 1
    tumour = ((z - 8) / 4.5) ** 2 + ((y - 40) / 14) ** 2 + ((x - 56) / 16) ** 2 <= 1
    necrosis = tumour & (((z - 8) / 2.5) ** 2 + ((y - 40) / 6) ** 2 + ((x - 58) / 7) ** 2 <= 1)
    t2 = np.where(thigh, 220.0, 5.0)
    t2[tumour] = 650.0 + 120.0 * rng.standard_normal(int(tumour.sum()))
    t2[necrosis] = 1100.0
    t1 = np.where(thigh, 380.0, 5.0)
    t1[tumour] = 700.0 + 90.0 * rng.standard_normal(int(tumour.sum()))
    t1[necrosis] = 250.0
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, array, dtype in (("t2fs.nii.gz", t2, np.uint16), ("t1ce.nii.gz", t1, np.uint16),
                               ("tumour-label.nii.gz", tumour, np.uint8)):
        noisy = np.abs(array + (rng.normal(0, 12, SHAPE) if dtype is np.uint16 else 0))
        image = sitk.GetImageFromArray(noisy.astype(dtype))
        image.SetSpacing(SPACING)
        image.SetOrigin((-96.0, -110.0, 40.0))
        sitk.WriteImage(image, str(folder / name))
        paths.append(folder / name)
    return tuple(paths)


@pytest.fixture(scope="module")
def handmade_case(tmp_path_factory):
    t2, t1, label = write_case(tmp_path_factory.mktemp("handmade_mri"))
    return read_case(t2, label, t1), (t2, t1, label)


def below_average(model, case, margin: float = 0.5):
    """A copy of ``model`` whose development mean lies ``margin`` above this case's score.

    The score is a log relative hazard against the development average, so raising the average
    (the network's ``offset``) is what a cohort of riskier development cases would do; the case
    then scores below the average, as every low-risk tumor does.
    """
    low = copy.deepcopy(model)
    raw = score_case(as_deployed(low), case, gradcam=False).score
    with torch.no_grad():
        low.network_.offset += raw + margin
    return low


def test_a_case_scored_below_the_average_gets_a_signed_map_that_shows_what_lowered_the_risk(trained, handmade_case):
    model, _ = trained
    case, _ = handmade_case
    low = below_average(model, case)
    prepared = prepare_case(case, low.preprocess)
    shares = grad_cam(low.network_, prepared.array).shares
    result = score_case(as_deployed(low), case)
    assert result.score == pytest.approx(-0.5, abs=1e-4)
    # What lowered the risk outweighs what raised it, and the shares add up to the score.
    assert shares.sum() == pytest.approx(result.score, abs=1e-4)
    assert -shares[shares < 0].sum() > shares[shares > 0].sum()
    # The map shows where the region lowered the risk (negative), scaled to [-1, 1] by the largest
    # absolute share, and says nothing is wrong.
    values = sitk.GetArrayFromImage(result.gradcam)
    assert values.min() == pytest.approx(-1.0, abs=0.2) and -1.0 <= values.min() and values.max() <= 1.0
    assert result.gradcam_note is None
    tumour = sitk.GetArrayViewFromImage(case.mask) > 0
    assert np.abs(values[tumour]).mean() > 5 * np.abs(values[~tumour]).mean()


def test_an_all_zero_map_comes_with_the_reason(handmade_case):
    case, _ = handmade_case
    zero = sitk.Image(case.reference.GetSize(), sitk.sitkFloat32)
    zero.CopyInformation(case.reference)
    assert "every part of the tumor region has a zero share" in empty_map_reason(np.zeros((4, 4, 4)), zero)
    # Shares that are not all zero but reach no voxel centre of the MRI's grid get their own reason.
    assert "between the MRI's voxel centres" in empty_map_reason(np.ones((4, 4, 4)), zero)
    shown = sitk.Image(zero)
    shown[10, 10, 5] = -0.3
    assert empty_map_reason(np.ones((4, 4, 4)), shown) is None


def test_score_mri_writes_the_signed_map_and_reports_the_note_field(tmp_path, capsys, trained, handmade_case):
    from sarcoma_risk.cli import main

    _, (t2, t1, label) = handmade_case
    cam = tmp_path / "cam.nrrd"
    status = main(["score-mri", "--case", "STS-0777", "--image", str(t2), "--image2", str(t1), "--mask", str(label),
                   "--weights", str(trained[1]), "--store", str(tmp_path / "cases.sqlite"), "--gradcam", str(cam),
                   "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    printed = json.loads(out)
    assert "gradcam_note" in printed and printed["gradcam_note"] is None
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(cam)))
    assert np.abs(values).max() == pytest.approx(1.0, abs=0.2) and values.min() >= -1.0 and values.max() <= 1.0
