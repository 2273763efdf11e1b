"""Fusion end to end on a phantom cohort: centre A develops, centre B validates.

The imaging scores here are NOT produced by the imaging models: they are the truth phenotypes of
truth.json plus Gaussian noise (SD 0.6), a stand-in for the radiology and pathology models so that
fusion can be checked on its own. Development scores are labelled out-of-fold, as cross-fitted
imaging scores would be. The cohort is the table-only phantom (no images): the generative model,
outcomes and truth are those of ``sarcoma-risk synth``.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.synthetic import generate_cohort

NOISE_SD = 0.6


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantom_fusion")
    cohort = generate_cohort(folder / "cohort", 400, ("A", "B"), seed=3, images=False)
    truth = cohort.load_truth()
    rng = np.random.default_rng(11)
    scores = []
    for modality, latent in (("radiology", "z_r"), ("pathology", "z_p")):
        path = folder / f"{modality}_scores.csv"
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case_id", "split", f"{modality}_score", "source"])
            for case in truth["cases"]:
                source = "out_of_fold" if case["split"] == "development" else "final_model"
                writer.writerow([case["case_id"], case["split"], f"{case[latent] + NOISE_SD * rng.standard_normal():.5f}",
                                 source])
        scores += ["--scores", str(path)]
    assert main(["train", "fusion", "--manifest", str(cohort.manifest), *scores, "--out", str(folder / "weights"),
                 "--penalizers", "0.01,0.1,1", "--folds", "3"]) == 0
    assert main(["evaluate", "--manifest", str(cohort.manifest), "--weights", str(folder / "weights"), *scores,
                 "--out", str(folder / "report"), "--bootstrap", "200"]) == 0
    return truth, json.loads((folder / "report" / "report.json").read_text(encoding="utf-8"))


def test_report_puts_the_combined_model_ahead_of_each_single_modality(phantom):
    _, report = phantom
    comparison = report["data"]["comparison"]
    assert comparison["n"] == 200  # every centre-B case has all three modalities
    models = comparison["metrics"]["models"]
    combined = models["clinical+radiology+pathology"]
    for single in ("clinical", "radiology", "pathology"):
        for metric in ("harrell_c", "uno_c", "mean_auc"):
            assert combined[metric]["estimate"] > models[single][metric]["estimate"], (single, metric)
        assert combined["integrated_brier"]["estimate"] < models[single]["integrated_brier"]["estimate"], single
        # the paired difference (single - combined) of Harrell's C is below 0 across its whole interval
        assert comparison["metrics"]["differences"][single]["harrell_c"]["high"] < 0, single


def test_report_json_gives_the_combined_to_oracle_ratio(phantom):
    truth, report = phantom
    oracle = report["data"]["oracle"]
    assert oracle["split_oracle_c_index"] == truth["oracle_c_index"]["split:validation"]
    assert oracle["from_truth_json"]["centre:B"] == truth["oracle_c_index"]["centre:B"]
    ratio = oracle["combined_to_oracle_ratio"]
    assert ratio["estimate"] == pytest.approx(oracle["combined_harrell_c"]["estimate"] / oracle["oracle_harrell_c"]["estimate"])
    # Noisy stand-in scores cannot beat the oracle beyond sampling error; fusion recovers most of it.
    assert 0.85 < ratio["estimate"] < 1.05 and ratio["low"] < 1.0
    assert ratio["low"] < ratio["estimate"] < ratio["high"]
