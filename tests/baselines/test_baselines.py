"""The negative-control baselines on the tiny phantom cohort: features, Cox fit and the whole comparison.

The "CNN" scores here are stand-ins (the truth phenotypes plus noise), so the comparison is checked
for what it computes, not for who wins; the benchmark (benchmarks/bench_cohort.py) runs the real models.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarcoma_risk.baselines.comparison import MODELS, ORACLE, baseline_scores, case_features, honest_comparison
from sarcoma_risk.baselines.model import BaselineCox, crossfit_risk
from sarcoma_risk.cohort import read_manifest
from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.fusion.table import DURATION, EVENT, table_from_manifest
from sarcoma_risk.survival.scores import ScoreEntry, ScoreTable

FAST = {"penalizers": (0.1, 1.0), "cv_folds": 2, "min_events": 2}


@pytest.fixture(scope="module")
def cohort(phantom_cohort_tiny):
    manifest = read_manifest(phantom_cohort_tiny.manifest)
    radiomics, colour, failures = case_features(manifest)
    return manifest, phantom_cohort_tiny.load_truth(), radiomics, colour, failures


@pytest.fixture(scope="module", params=["t2fs+t1ce", None], ids=["radiology-of-a-sequence-set", "radiology-of-an-unnamed-set"])
def stand_in_scores(cohort, request):
    """Truth phenotype + noise as the imaging scores, labelled like cross-fitted ones, keyed by fusion
    column; the radiology scores name their sequence set as train radiology writes them, or (earlier
    releases) do not."""
    _, truth, *_ = cohort
    rng = np.random.default_rng(0)
    tables = {}
    for modality, latent in (("radiology", "z_r"), ("pathology", "z_p")):
        entries = {c["case_id"]: ScoreEntry(c["split"], float(c[latent] + 0.6 * rng.standard_normal()),
                                            "out_of_fold" if c["split"] == "development" else "final_model")
                   for c in truth["cases"]}
        table = ScoreTable(modality, entries, sequences=request.param if modality == "radiology" else None)
        tables[table.column] = table
    return tables


def test_every_case_gets_finite_first_order_and_colour_features(cohort):
    manifest, _, radiomics, colour, failures = cohort
    assert failures == {}
    ids = sorted(c.case_id for c in manifest.cases)
    assert sorted(radiomics.index) == ids and sorted(colour.index) == ids
    assert {"t2fs_mean", "t2fs_skewness", "t1ce_kurtosis"} <= set(radiomics.columns)
    assert {"od_r_mean", "hematoxylin_sd", "eosin_mean"} <= set(colour.columns)
    assert np.isfinite(radiomics.to_numpy()).all() and np.isfinite(colour.to_numpy()).all()
    # tissue absorbs light: every optical density of stained tumor is positive
    assert (colour[["od_r_mean", "od_g_mean", "od_b_mean"]] > 0).all().all()


def test_the_baseline_cox_model_scores_cases_and_refuses_to_predict_unfitted(cohort):
    manifest, _, radiomics, *_ = cohort
    table = table_from_manifest(manifest, {})
    x = radiomics.loc[table.index]
    time, event = table[DURATION].to_numpy(float), table[EVENT].to_numpy(bool)
    model = BaselineCox(penalizers=(0.1, 1.0), folds=2).fit(x, time, event)
    risk = model.predict(x)
    assert risk.shape == (len(x),) and np.isfinite(risk).all() and np.ptp(risk) > 0
    assert model.summary()["penalizer"] in (0.1, 1.0)
    with pytest.raises(InvalidModel, match="fit"):
        BaselineCox().predict(x)
    with pytest.raises(InvalidInput, match="t2fs_mean"):
        model.predict(x.drop(columns=["t2fs_mean"]))


def test_development_baseline_scores_are_out_of_fold_and_the_others_come_from_the_grid_asked_for(cohort):
    manifest, _, radiomics, *_ = cohort
    table = table_from_manifest(manifest, {})
    grid = {"penalizers": (0.1, 1.0), "selection_folds": 2}
    scores = baseline_scores(radiomics, table, folds=2, **grid)
    assert set(scores) == set(table.index)
    dev, other = table[table["split"] == "development"], table[table["split"] != "development"]
    time, event = dev[DURATION].to_numpy(float), dev[EVENT].to_numpy(bool)
    oof = crossfit_risk(radiomics.loc[dev.index], time, event, folds=2, **grid)
    assert [scores[c] for c in dev.index] == pytest.approx(oof.tolist())
    final = BaselineCox((0.1, 1.0), folds=2).fit(radiomics.loc[dev.index], time, event)
    assert [scores[c] for c in other.index] == pytest.approx(final.predict(radiomics.loc[other.index]).tolist())
    # another grid, other scores: the penalizers asked for are the ones chosen from
    strong = baseline_scores(radiomics, table, folds=2, penalizers=(30.0,), selection_folds=2)
    assert [strong[c] for c in other.index] != pytest.approx([scores[c] for c in other.index])


@pytest.mark.slow
def test_the_comparison_puts_every_model_baseline_and_the_oracle_on_the_same_cases(cohort, stand_in_scores):
    manifest, truth, radiomics, colour, _ = cohort
    development = table_from_manifest(manifest, stand_in_scores, split="development")
    model = CoxFusion(**FAST).fit(development)
    result = honest_comparison(model, manifest, stand_in_scores, truth, n_resamples=50, cv_repeats=2,
                               features=(radiomics, colour))
    comparison = result["comparison"]
    assert comparison["n"] == 12  # every centre-B case has every score
    assert set(comparison["c_index"]) == {*MODELS, ORACLE}
    assert set(comparison["gap_share"]) == set(MODELS) - {"clinical"}
    assert "radiology_cnn_minus_radiomics_baseline" in comparison["differences"]
    c = {name: iv["estimate"] for name, iv in comparison["c_index"].items()}
    share = comparison["gap_share"]["combined"]["estimate"]
    assert share == pytest.approx((c["combined"] - c["clinical"]) / (c[ORACLE] - c["clinical"]))
    radiology = "radiology[t2fs+t1ce]" if "radiology_score[t2fs+t1ce]" in stand_in_scores else "radiology"
    assert result["radiology_input"] == radiology  # the CNN compared is the one the scores came from
    cv = result["penalizer_cv"]["clinical+radiology+pathology"]
    assert len(cv["chosen"]) == 2 and cv["fitted_penalizer"] in (0.1, 1.0)
    # the baselines were selected as the fusion was: its grid, its folds
    assert result["baselines"]["penalizer_grid"] == [0.1, 1.0] and result["baselines"]["selection_folds"] == 2


def test_the_comparison_needs_enough_evaluated_cases(cohort, stand_in_scores):
    manifest, truth, radiomics, colour, _ = cohort
    model = CoxFusion(**FAST).fit(table_from_manifest(manifest, stand_in_scores, split="development"))
    with pytest.raises(InvalidInput, match="have every score"):
        honest_comparison(model, manifest, stand_in_scores, truth, split="validation", n_resamples=10,
                          cv_repeats=1, features=(radiomics.iloc[:15], colour))


def test_a_reference_score_is_scored_beside_the_models_and_the_oracle_itself_closes_the_whole_gap(cohort,
                                                                                                   stand_in_scores):
    manifest, truth, radiomics, colour, _ = cohort
    model = CoxFusion(**FAST).fit(table_from_manifest(manifest, stand_in_scores, split="development"))
    lp = {c["case_id"]: c["lp"] for c in truth["cases"]}
    result = honest_comparison(model, manifest, stand_in_scores, truth, n_resamples=20, cv_repeats=1,
                               features=(radiomics, colour), references={"true_lp": lp})
    comparison = result["comparison"]
    assert comparison["c_index"]["true_lp"] == comparison["c_index"][ORACLE]
    share = comparison["gap_share"]["true_lp"]
    assert share["estimate"] == 1.0 and share["low"] == share["high"] == 1.0


def test_a_reference_score_must_cover_every_evaluated_case(cohort, stand_in_scores):
    manifest, truth, radiomics, colour, _ = cohort
    model = CoxFusion(**FAST).fit(table_from_manifest(manifest, stand_in_scores, split="development"))
    some = {c["case_id"]: c["lp"] for c in truth["cases"][:-1]}
    with pytest.raises(InvalidInput, match="'partial' lacks 1 evaluated case"):
        honest_comparison(model, manifest, stand_in_scores, truth, n_resamples=10, cv_repeats=1,
                          features=(radiomics, colour), references={"partial": some})


@pytest.mark.slow
# The command once (a sequence set's scores): the unnamed radiology input is honest_comparison's, tested above.
@pytest.mark.parametrize("stand_in_scores", ["t2fs+t1ce"], indirect=True)
def test_evaluate_with_baselines_writes_the_comparison_beside_the_report(cohort, stand_in_scores, tmp_path):
    from sarcoma_risk.cli import main
    from sarcoma_risk.survival.scores import write_score_file

    manifest, *_ = cohort
    paths = [write_score_file(tmp_path / f"{t.modality}_scores.csv", [t]) for t in stand_in_scores.values()]
    scores = [arg for path in paths for arg in ("--scores", str(path))]
    assert main(["train", "fusion", "--manifest", str(manifest.path), *scores, "--out", str(tmp_path / "w"),
                 "--penalizers", "0.1,1", "--folds", "2", "--min-events", "2"]) == 0
    assert main(["evaluate", "--manifest", str(manifest.path), "--weights", str(tmp_path / "w"), *scores,
                 "--out", str(tmp_path / "report"), "--bootstrap", "50", "--baselines", "--cv-repeats", "2",
                 "--json"]) == 0
    written = json.loads((tmp_path / "report" / "baselines.json").read_text(encoding="utf-8"))
    assert set(written["comparison"]["c_index"]) == {*MODELS, ORACLE}
    assert len(written["penalizer_cv"]["clinical+radiology+pathology"]["chosen"]) == 2
    features = (tmp_path / "report" / "baseline_features.csv").read_text(encoding="utf-8").splitlines()
    assert features[0].startswith("case_id,mri_t2fs_mean") and len(features) == 1 + len(manifest.cases)
