"""CoxFusion on seeded synthetic tables (see conftest): sub-models, prediction, JSON, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.errors import InvalidClinicalData, InvalidInput, InvalidModel, InvalidOutcome
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.survival.concordance import harrell_c

from .fusion_synthetic import FAST, make_table


def test_one_submodel_per_modality_subset(fitted):
    assert sorted(fitted.submodels_) == sorted([
        "clinical", "radiology", "pathology", "clinical+radiology", "clinical+pathology", "radiology+pathology",
        "clinical+radiology+pathology"])
    assert fitted.skipped_ == {}
    combined = fitted.submodels_["clinical+radiology+pathology"]
    assert {"radiology_score", "pathology_score", "tumor_size_cm", "fnclcc_grade[3]"} <= set(combined.cox.columns)


def test_each_case_is_scored_by_the_submodel_of_its_modalities(fitted, validation_table):
    table, _ = validation_table
    table = table.copy()
    table.iloc[0, table.columns.get_loc("radiology_score")] = np.nan
    table.iloc[0, table.columns.get_loc("pathology_score")] = np.nan
    table.iloc[1, table.columns.get_loc("margin")] = None
    prediction = fitted.predict(table)
    assert prediction["submodel"].iloc[0] == "clinical"
    assert prediction["submodel"].iloc[1] == "radiology+pathology"
    expected = [
        "+".join(m for m, have in (("clinical", all(row[f] is not None for f in fitted.clinical_features)),
                                    ("radiology", np.isfinite(row["radiology_score"])),
                                    ("pathology", np.isfinite(row["pathology_score"]))) if have)
        for _, row in table.iterrows()]
    assert prediction["submodel"].tolist() == expected
    assert set(prediction["group"]) == {"low", "high"}
    assert prediction["survival_12"].between(0, 1).all()
    assert (prediction["survival_12"] >= prediction["survival_36"]).all()
    assert (prediction["survival_36"] >= prediction["survival_60"]).all()


def test_combined_model_ranks_validation_cases_better_than_each_modality(fitted, validation_table):
    table, true_lp = validation_table
    complete = table[["radiology_score", "pathology_score"]].notna().all(axis=1).to_numpy()
    sub = table.loc[complete]
    c = {name: harrell_c(sub["time_months"], sub["event"], fitted.predict(sub, submodel=name)["risk"])
         for name in ("clinical", "radiology", "pathology", "clinical+radiology+pathology")}
    oracle = harrell_c(sub["time_months"], sub["event"], true_lp[complete])
    assert c["clinical+radiology+pathology"] > max(c["clinical"], c["radiology"], c["pathology"]) + 0.03
    assert c["clinical+radiology+pathology"] <= oracle + 0.02


def test_submodel_equals_lifelines_on_the_same_design(fitted, development_table):
    from lifelines import CoxPHFitter

    table, _ = development_table
    sub = fitted.submodels_["clinical+radiology"]
    rows = table["radiology_score"].notna() & table[list(fitted.clinical_features)].notna().all(axis=1)
    records = [dict(r) for _, r in table.loc[rows, list(fitted.clinical_features)].iterrows()]
    design = fitted.encoder_.transform(records)
    mean, sd = fitted.score_scaling_["radiology"]
    design["radiology_score"] = (table.loc[rows, "radiology_score"].to_numpy() - mean) / sd
    design = design[sub.cox.columns]
    frame = design.assign(t=table.loc[rows, "time_months"].to_numpy(), e=table.loc[rows, "event"].to_numpy())
    reference = CoxPHFitter(penalizer=sub.cox.penalizer).fit(frame, "t", "e")
    np.testing.assert_allclose(sub.cox.beta, reference.params_[design.columns].to_numpy(), rtol=1e-6, atol=1e-8)
    risk = fitted.predict(table.loc[rows], submodel="clinical+radiology")["risk"].to_numpy()
    np.testing.assert_allclose(risk, reference.predict_log_partial_hazard(frame).to_numpy(), atol=1e-8)


def test_json_round_trip_predicts_identically(fitted, validation_table):
    table, _ = validation_table
    text = json.dumps(fitted.to_dict(), allow_nan=False)
    assert "pickle" not in text
    reloaded = CoxFusion.from_dict(json.loads(text))
    pd.testing.assert_frame_equal(reloaded.predict(table), fitted.predict(table))


def test_a_loaded_model_writes_back_exactly_the_json_it_was_read_from(fitted):
    text = json.dumps(fitted.to_dict(), allow_nan=False, sort_keys=True)
    reloaded = CoxFusion.from_dict(json.loads(text))
    assert json.dumps(reloaded.to_dict(), allow_nan=False, sort_keys=True) == text
    combined = reloaded.submodels_["clinical+radiology+pathology"]
    assert combined.cutoff == fitted.submodels_["clinical+radiology+pathology"].cutoff
    assert combined.cross_validation == fitted.submodels_["clinical+radiology+pathology"].cross_validation


def test_a_submodel_without_enough_events_is_skipped_and_its_cases_fall_back(development_table):
    table, _ = development_table
    table = table.copy()
    keep = np.zeros(len(table), dtype=bool)
    keep[:25] = True  # about 15 events with a pathology score: too few for min_events=20
    table.loc[~keep, "pathology_score"] = np.nan
    model = CoxFusion(**FAST, min_events=20).fit(table)
    assert "pathology" in model.skipped_ and "needs at least 20 events" in model.skipped_["pathology"]
    assert not any("pathology" in name for name in model.submodels_)
    row = table.loc[table["radiology_score"].notna()].iloc[:1].copy()
    row["pathology_score"] = 0.5
    assert model.predict(row)["submodel"].iloc[0] == "clinical+radiology"


def test_maxstat_cutoffs_respect_the_minimum_group_share(development_table):
    table, _ = development_table
    model = CoxFusion(**FAST, cutoff="maxstat", min_group_share=0.3, modalities=("radiology", "pathology")).fit(table)
    for sub in model.submodels_.values():
        assert sub.cutoff.method == "maxstat" and 0.3 <= sub.cutoff.share_high <= 0.7
    assert model.available_development_ == {"radiology": int(table["radiology_score"].notna().sum()),
                                            "pathology": int(table["pathology_score"].notna().sum())}


def test_survival_beyond_the_development_follow_up_is_not_estimable(development_table):
    table, _ = development_table
    model = CoxFusion(**FAST, horizons=(12.0, 500.0), modalities=("radiology",)).fit(table)
    prediction = model.predict(table.loc[table["radiology_score"].notna()].iloc[:3])
    assert prediction["survival_12"].notna().all() and prediction["survival_500"].isna().all()


# ---- bad input ------------------------------------------------------------------------------------

def test_no_events_is_refused(development_table):
    table, _ = development_table
    with pytest.raises(InvalidOutcome, match="development data: no events among 240 cases"):
        CoxFusion(**FAST).fit(table.assign(event=0))


def test_all_events_at_one_time_is_refused(development_table):
    table, _ = development_table
    same = table.copy()
    same.loc[same["event"] == 1, "time_months"] = 24.0
    with pytest.raises(InvalidOutcome, match=r"all \d+ events happen at the same time \(24 months\)"):
        CoxFusion(**FAST).fit(same)


def test_a_constant_covariate_is_refused_by_name(development_table):
    table, _ = development_table
    with pytest.raises(InvalidInput, match="clinical feature 'depth' is constant \\(deep\\)"):
        CoxFusion(**FAST).fit(table.assign(depth="deep"))
    with pytest.raises(InvalidInput, match="radiology_score: constant"):
        CoxFusion(**FAST).fit(table.assign(radiology_score=1.5))


def test_an_invalid_clinical_value_names_the_case_and_column(development_table):
    table, _ = development_table
    bad = table.copy()
    bad.iloc[4, bad.columns.get_loc("margin")] = "R7"
    with pytest.raises(InvalidClinicalData, match=f"case {bad.index[4]}, column 'margin': 'R7'"):
        CoxFusion(**FAST).fit(bad)


def test_a_case_with_no_modality_is_refused(fitted, validation_table):
    table, _ = validation_table
    empty = table.iloc[:2].copy()
    empty.iloc[1, empty.columns.get_loc("radiology_score")] = np.nan
    empty.iloc[1, empty.columns.get_loc("pathology_score")] = np.nan
    empty.iloc[1, empty.columns.get_loc("age_years")] = None
    with pytest.raises(InvalidInput, match=f"1 case\\(s\\) have no modality the model can use.*{empty.index[1]}"):
        fitted.predict(empty)


def test_parameters_are_checked_before_fitting(development_table):
    table, _ = development_table
    with pytest.raises(InvalidInput, match="cutoff: 'mean' is not valid"):
        CoxFusion(cutoff="mean").fit(table)
    with pytest.raises(InvalidInput, match="modalities"):
        CoxFusion(modalities=("genomics",)).fit(table)


def _edit(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value


COMBINED = "clinical+radiology+pathology"
EDITS = [
    (("format",), "something-else", "format"),
    (("submodels", COMBINED, "cox", "coefficients"), [0.1, 0.2], "coefficients: has 2 values"),
    (("submodels", COMBINED, "cox", "baseline", "cumulative_hazard"), "reverse", "baseline.cumulative_hazard"),
    (("submodels", COMBINED, "cox", "columns"), KeyError, "cox: missing field 'columns'"),
    (("submodels", COMBINED, "cutoff", "method"), "mean", "cutoff.method: 'mean' is not valid"),
    (("submodels", COMBINED, "cutoff", "value"), float("nan"), "cutoff.value: expected a finite number"),
    (("submodels", COMBINED, "modalities"), ["clinical", "radiology"], "does not match its modalities"),
    (("score_scaling", "radiology", "sd"), -1.0, "score_scaling.radiology.sd: must be > 0"),
    (("submodels", COMBINED, "development", "risk_percentiles"), [0.0, 1.0], "risk_percentiles"),
    (("submodels", COMBINED, "development", "apparent_harrell_c"), None, "development.apparent_harrell_c: expected a finite"),
    (("submodels", COMBINED, "cross_validation", "metric"), "aic", "cross_validation.metric: 'aic' is not valid"),
    (("submodels", COMBINED, "cross_validation", "scores"), [1.0], "cross_validation: expected 'grid' and 'scores'"),
    (("submodels", COMBINED, "cutoff", "share_high"), "half", "cutoff.share_high: expected a finite number"),
    (("encoder", "features"), ["age_years"], "fusion.encoder: clinical encoder"),
    (("params", "horizons"), [60, 12], "horizons"),
    (("submodels",), {}, "submodels: empty"),
]


@pytest.mark.parametrize("path, value, message", EDITS, ids=[m for _, _, m in EDITS])
def test_hand_edited_model_json_is_refused_with_the_field(fitted, path, value, message):
    data = json.loads(json.dumps(fitted.to_dict()))
    if value == "reverse":
        value = data["submodels"][COMBINED]["cox"]["baseline"]["cumulative_hazard"][::-1]
    _edit(data, path, copy.deepcopy(value))
    with pytest.raises(InvalidModel, match=message.replace("(", r"\(").replace(")", r"\)")):
        CoxFusion.from_dict(data)


def test_an_unknown_column_in_a_submodel_is_refused(fitted):
    data = json.loads(json.dumps(fitted.to_dict()))
    data["submodels"]["radiology"]["cox"]["columns"] = ["pathology_score"]
    with pytest.raises(InvalidModel, match=r"submodels.radiology.cox.columns: \['pathology_score'\] are not produced"):
        CoxFusion.from_dict(data)


def test_fitting_is_deterministic():
    table, _ = make_table(120, seed=9)
    a = CoxFusion(**FAST, modalities=("radiology", "pathology")).fit(table).to_dict()
    b = CoxFusion(**FAST, modalities=("radiology", "pathology")).fit(table).to_dict()
    a.pop("versions"), b.pop("versions")
    assert a == b
