"""Inference: deterministic scores, Grad-CAM in the input's geometry and on the tumor, volume files."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.radiology.gradcam import grad_cam
from sarcoma_risk.radiology.io import read_case
from sarcoma_risk.radiology.preprocess import prepare_case
from sarcoma_risk.radiology.infer import score_case, write_volume


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
    assert np.all(np.isfinite(values)) and values.min() >= 0 and values.max() == pytest.approx(1.0, abs=0.05)


def test_gradcam_mass_lies_mostly_in_the_dilated_tumor(high_risk):
    case, result = high_risk
    assert result.percentile > 50  # the highest-scored held-out case: its map shows what raised it
    cam = sitk.GetArrayViewFromImage(result.gradcam)
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
    assert np.array_equal(result.cam, np.maximum(result.shares, 0))


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
