"""The image ceiling: what a perfect reader of the phantom's images could predict, from the plans alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.synthetic import GenerativeModel, HardGenerativeModel, image_ceiling, plan_cohort, reader_ceiling
from sarcoma_risk.synthetic.ceiling import max_reader_pearson, posterior_phenotype
from sarcoma_risk.synthetic.difficulty import render_difficulty


@pytest.fixture(scope="module")
def hard_plans():
    return plan_cohort(3000, ("A", "B"), seed=21, difficulty="hard")


def _c(plans, risk) -> float:
    return harrell_c(np.array([p.sample.time_months for p in plans]), np.array([p.sample.event for p in plans]),
                     np.asarray(risk, dtype=float))


def test_the_ceiling_is_the_oracle_on_the_standard_phantom():
    plans = plan_cohort(400, ("A", "B"), seed=5)
    assert np.array_equal(image_ceiling(plans), [p.sample.lp for p in plans])


def test_a_case_without_mri_gets_the_prior_mean_of_its_mri_phenotype():
    plans = plan_cohort(200, ("A", "B"), seed=5, missing_rate=0.5)
    ceiling = image_ceiling(plans)
    no_mri = [i for i, p in enumerate(plans) if p.mri_seed is None]
    assert no_mri
    model = GenerativeModel()  # the standard model the plans were drawn from
    for i in no_mri:
        sample = plans[i].sample
        (mean_r, _), _ = model.phenotype_prior(sample.clinical)
        assert ceiling[i] == pytest.approx(sample.lp_clinical + model.b_mri * mean_r + model.b_pathology * sample.z_p)
        assert ceiling[i] != pytest.approx(sample.lp)


def test_on_the_hard_phantom_the_ceiling_lies_between_the_clinical_predictor_and_the_oracle(hard_plans):
    validation = [p for p in hard_plans if p.split == "validation"][:600]
    clinical = _c(validation, [p.sample.lp_clinical for p in validation])
    oracle = _c(validation, [p.sample.lp for p in validation])
    ceiling = _c(validation, image_ceiling(validation))
    assert clinical < ceiling < oracle, (clinical, ceiling, oracle)


def test_the_hard_ceiling_misses_the_oracle_by_the_posterior_variance_and_its_error_is_orthogonal(hard_plans):
    # E[(lp - ceiling)^2] = sum over phenotypes of b^2 * s^2 * sd^2 / (s^2 + sd^2) with one image each
    # (tiny cohorts have one slide), and a posterior mean's error is uncorrelated with what it estimates
    # from: a wrong shrinkage weight or a readout other than the renderers' would break one or the other.
    model, readout_sd = HardGenerativeModel(), render_difficulty("hard").readout_sd
    lp = np.array([p.sample.lp for p in hard_plans])
    lp_clinical = np.array([p.sample.lp_clinical for p in hard_plans])
    error = lp - image_ceiling(hard_plans)
    expected = sum(b * b * (1 - r * r) * readout_sd ** 2 / (1 - r * r + readout_sd ** 2) for b, r in (
        (model.b_mri, model.necrosis_correlation), (model.b_pathology, model.mitosis_correlation)))
    assert np.mean(error ** 2) == pytest.approx(expected, rel=0.08)
    assert abs(np.corrcoef(error, image_ceiling(hard_plans) - lp_clinical)[0, 1]) < 0.05


def test_the_posterior_mean_matches_the_regression_of_the_phenotype_on_what_the_images_show():
    rng = np.random.default_rng(3)
    mean, sd, readout_sd, n = 0.3, 0.8, 0.8, 200_000
    z = mean + sd * rng.standard_normal(n)
    shown = z[:, None] + readout_sd * rng.standard_normal((n, 2))  # two slides each
    slope = np.polyfit(shown.mean(axis=1), z, 1)[0]
    weight = (posterior_phenotype(mean, sd, [1.0 + mean, 1.0 + mean], readout_sd) - mean) / 1.0
    assert weight == pytest.approx(slope, abs=0.01)
    assert posterior_phenotype(mean, sd, [], readout_sd) == mean
    assert posterior_phenotype(mean, sd, [1.7], 0.0) == 1.7


def test_the_ceiling_reads_what_the_rendered_images_of_a_cohort_showed(tmp_path):
    from sarcoma_risk.synthetic import generate_cohort

    cohort = generate_cohort(tmp_path / "hard", 4, seed=3, size="tiny", difficulty="hard")
    plans = plan_cohort(4, ("A", "B"), seed=3, size="tiny", difficulty="hard")
    model, readout_sd = HardGenerativeModel(), render_difficulty("hard").readout_sd
    for plan, case, ceiling in zip(plans, cohort.load_truth()["cases"], image_ceiling(plans)):
        (mean_r, sd_r), (mean_p, sd_p) = model.phenotype_prior(plan.sample.clinical)
        z_r = posterior_phenotype(mean_r, sd_r, [case["mri"]["stats"]["phenotype_shown"]], readout_sd)
        z_p = posterior_phenotype(mean_p, sd_p, [s["stats"]["phenotype_shown"] for s in case["slides"]], readout_sd)
        assert ceiling == pytest.approx(case["lp_clinical"] + model.b_mri * z_r + model.b_pathology * z_p, abs=1e-12)


def test_an_empty_plan_list_is_refused():
    with pytest.raises(InvalidInput, match="image ceiling: no planned cases"):
        image_ceiling([])
    with pytest.raises(InvalidInput, match="reader ceiling: no planned cases"):
        reader_ceiling([], 0.5, 0.5)


def test_a_reader_as_good_as_the_images_allow_is_the_image_ceiling(hard_plans):
    highest = max_reader_pearson(render_difficulty("hard"))
    assert highest == pytest.approx(1 / np.sqrt(1 + 0.3 ** 2))
    read = reader_ceiling(hard_plans, highest, highest)
    assert np.allclose(read.predictor, image_ceiling(hard_plans), rtol=0, atol=1e-6)
    assert max_reader_pearson(render_difficulty("standard")) == 1.0


def test_each_read_follows_its_phenotype_with_the_pearson_r_asked_for(hard_plans):
    z_r = np.array([p.sample.z_r for p in hard_plans])
    z_p = np.array([p.sample.z_p for p in hard_plans])
    for mri, pathology in ((0.3, 0.7), (0.8, 0.45)):
        read = reader_ceiling(hard_plans, mri, pathology)
        assert np.corrcoef(read.mri_read, z_r)[0, 1] == pytest.approx(mri, abs=0.03)
        assert np.corrcoef(read.pathology_read, z_p)[0, 1] == pytest.approx(pathology, abs=0.03)


def test_a_reader_that_reads_nothing_leaves_the_prior_mean_and_better_readers_predict_better(hard_plans):
    model = HardGenerativeModel()
    blind = reader_ceiling(hard_plans, 0.0, 0.0)
    for plan, predicted in zip(hard_plans[:50], blind.predictor):
        (mean_r, _), (mean_p, _) = model.for_centre(plan.centre).phenotype_prior(plan.sample.clinical)
        b_r, b_p = model.for_centre(plan.centre).b_mri, model.for_centre(plan.centre).b_pathology
        assert predicted == pytest.approx(plan.sample.lp_clinical + b_r * mean_r + b_p * mean_p, abs=1e-12)
    assert abs(np.corrcoef(blind.pathology_read, [p.sample.z_p for p in hard_plans])[0, 1]) < 0.05
    c = [_c(hard_plans, reader_ceiling(hard_plans, r, r).predictor) for r in (0.0, 0.5, 0.9)]
    assert c[0] < c[1] < c[2] < _c(hard_plans, [p.sample.lp for p in hard_plans]), c


def test_reads_repeat_by_plan_whatever_the_order_or_subset_of_the_plans(hard_plans):
    whole = reader_ceiling(hard_plans, 0.6, 0.4)
    part = reader_ceiling(hard_plans[100:140][::-1], 0.6, 0.4)
    assert np.array_equal(part.predictor, whole.predictor[100:140][::-1])
    assert np.array_equal(part.pathology_read, whole.pathology_read[100:140][::-1])


def test_a_case_without_mri_has_no_mri_read_and_the_prior_mean_of_its_mri_phenotype():
    plans = plan_cohort(200, ("A", "B"), seed=5, missing_rate=0.5, difficulty="hard")
    read = reader_ceiling(plans, 0.7, 0.7)
    no_mri = np.array([p.mri_seed is None for p in plans])
    assert no_mri.any() and np.isnan(read.mri_read[no_mri]).all() and np.isfinite(read.mri_read[~no_mri]).all()
    model = HardGenerativeModel()
    for i in np.flatnonzero(no_mri)[:10]:
        plan = plans[i]
        case_model = model.for_centre(plan.centre)
        (mean_r, _), (mean_p, sd_p) = case_model.phenotype_prior(plan.sample.clinical)
        z_p = posterior_phenotype(mean_p, sd_p, [read.pathology_read[i]], np.sqrt(1 / 0.7 ** 2 - 1))
        expected = plan.sample.lp_clinical + case_model.b_mri * mean_r + case_model.b_pathology * z_p
        assert read.predictor[i] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("mri, pathology, named", [(0.96, 0.5, "mri reader Pearson r 0.96"),
                                                   (0.5, -0.1, "pathology reader Pearson r -0.1")])
def test_a_reader_better_than_the_images_or_below_zero_is_refused(hard_plans, mri, pathology, named):
    with pytest.raises(InvalidInput, match=f"{named} must lie between 0 and 0.9578"):
        reader_ceiling(hard_plans[:5], mri, pathology)


BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cohort.py"
CEILING_FIGURES = {"oracle_c_index", "image_ceiling_c_index", "true_clinical_c_index",
                   "gap_share_image_ceiling_of_true_clinical"}


def bench_ceiling(*args: str) -> dict[str, dict]:
    run = subprocess.run([sys.executable, str(BENCH), "--ceiling-only", "--bootstrap", "50", *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]  # nothing but JSON lines on stdout
    return {line["figure"]: line for line in lines}


def test_bench_cohort_ceiling_only_prints_the_oracle_the_ceiling_and_the_true_clinical_c_of_the_planned_cohort():
    lines = bench_ceiling("--difficulty", "hard", "--cases", "300", "--seed", "4")
    assert set(lines) == CEILING_FIGURES
    plans = [p for p in plan_cohort(300, ("A", "B"), seed=4, difficulty="hard") if p.split == "validation"]
    expected = {"oracle_c_index": _c(plans, [p.sample.lp for p in plans]),
                "image_ceiling_c_index": _c(plans, image_ceiling(plans)),
                "true_clinical_c_index": _c(plans, [p.sample.lp_clinical for p in plans])}
    for figure, value in expected.items():
        line = lines[figure]
        assert line["value"] == round(value, 4) and line["ci_low"] <= line["value"] <= line["ci_high"], figure
        assert line["n"] == len(plans) and line["difficulty"] == "hard" and line["bootstrap"] == 50, figure
    share = (expected["image_ceiling_c_index"] - expected["true_clinical_c_index"]) / (
        expected["oracle_c_index"] - expected["true_clinical_c_index"])
    assert lines["gap_share_image_ceiling_of_true_clinical"]["value"] == round(share, 4)


def test_bench_cohort_ceiling_only_prints_the_reader_ceiling_of_readers_of_a_given_quality():
    lines = bench_ceiling("--difficulty", "hard", "--cases", "300", "--seed", "4", "--reader-pearson", "0.6", "0.3")
    assert set(lines) == CEILING_FIGURES | {"reader_ceiling_c_index", "reader_c_index_mri", "reader_c_index_pathology",
                                            "gap_share_reader_ceiling_of_true_clinical"}
    plans = [p for p in plan_cohort(300, ("A", "B"), seed=4, difficulty="hard") if p.split == "validation"]
    read = reader_ceiling(plans, 0.6, 0.3)
    expected = {"reader_ceiling_c_index": _c(plans, read.predictor), "reader_c_index_mri": _c(plans, read.mri_read),
                "reader_c_index_pathology": _c(plans, read.pathology_read)}
    for figure, value in expected.items():
        line = lines[figure]
        assert line["value"] == round(value, 4) and line["ci_low"] <= line["value"] <= line["ci_high"], figure
        assert line["reader_pearson_mri"] == 0.6 and line["reader_pearson_pathology"] == 0.3, figure
    oracle, clinical = lines["oracle_c_index"]["value"], lines["true_clinical_c_index"]["value"]
    share = lines["gap_share_reader_ceiling_of_true_clinical"]
    assert share["value"] == pytest.approx((expected["reader_ceiling_c_index"] - clinical) / (oracle - clinical),
                                           abs=2e-3)
    assert share["value"] < lines["gap_share_image_ceiling_of_true_clinical"]["value"]


@pytest.mark.parametrize("args, message", [
    (("--reader-pearson", "0.5", "0.5", "--cases", "40"), "--reader-pearson goes with --ceiling-only"),
    (("--ceiling-only", "--difficulty", "hard", "--cases", "40", "--reader-pearson", "0.5", "0.99"),
     "pathology reader Pearson r 0.99 must lie between 0 and 0.9578"),
])
def test_bench_cohort_refuses_a_reader_it_cannot_place(tmp_path, args, message):
    run = subprocess.run([sys.executable, str(BENCH), "--work", str(tmp_path / "w"), *args], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == "" and not (tmp_path / "w").exists()
    assert message in run.stderr


def test_bench_cohort_ceiling_only_closes_the_whole_gap_on_the_standard_phantom():
    lines = bench_ceiling("--cases", "200")
    assert lines["image_ceiling_c_index"]["value"] == lines["oracle_c_index"]["value"]
    assert lines["gap_share_image_ceiling_of_true_clinical"]["value"] == 1.0


def test_bench_cohort_refuses_a_device_before_it_plans_or_renders_anything(tmp_path):
    run = subprocess.run([sys.executable, str(BENCH), "--device", "gpu", "--cases", "40",
                          "--work", str(tmp_path / "w")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == "" and not (tmp_path / "w").exists()
    assert "device: 'gpu' is not valid; expected one of auto, cpu, cuda, mps" in run.stderr
