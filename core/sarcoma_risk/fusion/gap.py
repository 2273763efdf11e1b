"""How much of the clinical-to-oracle gap each model closes, with paired bootstrap intervals.

On a phantom cohort the true linear predictor gives the oracle C-index, and the clinical model is
what a tumor board has without images. For a model M::

    share(M) = (C_M - C_clinical) / (C_oracle - C_clinical)

0 means the images add nothing to the chart, 1 means the model is as good as the truth. Every
model, the clinical reference and the oracle are scored on the same bootstrap resamples (rows of
case counts, :func:`sarcoma_risk.fusion.bootstrap.resample_counts`), so the share and every
difference ``C_a - C_b`` get paired percentile intervals. A resample where the gap is not positive
(clinical at or above the oracle) leaves the share undefined there, and is counted.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.bootstrap import interval, resample_counts
from sarcoma_risk.survival.concordance import harrell_c_weighted
from sarcoma_risk.survival.outcome import check_outcome


def gap_share(c_model: np.ndarray, c_clinical: np.ndarray, c_oracle: np.ndarray) -> np.ndarray:
    """``(C_model - C_clinical) / (C_oracle - C_clinical)``; NaN where the gap is not positive."""
    gap = np.asarray(c_oracle, dtype=float) - np.asarray(c_clinical, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, (np.asarray(c_model, dtype=float) - c_clinical) / gap, np.nan)


def gap_report(time, event, scores: Mapping[str, np.ndarray], *, clinical: str, oracle: str,
               differences: Mapping[str, tuple[str, str]] = {}, n_resamples: int = 1000, seed: int = 0,
               confidence: float = 0.95) -> dict[str, Any]:
    """Harrell's C of every score, its share of the clinical-to-oracle gap, and paired differences.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Outcome of the evaluated cases.
    scores : mapping of str to array, shape (n,)
        Risk scores (higher = riskier), including the ``clinical`` reference and the ``oracle``.
    differences : mapping of str to (str, str)
        Named pairs ``(a, b)``: ``C_a - C_b`` with a paired interval (e.g. a CNN minus its baseline).
    n_resamples, seed : int
        The bootstrap resamples, shared by every score.

    Returns
    -------
    dict
        ``{"c_index": {name: interval}, "gap_share": {name: interval}, "differences": {name: interval},
        "n", "events", "n_resamples", "seed"}``; intervals as :func:`~sarcoma_risk.fusion.bootstrap.interval`.
    """
    y = check_outcome(time, event, name="gap report")
    for role, name in (("clinical", clinical), ("oracle", oracle)):
        if name not in scores:
            raise InvalidInput(f"gap report: the {role} score {name!r} is not among {sorted(scores)}")
    for label, pair in differences.items():
        unknown = [s for s in pair if s not in scores]
        if unknown:
            raise InvalidInput(f"gap report: difference {label!r} names unknown score(s) {unknown}")
    arrays = {}
    for name, values in scores.items():
        values = np.asarray(values, dtype=float)
        if values.shape != y.time.shape or not np.isfinite(values).all():
            raise InvalidInput(f"gap report: score {name!r} needs {y.time.size} finite values, got shape "
                               f"{values.shape}")
        arrays[name] = values
    counts = resample_counts(y.time.size, n_resamples, seed)
    ones = np.ones((1, y.time.size))
    point = {name: float(harrell_c_weighted(y.time, y.event, v, ones)[0]) for name, v in arrays.items()}
    boot = {name: harrell_c_weighted(y.time, y.event, v, counts) for name, v in arrays.items()}
    share_point = {name: float(gap_share(point[name], point[clinical], point[oracle]))
                   for name in arrays if name not in (clinical, oracle)}
    return {
        "c_index": {name: interval(point[name], boot[name], confidence) for name in arrays},
        "gap_share": {name: interval(share_point[name], gap_share(boot[name], boot[clinical], boot[oracle]),
                                     confidence) for name in share_point},
        "differences": {label: interval(point[a] - point[b], boot[a] - boot[b], confidence)
                        for label, (a, b) in differences.items()},
        "clinical": clinical, "oracle": oracle, "n": int(y.time.size), "events": int(y.event.sum()),
        "n_resamples": int(n_resamples), "seed": int(seed), "confidence": confidence,
    }
