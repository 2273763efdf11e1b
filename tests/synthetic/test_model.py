"""The generative model: realistic clinical data, latent phenotypes, and a Cox truth that a fit recovers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sarcoma_risk.clinical.variables import validate_clinical
from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.synthetic import GenerativeModel, generate_cohort, plan_cohort
from sarcoma_risk.synthetic.model import DEFAULT_COEFFICIENTS, FNCLCC_TRIPLES

N_LARGE = 5000


@pytest.fixture(scope="module")
def large_truth(tmp_path_factory):
    """A 5000-case table-only cohort (no images): its truth.json."""
    cohort = generate_cohort(tmp_path_factory.mktemp("large"), N_LARGE, "A,B", seed=11, images=False)
    return cohort.load_truth()


@pytest.fixture(scope="module")
def samples():
    model = GenerativeModel()
    return [model.sample_case(np.random.default_rng(s)) for s in np.random.SeedSequence(5).spawn(3000)]


def test_every_generated_record_is_valid_clinical_data(samples):
    for case in samples:
        clean, problems = validate_clinical(case.clinical)
        assert problems == []
        assert clean["fnclcc_grade"] == case.clinical["fnclcc_grade"]


def test_fnclcc_triples_give_their_grade():
    from sarcoma_risk.clinical.staging import fnclcc_grade

    for grade, triples in FNCLCC_TRIPLES.items():
        assert triples
        for differentiation, mitotic_score, necrosis in triples:
            count = {1: 5, 2: 15, 3: 25}[mitotic_score]
            assert fnclcc_grade(differentiation, count, ("none", "lt50", "ge50")[necrosis]) == grade


def test_clinical_marginals_look_like_extremity_and_trunk_sarcoma(samples):
    frame = pd.DataFrame([c.clinical for c in samples])
    grades = frame["fnclcc_grade"].value_counts(normalize=True)
    assert grades[1] == pytest.approx(0.20, abs=0.04)
    assert grades[2] == pytest.approx(0.30, abs=0.04)
    assert grades[3] == pytest.approx(0.50, abs=0.04)
    assert frame["age_years"].mean() == pytest.approx(55, abs=1.5)
    assert frame["age_years"].std() == pytest.approx(15, abs=1.5)
    assert frame["tumor_size_cm"].median() == pytest.approx(8, abs=1.0)
    assert (frame["depth"] == "deep").mean() == pytest.approx(0.70, abs=0.04)
    assert (frame["margin"] == "R0").mean() > 0.65
    assert (frame["radiotherapy"] != "none").mean() > 0.5
    assert set(frame["site"]) == {"lower_extremity", "upper_extremity", "trunk"}
    assert frame["subtype"].value_counts().index[0] == "undifferentiated_pleomorphic_sarcoma"
    assert (frame["metastasis"] == "M0").all()


def test_tumor_size_grows_with_grade(samples):
    frame = pd.DataFrame([c.clinical for c in samples])
    medians = frame.groupby("fnclcc_grade")["tumor_size_cm"].median()
    assert medians[1] < medians[2] < medians[3]
    # Larger tumors are more often deep.
    assert frame.loc[frame["depth"] == "deep", "tumor_size_cm"].median() > frame.loc[frame["depth"] == "superficial", "tumor_size_cm"].median()


def test_latent_phenotypes_are_standardized_and_mildly_correlated_with_grade(samples):
    grade = np.array([c.clinical["fnclcc_grade"] for c in samples], dtype=float)
    for z in (np.array([c.z_r for c in samples]), np.array([c.z_p for c in samples])):
        assert z.mean() == pytest.approx(0, abs=0.06)
        assert z.std() == pytest.approx(1, abs=0.05)
        assert np.corrcoef(z, grade)[0, 1] == pytest.approx(0.3, abs=0.05)
    z_r = np.array([c.z_r for c in samples])
    z_p = np.array([c.z_p for c in samples])
    # Related only through the grade: 0.3 * 0.3.
    assert np.corrcoef(z_r, z_p)[0, 1] == pytest.approx(0.09, abs=0.05)


def test_outcomes_are_positive_times_with_administrative_and_random_censoring(samples):
    model = GenerativeModel()
    time = np.array([c.time_months for c in samples])
    event = np.array([c.event for c in samples])
    assert (time > 0).all()
    assert time.max() <= model.followup_max_months
    censored_early = (~event) & (time < model.followup_min_months)
    assert 0.02 < censored_early.mean() < 0.15  # lost to follow-up before the window
    for case in samples[:200]:
        assert case.time_months == pytest.approx(max(min(case.event_time_months, case.censor_time_months), 0.01), abs=0.006)
        assert case.event == (case.event_time_months <= case.censor_time_months)


def test_five_year_recurrence_is_about_a_third(large_truth):
    from lifelines import KaplanMeierFitter

    frame = pd.DataFrame(large_truth["cases"])
    km = KaplanMeierFitter().fit(frame["time_months"], frame["event"])
    assert 0.30 <= 1 - float(km.predict(60.0)) <= 0.40


def test_linear_predictor_is_the_documented_sum():
    model = GenerativeModel()
    case = model.sample_case(np.random.default_rng(3))
    expected = sum(beta * (case.covariates[name] - model.centres.get(name, 0.0))
                   for name, beta in model.coefficients.items())
    expected += model.b_mri * case.z_r + model.b_pathology * case.z_p
    assert case.lp == pytest.approx(expected)
    assert case.lp_clinical == pytest.approx(expected - model.b_mri * case.z_r - model.b_pathology * case.z_p)


def test_cox_fit_on_the_true_covariates_recovers_the_generating_coefficients(large_truth):
    from lifelines import CoxPHFitter

    model = GenerativeModel.from_dict(large_truth["model"])
    rows = [{**case["covariates"], "mri_phenotype": case["z_r"], "pathology_phenotype": case["z_p"],
             "time": case["time_months"], "event": int(case["event"])} for case in large_truth["cases"]]
    fitter = CoxPHFitter().fit(pd.DataFrame(rows), duration_col="time", event_col="event")
    truth = {**model.coefficients, "mri_phenotype": model.b_mri, "pathology_phenotype": model.b_pathology}
    for name, beta in truth.items():
        estimate, se = fitter.params_[name], fitter.standard_errors_[name]
        assert abs(estimate - beta) < 4 * se, f"{name}: fitted {estimate:.3f} +- {se:.3f}, truth {beta}"
    # The imaging effects, which later benchmarks lean on, are tight.
    assert fitter.params_["mri_phenotype"] == pytest.approx(model.b_mri, abs=0.1)
    assert fitter.params_["pathology_phenotype"] == pytest.approx(model.b_pathology, abs=0.1)


def test_oracle_beats_clinical_and_each_single_modality(large_truth):
    groups = large_truth["c_index"]["groups"]
    for name in ("all", "centre:A", "centre:B", "split:development", "split:validation"):
        entry = groups[name]
        assert entry["oracle"] > entry["clinical+mri_phenotype"] > entry["clinical_only"]
        assert entry["oracle"] > entry["clinical+pathology_phenotype"] > entry["clinical_only"]
        assert 0.75 < entry["oracle"] < 0.88
        assert large_truth["oracle_c_index"][name] == entry["oracle"]


def test_oracle_c_index_matches_lifelines_on_the_manifest_outcomes(large_truth):
    from lifelines.utils import concordance_index

    frame = pd.DataFrame(large_truth["cases"])
    b = frame[frame["centre"] == "B"]
    expected = concordance_index(b["time_months"], -b["lp"], b["event"])
    assert large_truth["oracle_c_index"]["centre:B"] == pytest.approx(expected)


def test_a_case_depends_only_on_its_seed_centre_and_index():
    small = plan_cohort(10, "A,B", seed=4)
    large = plan_cohort(40, "A,B", seed=4)
    a_small = [p for p in small if p.centre == "A"]
    a_large = [p for p in large if p.centre == "A"][: len(a_small)]
    assert [p.sample for p in a_small] == [p.sample for p in a_large]
    # Reordering the centres changes the splits, not the cases.
    swapped = {p.case_id: p for p in plan_cohort(10, "B,A", seed=4)}
    for plan in small:
        assert swapped[plan.case_id].sample == plan.sample
        assert swapped[plan.case_id].split != plan.split
    assert [p.sample for p in plan_cohort(10, "A,B", seed=5)] != [p.sample for p in small]


def test_random_split_sends_about_the_requested_fraction_to_validation():
    plans = plan_cohort(1000, "A", seed=1, split="random", validation_fraction=0.3)
    share = np.mean([p.split == "validation" for p in plans])
    assert share == pytest.approx(0.3, abs=0.05)


def test_single_centre_by_centre_split_is_all_development():
    assert {p.split for p in plan_cohort(6, "A", seed=0)} == {"development"}


def test_missing_rate_drops_one_modality_of_about_that_fraction_of_cases():
    plans = plan_cohort(1000, "A,B", seed=2, missing_rate=0.2)
    no_mri = np.mean([p.mri_seed is None for p in plans])
    no_slides = np.mean([not p.slides for p in plans])
    assert no_mri == pytest.approx(0.1, abs=0.03)
    assert no_slides == pytest.approx(0.1, abs=0.03)
    assert not any(p.mri_seed is None and not p.slides for p in plans)
    # The dropped cases at a lower rate are dropped at a higher one too (nested, deterministic).
    higher = plan_cohort(1000, "A,B", seed=2, missing_rate=0.4)
    for low, high in zip(plans, higher):
        assert low.sample == high.sample
        if low.mri_seed is None:
            assert high.mri_seed is None


def test_model_round_trips_through_json():
    import json

    model = GenerativeModel(b_mri=0.5, coefficients={"fnclcc_grade[3]": 1.0})
    again = GenerativeModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model


@pytest.mark.parametrize("kwargs, match", [
    ({"weibull_shape": 0}, "weibull_shape"),
    ({"followup_min_months": 100, "followup_max_months": 60}, "followup"),
    ({"phenotype_grade_correlation": 1.0}, "phenotype_grade_correlation"),
    ({"coefficients": {"shoe_size": 1.0}}, "unknown covariate"),
    ({"b_mri": math.nan}, "finite"),
])
def test_invalid_model_parameters_are_refused(kwargs, match):
    with pytest.raises(InvalidModel, match=match):
        GenerativeModel(**kwargs)


def test_from_dict_refuses_another_format():
    with pytest.raises(InvalidModel, match="format"):
        GenerativeModel.from_dict({"format": "something-else"})


@pytest.mark.parametrize("kwargs, match", [
    ({"n_cases": 0}, "cases: 0 must be an integer >= 1"),
    ({"n_cases": -3}, "cases: -3"),
    ({"n_cases": 1}, "fewer than the 2 centres"),
    ({"centres": "A,a"}, "given twice"),
    ({"centres": "A,B C"}, "'B C' is not a valid centre code"),
    ({"centres": ""}, "none given"),
    ({"seed": -1}, "seed"),
    ({"size": "huge"}, "size: 'huge' is not valid; expected one of tiny, small, medium"),
    ({"split": "by_hospital"}, "split"),
    ({"missing_rate": 1.5}, "missing_rate"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
])
def test_bad_plan_arguments_get_clear_errors(kwargs, match):
    args = {"n_cases": 4, "centres": "A,B", "seed": 0, **kwargs}
    with pytest.raises(InvalidInput, match=match):
        plan_cohort(args.pop("n_cases"), args.pop("centres"), args.pop("seed"), **args)


def test_default_coefficients_are_named_like_the_clinical_encoder_columns():
    from sarcoma_risk.clinical.variables import VARIABLES

    for name in DEFAULT_COEFFICIENTS:
        variable, _, level = name.partition("[")
        assert variable in VARIABLES
        if level:
            assert level.rstrip("]") in {str(c) for c in VARIABLES[variable].categories} | {"2", "3"}
