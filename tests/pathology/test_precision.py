"""Reduced-precision slide scoring on the shipped weights: checked against fp32 on a probe batch, recorded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.pathology.model import PatchRunner, probe_patches
from sarcoma_risk.pathology.pipeline import load_models
from sarcoma_risk.precision import PATCH_PROBABILITY_TOLERANCE
from sarcoma_risk.records import open_store

SHIPPED = Path(__file__).resolve().parents[2] / "weights"


@pytest.fixture(scope="module")
def shipped_slide(tmp_path_factory) -> Path:
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    return write_phantom_slide(tmp_path_factory.mktemp("shipped-slide") / "s.svs", phenotype=0.8, centre="B",
                               size="tiny", seed=77, annotate=False).slide


@pytest.fixture(scope="module")
def phantom_patches(shipped_slide) -> np.ndarray:
    """Real phantom tissue at the shipped patch model's scale (112 px at 1.0 um/px), evenly over the slide."""
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.pathology.tiling import plan_patches
    from sarcoma_risk.pathology.tissue import tissue_mask

    with open_slide(shipped_slide) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=1.0, patch_px=112)
        geometry = slide.patch_geometry(1.0, 112)
        pick = np.linspace(0, len(grid.coords) - 1, 48).astype(int)
        return np.stack([slide.read_patch(int(x), int(y), geometry) for x, y in grid.coords[pick]])


def largest_difference(model, patches, precision) -> float:
    return float(np.abs(PatchRunner(model, precision)(patches) - PatchRunner(model, "fp32")(patches)).max())


def test_bf16_on_the_shipped_patch_model_moves_probabilities_too_far_and_falls_back_to_fp32(caplog):
    models = load_models(SHIPPED, precision="bf16", device="cpu", need_signature=False)
    check = models.precision_check
    assert (check.requested, check.used, models.precision) == ("bf16", "fp32", "fp32") and check.fell_back
    assert check.max_abs_difference > PATCH_PROBABILITY_TOLERANCE  # about 0.04 on these weights
    assert "scoring in fp32 instead" in caplog.text and "pathology-patch in bf16" in caplog.text


def test_fp16_on_the_shipped_patch_model_stays_within_the_tolerance_and_is_used():
    models = load_models(SHIPPED, precision="fp16", device="cpu", need_signature=False)
    check = models.precision_check
    assert check.used == models.precision == "fp16" and not check.fell_back
    assert 0 < check.max_abs_difference <= PATCH_PROBABILITY_TOLERANCE
    assert check.probe_size == len(probe_patches(112))


def test_the_probe_batch_judges_each_precision_as_real_phantom_tissue_does(phantom_patches):
    model = load_models(SHIPPED, need_signature=False).runner.model
    probe = probe_patches(112)
    for precision in ("bf16", "fp16"):
        on_probe, on_tissue = largest_difference(model, probe, precision), largest_difference(model, phantom_patches,
                                                                                            precision)
        assert (on_probe > PATCH_PROBABILITY_TOLERANCE) == (on_tissue > PATCH_PROBABILITY_TOLERANCE), precision
        assert on_tissue / 3 < on_probe < on_tissue * 3, (precision, on_probe, on_tissue)


def test_the_probe_batch_is_fixed_and_shaped_like_patches():
    probe = probe_patches(64, n=6)
    assert probe.shape == (6, 64, 64, 3) and probe.dtype == np.uint8
    np.testing.assert_array_equal(probe, probe_patches(64, n=6))
    assert probe[0].mean() > probe[-1].mean()  # from mostly glass to dense tissue


def test_score_slide_in_bf16_records_the_precision_it_actually_used(shipped_slide, tmp_path, capsys):
    store = tmp_path / "cases.sqlite"
    status = main(["score-slide", "--case", "STS-0007", "--slide", str(shipped_slide), "--weights", str(SHIPPED),
                   "--out", str(tmp_path / "out"), "--store", str(store), "--precision", "bf16", "--device", "cpu",
                   "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert json.loads(out)["slide"]["score"] is not None
    assert "WARNING sarcoma_risk.precision: pathology-patch in bf16" in err and "scoring in fp32 instead" in err
    with open_store(store, mode="r") as cases:
        parameters = cases.get("STS-0007").pathology["provenance"]["parameters"]
    assert parameters["precision"] == "fp32" and parameters["device"] == "cpu"
