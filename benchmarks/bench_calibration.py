"""Calibration of a weights folder's deployed fusion model on its shipped validation cohort.

Reads ``validation-cohort.json`` (each centre B case's time, event and fused risk as ``fuse`` gives
it) and ``fusion.json`` from a weights folder, both sha256-verified through the manifest, and prints
the calibration slope, the observed/expected recurrences up to the last horizon and the calibration
intercept (log O/E), each with a percentile bootstrap 95% CI (the same code and resampling as the
evaluation report: :func:`sarcoma_risk.fusion.bootstrap.bootstrap_metrics`). Every case's expected
count uses the baseline hazard of the combined sub-model (or ``--submodel``; the shipped validation
cohort is scored by the combined sub-model only, as the test of the shipped weights checks), so
it also measures weights of earlier releases, whose manifest has no calibration figures.

Run: ``.venv/bin/python benchmarks/bench_calibration.py [--weights weights] [--resamples 1000]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import emit

from sarcoma_risk.fusion.bootstrap import Prediction, bootstrap_metrics
from sarcoma_risk.fusion.loading import load_fusion
from sarcoma_risk.release.validation_cohort import load_validation_cohort

BENCH = "calibration"
HORIZONS = [12.0, 36.0, 60.0]
FIGURES = (("calibration_slope", "1 is ideal; below 1 the risks are too spread out"),
           ("observed_expected", "observed / expected recurrences up to the last horizon"),
           ("calibration_intercept", "log(O/E); 0 is ideal"),
           ("harrell_c", "check: the manifest's deployed Harrell's C"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=Path("weights"))
    parser.add_argument("--submodel", default=None,
                        help="default: the combined sub-model (clinical+radiology[t2fs+t1ce]+pathology; "
                             "clinical+radiology+pathology in releases before the per-sequence-set models)")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cohort, _ = load_validation_cohort(args.weights)
    model, info = load_fusion(weights=args.weights)
    submodel = args.submodel or next(n for n in ("clinical+radiology[t2fs+t1ce]+pathology",
                                                  "clinical+radiology+pathology") if n in model.submodels_)
    cox = model.submodels_[submodel].cox
    tau = HORIZONS[-1]
    expected = cox.cumulative_hazard_at(np.minimum(cohort.time_months, tau)) * np.exp(cohort.risk)
    prediction = Prediction(cohort.risk, cox.survival(cohort.risk, HORIZONS), expected)
    result = bootstrap_metrics(cohort.time_months, cohort.event, {"deployed": prediction}, HORIZONS,
                               n_resamples=args.resamples, seed=args.seed, tau=tau)
    for figure, meaning in FIGURES:
        iv = result["models"]["deployed"][figure]
        emit(BENCH, figure, iv["estimate"], "ratio", low=iv["low"], high=iv["high"], ci="percentile bootstrap 95%",
             n=result["n"], events=result["events"], resamples=args.resamples, fusion_sha256=info["sha256"],
             meaning=meaning)


if __name__ == "__main__":
    main()
