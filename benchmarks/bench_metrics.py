"""Bootstrap speed of the validation metrics: vectorised versus one scikit-survival call per resample.

The report needs 95% CIs of Harrell's C, Uno's C, cumulative/dynamic AUC at 12/36/60 months (and
its mean) and the integrated Brier score. ``sarcoma_risk.fusion.bootstrap`` evaluates all resamples
at once (bootstrap counts as case weights over pairwise matrices built once); the baseline expands
each resample into a duplicated sample and calls scikit-survival's functions, as a straightforward
implementation would. Both run here side by side on the same simulated validation set of N patients
(Cox model, uniform censoring); the baseline runs ``--baseline-resamples`` resamples and its time is
scaled to the full count. The vectorised run is repeated and its median reported.

Run: ``.venv/bin/python benchmarks/bench_metrics.py [--n 300] [--resamples 1000] [--models 4]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import emit, machine

from sarcoma_risk.fusion.bootstrap import Prediction, bootstrap_metrics, resample_counts
from sarcoma_risk.survival.outcome import Outcome

BENCH = "metrics"
HORIZONS = [12.0, 36.0, 60.0]


def simulate(n: int, n_models: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    lp = rng.normal(size=n)
    event_time = 200.0 * (-np.log(1 - rng.random(n)) * np.exp(-lp)) ** (1 / 0.85)
    censor = rng.uniform(60, 110, n)
    time_ = np.round(np.minimum(event_time, censor), 2) + 0.01
    event = event_time <= censor
    predictions = {}
    for k in range(n_models):
        risk = lp + rng.normal(scale=0.5 + 0.5 * k, size=n)
        survival = np.exp(-np.outer(np.exp(risk), (np.asarray(HORIZONS) / 200.0) ** 0.85))
        predictions[f"model{k}"] = Prediction(risk, survival)
    return time_, event, predictions


def baseline(time_, event, predictions, counts) -> float:
    """Seconds for scikit-survival on each expanded resample (the naive way)."""
    from sksurv.metrics import (concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc,
                                integrated_brier_score)

    start = time.perf_counter()
    for row in counts:
        keep = np.repeat(np.arange(time_.size), row.astype(int))
        t, e = time_[keep], event[keep]
        y = Outcome(t, e).to_structured()
        for p in predictions.values():
            r, s = p.risk[keep], p.survival[keep]
            concordance_index_censored(e, t, r)
            concordance_index_ipcw(y, y, r, tau=HORIZONS[-1])
            cumulative_dynamic_auc(y, y, r, HORIZONS)
            integrated_brier_score(y, y, s, HORIZONS)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="patients in the validation set (default 300)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--models", type=int, default=4, help="models compared on the same resamples (default 4)")
    parser.add_argument("--baseline-resamples", type=int, default=25, help="resamples timed for the baseline")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the vectorised run (median reported)")
    args = parser.parse_args()

    time_, event, predictions = simulate(args.n, args.models)
    context = {"n": args.n, "events": int(event.sum()), "resamples": args.resamples, "models": args.models,
               **machine()}
    vectorised = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        bootstrap_metrics(time_, event, predictions, HORIZONS, n_resamples=args.resamples, seed=0,
                          tau=HORIZONS[-1], reference="model0")
        vectorised.append(time.perf_counter() - start)
    one = {"model0": predictions["model0"]}
    single = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        bootstrap_metrics(time_, event, one, HORIZONS, n_resamples=args.resamples, seed=0, tau=HORIZONS[-1])
        single.append(time.perf_counter() - start)
    counts = resample_counts(args.n, args.baseline_resamples, seed=0)
    naive = baseline(time_, event, predictions, counts) * args.resamples / args.baseline_resamples
    fast = statistics.median(vectorised)
    emit(BENCH, "bootstrap_all_metrics_vectorised", round(fast, 3), "s", **context)
    emit(BENCH, "bootstrap_all_metrics_vectorised_one_model", round(statistics.median(single), 3), "s",
         **{**context, "models": 1})
    emit(BENCH, "bootstrap_all_metrics_sksurv_loop_estimated", round(naive, 1), "s",
         timed_resamples=args.baseline_resamples, **context)
    emit(BENCH, "speedup_vectorised_vs_sksurv_loop", round(naive / fast, 1), "x", **context)


if __name__ == "__main__":
    main()
