"""Repeated (seeded) cross-validation of a fusion sub-model's penalizer: how stable is the choice?

One K-fold cross-validation picks a penalizer that may change with the fold split. Repeating it with
R seeds (e.g. 5 x 5-fold) shows the spread: how often each penalizer wins, and the mean and SD of
each grid value's cross-validated score over the repeats. The same seeds give the same result.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.selection import select_penalizer
from sarcoma_risk.fusion.table import DURATION, EVENT
from sarcoma_risk.survival.outcome import check_outcome


def repeated_penalizer_cv(x, time, event, *, penalizers, repeats: int = 5, folds: int = 5, seed: int = 0,
                          metric: str = "partial_likelihood") -> dict[str, Any]:
    """Cross-validate the penalizer of a Cox model on design ``x`` ``repeats`` times (seeds seed, seed+1, ...).

    Returns
    -------
    dict
        ``chosen`` (the penalizer of each repeat), ``counts`` (wins per penalizer, "%g" keys),
        ``most_chosen``, ``median_chosen``, ``log10_chosen_sd`` (spread of the choices on the log
        scale), ``grid``, ``mean_scores`` and ``sd_scores`` per grid value (None where any repeat failed).
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InvalidInput(f"repeats: {repeats!r} must be an integer >= 1")
    y = check_outcome(time, event, name="repeated cross-validation")
    runs = [select_penalizer(x, y.time, y.event, penalizers=penalizers, folds=folds, seed=seed + r, metric=metric)
            for r in range(repeats)]
    chosen = [run.penalizer for run in runs]
    grid = runs[0].grid
    scores = np.array([[np.nan if s is None else s for s in run.scores] for run in runs], dtype=float)
    complete = np.isfinite(scores).all(axis=0)
    counts = Counter(f"{p:g}" for p in chosen)
    return {
        "repeats": repeats, "folds": runs[0].folds, "seeds": [seed + r for r in range(repeats)], "metric": runs[0].metric,
        "chosen": chosen, "counts": dict(sorted(counts.items(), key=lambda kv: float(kv[0]))),
        # Ties go to the larger penalizer, as select_penalizer does.
        "most_chosen": max(set(chosen), key=lambda p: (chosen.count(p), p)),
        "median_chosen": float(np.median(chosen)),
        "log10_chosen_sd": float(np.std(np.log10(np.maximum(chosen, 1e-12)))),
        "grid": list(grid),
        "mean_scores": [float(m) if ok else None for m, ok in zip(scores.mean(axis=0), complete)],
        "sd_scores": [float(s) if ok else None for s, ok in zip(scores.std(axis=0), complete)],
    }


def fusion_penalizer_stability(model, table, submodel: str, *, repeats: int = 5, folds: int = 5,
                               seed: int = 0) -> dict[str, Any]:
    """:func:`repeated_penalizer_cv` on the development design of one sub-model of a fitted CoxFusion.

    ``table`` holds the development cases the model was fitted on (a fusion table). The design is
    rebuilt exactly as the fit built it (same encoder, score scaling and dropped columns).
    """
    if submodel not in model.submodels_:
        raise InvalidInput(f"submodel: {submodel!r} is not fitted; fitted: {', '.join(model.submodels_)}")
    sub = model.submodels_[submodel]
    clinical, scores, available = model._availability(table)
    rows = np.flatnonzero(np.logical_and.reduce([available[m] for m in sub.modalities]))
    x = model._design(clinical, scores, rows, sub.modalities).drop(columns=list(sub.dropped_columns))
    time = table[DURATION].to_numpy(dtype=float)[rows]
    event = table[EVENT].to_numpy(dtype=float)[rows].astype(bool)
    out = repeated_penalizer_cv(x, time, event, penalizers=model.penalizers, repeats=repeats, folds=folds,
                                seed=seed, metric=model.cv_metric.value if hasattr(model.cv_metric, "value")
                                else str(model.cv_metric))
    return {"submodel": submodel, "fitted_penalizer": sub.cox.penalizer, "n": int(rows.size),
            "events": int(event.sum()), **out}
