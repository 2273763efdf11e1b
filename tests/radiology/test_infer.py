"""Inference: deterministic scores, signed Grad-CAM in the input's geometry and on the tumor, volume files."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.radiology.gradcam import grad_cam
from sarcoma_risk.radiology.io import read_case
from sarcoma_risk.radiology.preprocess import prepare_case
from sarcoma_risk.radiology.infer import score_case, write_volume

from .conftest import as_deployed


@pytest.fixture(scope="module")
def deployed(trained):
    """The registered T2FS + T1CE model (an ensemble of the trained model alone)."""
    from sarcoma_risk.radiology.checkpoint import load_model

    return load_model(trained[1], "t2fs+t1ce")[0]


@pytest.fixture(scope="module")
def high_risk(high_risk_case, deployed):
    case = read_case(high_risk_case.t2fs, high_risk_case.seg, high_risk_case.t1ce)
    return case, score_case(deployed, case)


def test_gradcam_of_an_oblique_case_has_exactly_the_inputs_geometry(high_risk):
    case, result = high_risk
    cam, reference = result.gradcam, case.reference
    assert not np.allclose(reference.GetDirection(), np.eye(3).ravel())  # the case is oblique
    assert cam.GetSize() == reference.GetSize()
    assert cam.GetOrigin() == reference.GetOrigin() and cam.GetDirection() == reference.GetDirection()
    assert cam.GetSpacing() == reference.GetSpacing()
    values = sitk.GetArrayViewFromImage(cam)
    assert np.all(np.isfinite(values)) and values.min() >= -1 and values.max() <= 1
    assert np.abs(values).max() == pytest.approx(1.0, abs=0.05) and result.gradcam_note is None


def test_gradcam_mass_lies_mostly_in_the_dilated_tumor(high_risk):
    case, result = high_risk
    assert result.percentile > 50  # the highest-scored held-out case: its map shows what raised it
    cam = np.abs(sitk.GetArrayViewFromImage(result.gradcam))  # raised or lowered, both are the tumor's doing
    distance = sitk.GetArrayViewFromImage(sitk.SignedMaurerDistanceMap(
        case.mask, insideIsPositive=False, squaredDistance=False, useImageSpacing=True))
    dilated = distance <= 10.0  # the tumor and 10 mm around it
    share = cam[dilated].sum() / cam.sum()
    # "Mostly", and far more than the region's share of the volume the map could cover.
    assert share > 0.6, share
    assert share > 5 * dilated.mean()


def test_gradcam_shares_add_up_to_the_score(high_risk_case, trained):
    model, _ = trained
    case = read_case(high_risk_case.t2fs, high_risk_case.seg, high_risk_case.t1ce)
    prepared = prepare_case(case, model.preprocess)
    result = grad_cam(model.network_, prepared.array)
    assert result.shares.sum() == pytest.approx(result.score, abs=1e-4)
    assert result.score == pytest.approx(float(model.predict(prepared.array[None])[0]), abs=1e-5)


def test_a_low_risk_case_gets_a_signed_map_that_shows_where_the_risk_was_lowered(phantom_set, trained):
    # Keeping only the positive shares left every low-risk tumor with an all-zero map (issue 14).
    model, _ = trained
    held = np.arange(phantom_set.held_out.start, phantom_set.held_out.stop)
    lowest = phantom_set.cases[held[int(np.argmin(model.predict(phantom_set.X[held])))]]
    case = read_case(lowest.t2fs, lowest.seg, lowest.t1ce)
    result = score_case(as_deployed(model), case)
    assert result.score < 0 and result.gradcam_note is None
    values = sitk.GetArrayViewFromImage(result.gradcam)
    assert values.min() < 0 and np.abs(values).max() == pytest.approx(1.0, abs=0.05)
    # The map says the same as the score: more of it lowered the risk than raised it.
    assert -values[values < 0].sum() > values[values > 0].sum()


def test_a_map_that_is_zero_everywhere_comes_with_the_reason(high_risk_case, trained):
    model, _ = trained
    import torch

    silent = copy.deepcopy(model)  # a head of zeros: every share of the score is 0
    with torch.no_grad():
        silent.network_.head.weight.zero_()
        silent.network_.offset.zero_()
    result = score_case(as_deployed(silent), read_case(high_risk_case.t2fs, high_risk_case.seg, high_risk_case.t1ce))
    assert result.score == 0 and not np.any(sitk.GetArrayViewFromImage(result.gradcam))
    assert "0 everywhere" in result.gradcam_note and "no region raised or lowered the risk" in result.gradcam_note


def test_an_ensembles_gradcam_shares_are_the_mean_of_its_members_and_sum_to_its_score(phantom_set, high_risk_case,
                                                                                       trained):
    from dataclasses import replace

    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.ensemble import RadiologyEnsemble
    from sarcoma_risk.radiology.train import RadiologyCoxModel

    model, _ = trained
    pre, net, train = preset("tiny")
    other = RadiologyCoxModel(pre, net, replace(train, epochs=2, min_epochs=1, seed=3)).fit(
        phantom_set.X[:14], phantom_set.time[:14], phantom_set.event[:14])
    ensemble = RadiologyEnsemble([model, other], np.linspace(-1, 1, 11))
    case = read_case(high_risk_case.t2fs, high_risk_case.seg, high_risk_case.t1ce)
    patch = prepare_case(case, pre).array
    shares = np.mean([grad_cam(m.network_, patch).shares for m in (model, other)], axis=0)
    result = score_case(ensemble, case)
    assert result.score == pytest.approx(float(shares.sum()), abs=1e-4)
    assert result.score == pytest.approx(float(ensemble.predict(patch[None])[0]), abs=1e-5)
    assert result.sequence_set == "t2fs+t1ce" and result.sequences == ["t2fs", "t1ce"]


def test_scores_are_deterministic_for_fixed_weights(high_risk_case, deployed):
    model = deployed
    case = read_case(high_risk_case.t2fs, high_risk_case.seg, high_risk_case.t1ce)
    first, second = score_case(model, case), score_case(model, case)
    assert first.score == second.score and first.percentile == second.percentile
    assert np.array_equal(sitk.GetArrayViewFromImage(first.gradcam), sitk.GetArrayViewFromImage(second.gradcam))
    assert score_case(model, case, gradcam=False).score == pytest.approx(first.score, abs=1e-5)


@pytest.mark.parametrize("name", ["cam.nrrd", "cam.nii.gz", "cam.nii", "cam.mha"])
def test_volumes_are_written_by_extension_with_their_sha256(tmp_path, high_risk, name):
    case, result = high_risk
    digest = write_volume(result.gradcam, tmp_path / name)
    assert digest == sha256_file(tmp_path / name)
    back = sitk.ReadImage(str(tmp_path / name))
    assert np.allclose(back.GetDirection(), case.reference.GetDirection(), atol=1e-6)
    assert np.allclose(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(result.gradcam), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_an_unknown_volume_extension_is_refused(tmp_path, high_risk):
    with pytest.raises(InvalidInput, match=r"cam.png: cannot tell the volume format; use one of \.nrrd"):
        write_volume(high_risk[1].gradcam, tmp_path / "cam.png")
    assert not list(tmp_path.iterdir())


def test_a_hot_feature_voxel_lands_over_its_patch_voxel_in_an_oblique_mri(tiny_case):
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.geometry import index_to_physical
    from sarcoma_risk.radiology.gradcam import cam_to_original

    pre, net, _ = preset("tiny")
    case = read_case(tiny_case.t2fs, tiny_case.seg, tiny_case.t1ce)
    prepared = prepare_case(case, pre)
    stride, n = net.feature_stride, pre.patch_size // net.feature_stride
    cam = np.zeros((n, n, n), np.float32)
    k, j, i = 3, 4, 5
    cam[k, j, i] = 1.0
    mapped = cam_to_original(cam, prepared.geometry, stride, case.reference)
    values = sitk.GetArrayFromImage(mapped)
    kji = np.argwhere(values > 0)
    centroid = (kji * values[values > 0][:, None]).sum(axis=0) / values.sum()
    found = index_to_physical(case.reference, centroid[None, ::-1])[0]
    expected = index_to_physical(prepared.geometry.image(), np.array([[stride * i, stride * j, stride * k]]))[0]
    assert np.linalg.norm(found - expected) < 0.5  # mm; MRI voxels are 2 x 2 x 5 mm, the CAM cell 12 mm
    assert values.max() == pytest.approx(1.0, abs=0.2)
    assert np.array_equal(sitk.GetArrayFromImage(cam_to_original(-cam, prepared.geometry, stride, case.reference)),
                          -values)  # a share that lowered the risk keeps its sign


def write_handmade_mri(folder):
    """A T2 fat-suppressed and a T1CE-like volume and a tumor label written here with SimpleITK (not the phantom
    generator): a thigh-like ellipse of muscle, a bright tumor with a dark necrotic core and an enhancing rim."""
    rng = np.random.default_rng(5)
    z, y, x = np.indices((16, 96, 96))
    body = ((y - 48) / 40.0) ** 2 + ((x - 48) / 44.0) ** 2 <= 1.0
    tumor = ((z - 8) / 3.0) ** 2 + ((y - 44) / 14.0) ** 2 + ((x - 52) / 18.0) ** 2 <= 1.0
    core = ((z - 8) / 2.0) ** 2 + ((y - 44) / 7.0) ** 2 + ((x - 52) / 9.0) ** 2 <= 1.0
    t2 = np.where(body, 250.0, 5.0) + np.where(tumor, 500.0, 0.0) - np.where(core, 350.0, 0.0)
    t1 = np.where(body, 400.0, 5.0) + np.where(tumor & ~core, 450.0, 0.0)
    paths = {}
    for name, array in {"t2.nrrd": t2, "t1ce.nrrd": t1, "tumor.nrrd": tumor}.items():
        noisy = array.astype(np.uint8) if name == "tumor.nrrd" else np.abs(array + rng.normal(0, 20, array.shape))
        image = sitk.GetImageFromArray(noisy.astype(np.uint8 if name == "tumor.nrrd" else np.uint16))
        image.SetSpacing((2.0, 2.0, 5.0))
        image.SetOrigin((-96.0, -96.0, -40.0))
        sitk.WriteImage(image, str(folder / name))
        paths[name] = folder / name
    return paths


def test_a_handmade_mri_gets_a_signed_map_on_its_tumor(tmp_path, trained):
    model, _ = trained
    paths = write_handmade_mri(tmp_path)
    case = read_case(paths["t2.nrrd"], paths["tumor.nrrd"], paths["t1ce.nrrd"])
    result = score_case(as_deployed(model), case)
    values = sitk.GetArrayViewFromImage(result.gradcam)
    assert result.gradcam_note is None and np.abs(values).max() == pytest.approx(1.0, abs=0.05)
    tumor = sitk.GetArrayViewFromImage(case.mask) > 0
    assert np.abs(values[tumor]).mean() > 5 * np.abs(values[~tumor]).mean()
