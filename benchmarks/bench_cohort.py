"""Quality end to end: a phantom cohort, every model trained on centre A, validated on centre B, vs the oracle.

Runs the ``train all`` orchestration (:func:`sarcoma_risk.release.train_all.train_all`, what
``make weights`` runs) with the shipped weights' settings on a cohort of another seed, so it
replicates the shipped weights' validation on independent phantom data. Figures, one JSON line
each, all measured in this one run on the same validation cases:

- ``validation_c_index_<model>`` and ``validation_mean_auc_<model>`` (estimate, bootstrap 95% CI)
  for the clinical-only, radiology-only, pathology-only and combined models;
- ``oracle_c_index``: Harrell's C of the true linear predictor on the same cases;
- ``combined_to_oracle_ratio`` (target >= 0.95), with its paired bootstrap CI;
- what limits the ratio: ``truth_c_index_*`` (the true coefficients with clinical data only, or
  plus one true phenotype) and ``*_score_vs_phenotype_pearson`` (how well each imaging score on the
  validation cases follows the latent phenotype it should read off the images);
- ``seconds_<step>`` and ``end_to_end_minutes``.

The cohort and caches go to a temporary folder (``--work DIR`` keeps them). Takes about a quarter of
an hour on 2 cores. Run: ``.venv/bin/python benchmarks/bench_cohort.py [--cases N] [--seed S]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import emit, machine

BENCH = "cohort"
#: Not the seed of the shipped weights (2026) nor of the demo case.
BENCH_SEED = 7
TARGET_RATIO = 0.95
NAMES = {"clinical": "clinical", "radiology": "radiology", "pathology": "pathology",
         "clinical+radiology+pathology": "combined"}


def _interval(iv: dict) -> dict:
    return {"ci_low": round(iv["low"], 4), "ci_high": round(iv["high"], 4)}


def _phenotype_correlation(stage: Path, truth: dict, modality: str, latent: str) -> float:
    """Pearson r between an imaging score of the validation cases and the latent phenotype it should read."""
    z = {c["case_id"]: c[latent] for c in truth["cases"] if c["split"] == "validation"}
    with open(stage / f"{modality}_scores.csv", newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "validation" and r["case_id"] in z]
    scores = np.array([float(r[f"{modality}_score"]) for r in rows])
    return float(np.corrcoef(scores, [z[r["case_id"]] for r in rows])[0, 1])


def main() -> None:
    from sarcoma_risk.release.config import TrainAllConfig
    from sarcoma_risk.release.train_all import train_all

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=TrainAllConfig.cases, help="phantom cases (default: as make weights)")
    parser.add_argument("--seed", type=int, default=BENCH_SEED, help=f"cohort seed (default {BENCH_SEED})")
    parser.add_argument("--work", type=Path, default=None, help="keep the cohort, caches and report in this folder")
    args = parser.parse_args()

    config = TrainAllConfig(cases=args.cases, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_cohort_") as tmp:
        work = args.work or Path(tmp) / "work"
        result = train_all(Path(tmp) / "weights", work, config, stream=sys.stderr)
        truth = json.loads((work / "cohort" / "truth.json").read_text(encoding="utf-8"))
        correlations = {
            "radiology_score_vs_mri_phenotype_pearson": _phenotype_correlation(work / "stage", truth, "radiology", "z_r"),
            "pathology_score_vs_pathology_phenotype_pearson": _phenotype_correlation(work / "stage", truth, "pathology",
                                                                                     "z_p")}
    figures = result.figures
    comparison = figures.comparison
    context = {"split": "validation (centre B)", "n": comparison.n, "events": comparison.events,
               "cases": config.cases, "seed": config.seed, "size": config.size,
               "bootstrap": comparison.metrics["n_resamples"], **machine()}
    for name, short in NAMES.items():
        metrics = comparison.metrics["models"][name]
        emit(BENCH, f"validation_c_index_{short}", round(metrics["harrell_c"]["estimate"], 4), "Harrell's C",
             **_interval(metrics["harrell_c"]), **context)
        emit(BENCH, f"validation_mean_auc_{short}", round(metrics["mean_auc"]["estimate"], 4), "AUC",
             **_interval(metrics["mean_auc"]), horizons_months=list(figures.horizons_months), **context)
    oracle = figures.oracle
    emit(BENCH, "oracle_c_index", round(oracle["oracle_harrell_c"]["estimate"], 4), "Harrell's C",
         **_interval(oracle["oracle_harrell_c"]), **context)
    ratio = oracle["combined_to_oracle_ratio"]
    emit(BENCH, "combined_to_oracle_ratio", round(ratio["estimate"], 4), "ratio", **_interval(ratio),
         target=f">= {TARGET_RATIO}", met=bool(ratio["estimate"] >= TARGET_RATIO), **context)
    groups = truth["c_index"]["groups"]["split:validation"]
    for key in ("clinical_only", "clinical+mri_phenotype", "clinical+pathology_phenotype"):
        emit(BENCH, f"truth_c_index_{key.replace('+', '_plus_')}", round(groups[key], 4), "Harrell's C",
             note="true coefficients; what each part of the truth alone reaches on these cases", **context)
    for figure, value in correlations.items():
        emit(BENCH, figure, round(value, 4), "r", note="validation cases; 1 = the score reads the phenotype exactly",
             **context)
    for step, seconds in result.seconds.items():
        if step != "total":
            emit(BENCH, f"seconds_{step}", seconds, "s", **context)
    emit(BENCH, "end_to_end_minutes", round(result.seconds["total"] / 60.0, 1), "min", **context)


if __name__ == "__main__":
    main()
