"""Preprocessing: the patch holds the whole tumor, survives scanner scaling, and its config round-trips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk

from sarcoma_risk.errors import InvalidImage, InvalidInput
from sarcoma_risk.radiology.config import ModelConfig, PreprocessConfig, TrainConfig, preset
from sarcoma_risk.radiology.geometry import foreground_points, physical_to_index
from sarcoma_risk.radiology.io import MRICase, read_case
from sarcoma_risk.radiology.preprocess import inside_image, prepare_case

TINY = preset("tiny")[0]


@pytest.fixture(scope="module")
def case(tiny_case):
    return read_case(tiny_case.t2fs, tiny_case.seg, tiny_case.t1ce)


def test_the_patch_contains_the_whole_tumor_of_an_oblique_case(case):
    prepared = prepare_case(case, TINY)
    reference = prepared.geometry.image()
    index = physical_to_index(reference, foreground_points(case.mask))
    size = prepared.geometry.size
    assert np.all(index >= -0.5) and np.all(index <= size - 0.5)
    # The whole tumor, plus a margin, is in the patch: no tumor voxel near its faces.
    margin_voxels = TINY.margin_mm / prepared.geometry.spacing
    assert index.min() >= margin_voxels - 1 and index.max() <= size - margin_voxels
    mask_channel = prepared.array[-1]
    assert mask_channel.sum() * prepared.geometry.spacing ** 3 / 1000 == pytest.approx(case.tumor_volume_ml(), rel=0.05)
    assert prepared.array.shape == (3, size, size, size) and prepared.array.dtype == np.float32


def test_a_tumor_too_large_for_the_patch_gets_a_coarser_spacing_not_a_cut(case):
    config = replace(TINY, patch_size=16, spacing_mm=1.0)
    prepared = prepare_case(case, config)
    assert prepared.geometry.spacing > config.spacing_mm
    index = physical_to_index(prepared.geometry.image(), foreground_points(case.mask))
    assert np.all(index >= -0.5) and np.all(index <= 16 - 0.5)


def test_the_input_does_not_change_with_the_scanners_scale_and_offset(case):
    scaled = {name: sitk.ShiftScale(image, shift=40.0, scale=1.7) for name, image in case.images.items()}
    original = prepare_case(case, TINY).array
    rescaled = prepare_case(MRICase(scaled, case.mask), TINY).array
    assert np.allclose(original, rescaled, atol=1e-4)


def test_voxels_outside_the_dilated_tumor_are_empty_and_inside_normalised(case):
    prepared = prepare_case(case, TINY)
    t2, mask = prepared.array[0], prepared.array[-1]
    occupied = t2 != 0
    assert occupied.mean() < 0.6 and np.all(occupied[mask >= 0.5])
    assert abs(float(t2[occupied].mean())) < 0.1 and float(t2[occupied].std()) == pytest.approx(1.0, abs=0.1)
    kept = prepare_case(case, replace(TINY, zero_outside_region=False)).array[0]
    inside = inside_image(case.reference, prepared.geometry)
    assert inside.mean() < 1  # the 8 cm deep tiny volume does not fill the patch along z
    assert (kept[inside] != 0).mean() > 0.99 and not kept[~inside].any()


def test_a_model_that_needs_t1ce_says_so_when_it_is_missing(case):
    only_t2 = MRICase({"t2fs": case.images["t2fs"]}, case.mask)
    with pytest.raises(InvalidInput, match=r"needs the sequence\(s\) t1ce.*--t1ce"):
        prepare_case(only_t2, TINY)
    assert prepare_case(only_t2, replace(TINY, sequences=("t2fs",))).array.shape[0] == 2


def test_a_constant_image_cannot_be_normalised(case):
    flat = sitk.Image(case.reference.GetSize(), sitk.sitkFloat32) + 100.0
    flat.CopyInformation(case.reference)
    with pytest.raises(InvalidImage, match="t2fs: no intensity variation inside the tumor region"):
        prepare_case(MRICase({"t2fs": flat, "t1ce": case.images["t1ce"]}, case.mask), TINY)


@pytest.mark.parametrize("config", [PreprocessConfig(), ModelConfig(), TrainConfig(), *preset("tiny")])
def test_configurations_round_trip_through_json_dicts(config):
    import json

    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config


@pytest.mark.parametrize("cls, data, message", [
    (PreprocessConfig, {"patch_size": 0}, "patch_size: 0 must be a positive integer"),
    (PreprocessConfig, {"sequences": ["t2fs", "flair"]}, "sequences: 'flair' is not valid"),
    (PreprocessConfig, {"clip_percentiles": [99, 1]}, "clip_percentiles"),
    (PreprocessConfig, {"colour": "red"}, "unknown key\\(s\\) colour"),
    (ModelConfig, {"spatial_kernel": 4}, "spatial_kernel: 4 must be odd"),
    (ModelConfig, {"widths": 16}, "widths: expected a list"),
    (TrainConfig, {"ties": "exact"}, "ties: 'exact' is not valid; expected one of breslow, efron"),
    (TrainConfig, {"batch_size": 1}, "at least 2 cases per batch"),
])
def test_bad_configuration_values_name_the_field(cls, data, message):
    with pytest.raises(InvalidInput, match=message):
        cls.from_dict(data)
