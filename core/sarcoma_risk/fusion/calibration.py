"""Calibration at a horizon: predicted survival against Kaplan-Meier observed survival by risk group.

Cases are split into quantile groups of predicted survival at the horizon (deciles by default,
fewer for small sets); in each group the mean predicted probability of being recurrence-free is
set against the Kaplan-Meier estimate with its 95% confidence interval (lifelines, Greenwood
with the log(-log) transform). A calibrated model's points lie on the diagonal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lifelines import KaplanMeierFitter

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.outcome import check_outcome


def default_groups(n: int) -> int:
    """Deciles from 200 cases, quintiles from 50, else tertiles (each group keeps ~10+ cases)."""
    return 10 if n >= 200 else 5 if n >= 50 else 3


def _km_at(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[float | None, float | None, float | None]:
    """KM survival and 95% CI at ``horizon``; None when follow-up ends before it."""

    if time.max() < horizon:
        return None, None, None
    kmf = KaplanMeierFitter().fit(time, event)
    s = float(kmf.survival_function_at_times(horizon).iloc[0])
    ci = kmf.confidence_interval_survival_function_
    row = ci.loc[ci.index <= horizon].iloc[-1]
    return s, float(row.iloc[0]), float(row.iloc[1])


def calibration_table(time, event, survival, horizon: float, *, n_groups: int | None = None) -> dict[str, Any]:
    """Calibration of predicted survival at ``horizon`` months.

    Parameters
    ----------
    time, event : array-like, shape (n,)
        Observed outcome.
    survival : array-like, shape (n,)
        Predicted probability of being recurrence-free at ``horizon``.
    n_groups : int, optional
        Number of quantile groups (default :func:`default_groups`).

    Returns
    -------
    dict
        ``{"horizon_months", "groups": [{"n", "events", "predicted", "observed", "observed_low",
        "observed_high"}], "overall": {"predicted", "observed"}, "mean_abs_difference"}``;
        ``observed`` is None for a group whose follow-up ends before the horizon.
    """
    y = check_outcome(time, event, name="calibration", require_events=False)
    s = np.asarray(survival, dtype=float)
    if s.shape != y.time.shape or not np.isfinite(s).all():
        raise InvalidInput(f"survival: expected {y.time.size} finite probabilities, got shape {s.shape}")
    k = n_groups or default_groups(y.time.size)
    if not 1 <= k <= y.time.size:
        raise InvalidInput(f"n_groups: {k} must be between 1 and the number of cases ({y.time.size})")
    # Rank-based groups: equal sizes even when predictions tie.
    order = np.argsort(s, kind="mergesort")
    labels = np.empty(y.time.size, dtype=int)
    labels[order] = np.arange(y.time.size) * k // y.time.size
    groups = []
    for g in range(k):
        mask = labels == g
        observed, low, high = _km_at(y.time[mask], y.event[mask], horizon)
        groups.append({"n": int(mask.sum()), "events": int(y.event[mask].sum()),
                       "predicted": float(s[mask].mean()), "observed": observed,
                       "observed_low": low, "observed_high": high})
    overall, _, _ = _km_at(y.time, y.event, horizon)
    diffs = [abs(g["predicted"] - g["observed"]) for g in groups if g["observed"] is not None]
    return {"horizon_months": float(horizon), "groups": groups,
            "overall": {"predicted": float(s.mean()), "observed": overall},
            "mean_abs_difference": float(np.mean(diffs)) if diffs else None}
