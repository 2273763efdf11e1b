"""Evaluation and the validation report on seeded synthetic tables."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.evaluation import Evaluation, evaluate
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.fusion.report import write_report
from sarcoma_risk.provenance import sha256_bytes
from sarcoma_risk.survival.concordance import harrell_c

COMBINED = "clinical+radiology+pathology"


@pytest.fixture(scope="module")
def evaluation(fitted, validation_table):
    model = fitted
    validation, true_lp = validation_table
    truth = {"oracle_c_index": {"split:validation": 0.75},
             "cases": [{"case_id": c, "lp": float(lp)} for c, lp in zip(validation.index, true_lp)]}
    return model, evaluate(model, validation, split="validation", n_resamples=100, seed=1, truth=truth)


def test_evaluation_compares_the_four_models_on_the_same_cases(evaluation, validation_table):
    model, result = evaluation
    validation, _ = validation_table
    comparison = result.comparison
    complete = validation[["radiology_score", "pathology_score"]].notna().all(axis=1)
    assert comparison.n == int(complete.sum())
    models = comparison.metrics["models"]
    assert list(models) == ["clinical", "radiology", "pathology", COMBINED]
    sub = validation.loc[complete]
    expected = harrell_c(sub["time_months"], sub["event"], model.predict(sub, submodel="clinical")["risk"])
    assert models["clinical"]["harrell_c"]["estimate"] == pytest.approx(expected)
    for name in models:
        assert set(models[name]) == {"harrell_c", "uno_c", "auc_12", "auc_36", "auc_60", "mean_auc", "integrated_brier",
                                     "calibration_slope", "observed_expected", "calibration_intercept"}
    assert result.combined == COMBINED and result.sequence_sets is None
    assert set(comparison.metrics["differences"]) == {"clinical", "radiology", "pathology"}
    assert result.deployed.n == len(validation)
    assert sum(result.deployed.submodel_counts.values()) == len(validation)


def test_oracle_ratio_uses_the_true_linear_predictor_of_the_same_cases(evaluation, validation_table):
    _, result = evaluation
    validation, true_lp = validation_table
    oracle = result.oracle
    complete = validation[["radiology_score", "pathology_score"]].notna().all(axis=1).to_numpy()
    sub = validation.loc[complete]
    expected_oracle = harrell_c(sub["time_months"], sub["event"], true_lp[complete])
    assert oracle["oracle_harrell_c"]["estimate"] == pytest.approx(expected_oracle)
    ratio = oracle["combined_to_oracle_ratio"]
    assert ratio["estimate"] == pytest.approx(oracle["combined_harrell_c"]["estimate"] / expected_oracle)
    assert ratio["low"] < ratio["estimate"] < ratio["high"]
    assert oracle["split_oracle_c_index"] == 0.75


def test_risk_groups_carry_numbers_at_risk_logrank_and_hazard_ratio(evaluation):
    _, result = evaluation
    groups = result.comparison.risk_groups[COMBINED]
    assert groups["at_risk"]["times_months"][:3] == [0.0, 12.0, 24.0]
    assert groups["at_risk"]["low"][0] + groups["at_risk"]["high"][0] == result.comparison.n
    time, event, labels = result.km_inputs[f"comparison:{COMBINED}"]
    table = KaplanMeierFitter().fit(time[labels == "high"], event[labels == "high"]).event_table
    row = table.loc[:24.0].iloc[-1]  # what add_at_risk_counts prints at 24 months
    assert groups["at_risk"]["high"][2] == int(row["at_risk"] - row["removed"])
    assert groups["cumulative_events"]["high"][2] == int(table.loc[:24.0, "observed"].sum())
    assert groups["comparison"]["logrank_p"] < 0.01
    assert groups["comparison"]["hazard_ratio"] > 1.5
    assert set(groups["curves"]) == {"low", "high"}


def test_report_is_self_contained_and_its_json_points_at_every_figure(evaluation, tmp_path):
    _, result = evaluation
    paths = write_report(result, tmp_path / "report",
                         model_info={"name": "fusion", "version": "test", "honest_out_of_fold": False})
    page = paths["html"].read_text(encoding="utf-8")
    assert not re.search(r"<(script|link|iframe)\b", page)
    assert not re.search(r"(src|href)=\"(?!data:image/png;base64,)", page)
    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    ids = [f["id"] for f in document["figures"]]
    assert {"comparison-metrics", "comparison-auc", f"comparison-km-{COMBINED}", "comparison-km-clinical",
            f"comparison-calibration-{COMBINED}", "comparison-decision-36", "nomogram", "deployed-km-deployed"} <= set(ids)
    for figure in document["figures"]:
        png = (paths["html"].parent / figure["png"]).read_bytes()
        assert png.startswith(b"\x89PNG") and sha256_bytes(png) == figure["sha256"]
        assert base64.b64encode(png).decode() in page  # the same figure is embedded in the HTML
        node = document
        for key in figure["data"].strip("/").split("/"):
            node = node[key]  # every pointer resolves to the figure's numbers
        assert node
    assert "Combined / oracle" in page and "NaN" not in paths["json"].read_text(encoding="utf-8")
    assert "Calibration slope (Cox coefficient of the risk" in page and "observed / expected recurrences up to" in page
    assert "NOT all out-of-fold" in page  # weights fitted on in-sample scores are flagged in the report


def test_the_report_json_reads_back_as_the_evaluation_it_was_written_from(evaluation, tmp_path):
    _, result = evaluation
    paths = write_report(result, tmp_path / "report")
    data = json.loads(paths["json"].read_text(encoding="utf-8"))["data"]
    back = Evaluation.from_dict(data)
    assert json.dumps(back.to_dict(), sort_keys=True) == json.dumps(data, sort_keys=True)
    assert back.comparison.n == result.comparison.n and back.deployed.submodel_counts == result.deployed.submodel_counts
    with pytest.raises(InvalidInput, match="report.json: format 'other'; expected 'sarcoma-risk-fusion-report/1'"):
        Evaluation.from_dict({**data, "format": "other"}, "report.json")


def test_horizons_beyond_follow_up_are_left_out_with_a_note(development_table, validation_table):
    table, _ = development_table
    model = CoxFusion(penalizers=(0.1,), cv_folds=2, modalities=("radiology",), horizons=(12.0, 36.0, 500.0)).fit(table)
    validation, _ = validation_table
    result = evaluate(model, validation.loc[validation["radiology_score"].notna()], n_resamples=20)
    assert result.horizons_months == (12.0, 36.0)
    assert any("500 months" in note for note in result.notes)
    assert result.comparison.metrics["models"]["radiology"]["auc_36"]["estimate"] > 0.5
    assert np.isfinite(result.deployed.metrics["models"]["deployed"]["integrated_brier"]["estimate"])


def test_cases_without_any_usable_modality_are_left_out_with_a_note(fitted, validation_table):
    validation, _ = validation_table
    table = validation.iloc[:60].copy()
    table.iloc[0, table.columns.get_loc("radiology_score")] = np.nan
    table.iloc[0, table.columns.get_loc("pathology_score")] = np.nan
    table.iloc[0, table.columns.get_loc("margin")] = None
    result = evaluate(fitted, table, n_resamples=20)
    assert result.cohort["n"] == 59
    assert any(note.startswith("1 case(s) had no modality") and table.index[0] in note for note in result.notes)
