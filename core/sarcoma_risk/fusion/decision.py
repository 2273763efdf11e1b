"""Decision curve analysis at a horizon (Vickers et al. 2008, survival version).

For a threshold probability ``pt``, the cases whose predicted risk of recurrence by the horizon
(``1 - S(h)``) is at least ``pt`` are "treated". With censored data the true and false positives
come from the Kaplan-Meier risk among the treated::

    TP / n = (1 - S_KM,treated(h)) * n_treated / n
    FP / n = S_KM,treated(h) * n_treated / n
    net benefit = TP / n - FP / n * pt / (1 - pt)

References: treat all (every case treated) and treat none (net benefit 0). The Kaplan-Meier
estimates of all thresholds are computed at once (one weighted Kaplan-Meier per threshold mask).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.metrics import kaplan_meier_weighted, step_at
from sarcoma_risk.survival.outcome import check_outcome

DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.01, 1.0, 0.01), 2))


def net_benefit(time, event, risk_at_horizon, horizon: float,
                thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Net benefit of treating cases with predicted risk >= each threshold; shape (len(thresholds),).

    ``risk_at_horizon`` is the predicted probability of recurrence by ``horizon`` (1 - survival).
    """
    y = check_outcome(time, event, name="decision curve", require_events=False)
    r = np.asarray(risk_at_horizon, dtype=float)
    if r.shape != y.time.shape or not np.isfinite(r).all():
        raise InvalidInput(f"risk_at_horizon: expected {y.time.size} finite probabilities, got shape {r.shape}")
    pt = np.asarray(thresholds, dtype=float)
    if pt.ndim != 1 or ((pt <= 0) | (pt >= 1)).any():
        raise InvalidInput("thresholds: probabilities strictly between 0 and 1")
    treated = (r[None, :] >= pt[:, None]).astype(float)
    share = treated.mean(axis=1)
    times, km = kaplan_meier_weighted(y.time, y.event, treated)
    s_treated = step_at(times, km, np.array([horizon]))[:, 0]
    nb = (1.0 - s_treated) * share - s_treated * share * pt / (1.0 - pt)
    return np.where(share > 0, nb, 0.0)


def decision_curve(time, event, risks_at_horizon: Mapping[str, Any], horizon: float,
                   thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> dict[str, Any]:
    """Net benefit curves of several models plus the treat-all and treat-none references.

    Returns ``{"horizon_months", "thresholds", "models": {name: [...]}, "treat_all": [...],
    "treat_none": [...]}``.
    """
    y = check_outcome(time, event, name="decision curve", require_events=False)
    pt = np.asarray(thresholds, dtype=float)
    curves = {name: net_benefit(y.time, y.event, r, horizon, pt).tolist() for name, r in risks_at_horizon.items()}
    times, km = kaplan_meier_weighted(y.time, y.event, np.ones((1, y.time.size)))
    s_all = step_at(times, km, np.array([horizon]))[0, 0]
    treat_all = (1.0 - s_all) - s_all * pt / (1.0 - pt)
    return {"horizon_months": float(horizon), "thresholds": pt.tolist(), "models": curves,
            "treat_all": treat_all.tolist(), "treat_none": [0.0] * pt.size}
