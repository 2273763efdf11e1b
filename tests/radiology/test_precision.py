"""Reduced-precision MRI scoring on the shipped weights: checked against fp32 first, recorded, refused devices."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.device import Precision, autocast
from sarcoma_risk.precision import RADIOLOGY_SCORE_TOLERANCE, guard_precision
from sarcoma_risk.radiology.checkpoint import load_model
from sarcoma_risk.radiology.infer import check_precision_for, probe_volumes

SHIPPED = Path(__file__).resolve().parents[2] / "weights"
CASE = "STS-0042"


@pytest.fixture(scope="module")
def shipped():
    return load_model(SHIPPED, "t2fs+t1ce")[0]


@pytest.fixture(scope="module")
def shipped_inputs(shipped, phantom_set):
    """Prepared phantom cases in the shipped model's own configuration (tiny preset, both sequences)."""
    from sarcoma_risk.radiology.io import read_case
    from sarcoma_risk.radiology.preprocess import prepare_case

    cases = phantom_set.cases[::6]
    return np.stack([prepare_case(read_case(c.t2fs, c.seg, c.t1ce), shipped.preprocess).array for c in cases])


def scores(model, X, precision):
    with autocast(model.device, precision):
        return model.predict(X)


def test_bf16_on_the_shipped_radiology_model_stays_within_the_tolerance_and_is_used(shipped, caplog):
    caplog.set_level(logging.INFO, logger="sarcoma_risk.precision")
    check = check_precision_for(shipped, "bf16")
    assert (check.requested, check.used, check.model) == ("bf16", "bf16", "radiology")
    assert 0 < check.max_abs_difference <= RADIOLOGY_SCORE_TOLERANCE
    assert check.probe_size == len(probe_volumes(shipped.preprocess))
    assert "moves by at most" in caplog.text


def test_the_probe_judges_bf16_as_prepared_phantom_cases_do(shipped, shipped_inputs):
    probe = probe_volumes(shipped.preprocess)
    on_probe = np.abs(scores(shipped, probe, "bf16") - scores(shipped, probe, "fp32")).max()
    on_cases = np.abs(scores(shipped, shipped_inputs, "bf16") - scores(shipped, shipped_inputs, "fp32")).max()
    # the same verdict, and differences of the same size (both about 0.004 here)
    assert on_probe <= RADIOLOGY_SCORE_TOLERANCE and on_cases <= RADIOLOGY_SCORE_TOLERANCE
    assert on_cases / 3 < on_probe < on_cases * 3


def test_fp32_is_used_as_it_is_without_a_comparison(shipped):
    check = check_precision_for(shipped, Precision.FP32)
    assert check.used == "fp32" and check.max_abs_difference is None and not check.fell_back


def test_a_tolerance_the_reduced_precision_misses_makes_the_guard_fall_back_to_fp32(shipped, caplog):
    probe = probe_volumes(shipped.preprocess)
    check = guard_precision(lambda p: scores(shipped, probe, p), "bf16", model="radiology", quantity="score",
                            tolerance=1e-7)
    assert check.used == "fp32" and check.fell_back and check.max_abs_difference > 1e-7
    assert "scoring in fp32 instead" in caplog.text


def test_score_mri_in_bf16_records_the_precision_and_stays_close_to_fp32(tmp_path, capsys, high_risk_case):
    results = {}
    for precision in ("fp32", "bf16"):
        store = tmp_path / f"{precision}.sqlite"
        status = main(["score-mri", "--case", CASE, "--image", str(high_risk_case.t2fs), "--image2",
                       str(high_risk_case.t1ce), "--mask", str(high_risk_case.seg), "--weights", str(SHIPPED),
                       "--store", str(store), "--device", "cpu", "--precision", precision, "--json"])
        out, err = capsys.readouterr()
        assert status == 0, err
        results[precision] = json.loads(out)["radiology"]
    for precision, section in results.items():
        assert section["provenance"]["parameters"]["precision"] == precision
        assert section["provenance"]["parameters"]["device"] == "cpu"
    assert results["bf16"]["score"] == pytest.approx(results["fp32"]["score"], abs=RADIOLOGY_SCORE_TOLERANCE)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
def test_score_mri_on_a_missing_gpu_fails_before_reading_or_writing_anything(tmp_path, capsys, high_risk_case):
    store = tmp_path / "cases.sqlite"
    status = main(["score-mri", "--case", CASE, "--image", str(tmp_path / "absent.nii.gz"), "--mask",
                   str(high_risk_case.seg), "--weights", str(SHIPPED), "--store", str(store), "--device", "cuda"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("error: device 'cuda':") and "use --device cpu" in err
    assert not store.exists()


def test_score_mri_refuses_an_unknown_precision_with_a_suggestion(tmp_path, capsys, high_risk_case):
    status = main(["score-mri", "--case", CASE, "--image", str(high_risk_case.t2fs), "--mask",
                   str(high_risk_case.seg), "--weights", str(SHIPPED), "--store", str(tmp_path / "s.sqlite"),
                   "--precision", "fp61"])
    err = capsys.readouterr().err
    assert status == 1 and "precision: 'fp61' is not valid; expected one of fp32, bf16, fp16." in err
    assert not (tmp_path / "s.sqlite").exists()
