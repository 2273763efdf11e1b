"""One fitted Cox model as plain numbers: coefficients, centring, baseline cumulative hazard.

:func:`fit_cox` fits lifelines' ``CoxPHFitter`` (Efron ties, ridge penalty) and keeps what
prediction needs, so a saved model predicts exactly what lifelines predicted, with no pickle and
no lifelines at prediction time:

* log relative hazard ``risk = (x - mean) . beta`` (lifelines' ``predict_log_partial_hazard``;
  0 is the average development patient, higher = riskier);
* survival ``S(t | x) = exp(-H0(t) * exp(risk))`` with ``H0`` the Breslow baseline cumulative
  hazard at the mean covariates, a step function stored at the development event times. Beyond
  the longest development follow-up it is not estimable and is returned as NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidModel


@dataclass
class CoxParameters:
    """A Cox model's numbers. ``columns`` name the design-matrix columns ``beta`` applies to."""

    columns: list[str]
    beta: np.ndarray
    standard_errors: np.ndarray
    means: np.ndarray
    baseline_times: np.ndarray
    baseline_cumulative_hazard: np.ndarray
    max_time: float
    penalizer: float
    log_likelihood: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)

    def risk(self, x: np.ndarray) -> np.ndarray:
        """Log relative hazard of design rows ``x`` (shape (n, p)); higher means riskier."""
        x = np.asarray(x, dtype=float).reshape(-1, len(self.columns))
        return (x - self.means) @ self.beta

    def cumulative_hazard_at(self, times: Sequence[float]) -> np.ndarray:
        """Baseline cumulative hazard at ``times`` (NaN beyond the longest development follow-up)."""
        t = np.asarray(times, dtype=float)
        idx = np.searchsorted(self.baseline_times, t, side="right") - 1
        h = np.where(idx >= 0, self.baseline_cumulative_hazard[np.clip(idx, 0, None)], 0.0)
        return np.where(t > self.max_time, np.nan, h)

    def survival(self, risk: np.ndarray, times: Sequence[float]) -> np.ndarray:
        """Probability of being recurrence-free at each time, shape (n, len(times))."""
        h0 = self.cumulative_hazard_at(times)
        return np.exp(-np.outer(np.exp(np.asarray(risk, dtype=float)), h0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "coefficients": self.beta.tolist(),
            "standard_errors": self.standard_errors.tolist(),
            "covariate_means": self.means.tolist(),
            "baseline": {"times_months": self.baseline_times.tolist(),
                         "cumulative_hazard": self.baseline_cumulative_hazard.tolist()},
            "max_time_months": self.max_time,
            "penalizer": self.penalizer,
            "log_likelihood": self.log_likelihood if math.isfinite(self.log_likelihood) else None,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "CoxParameters":
        """Rebuild and check; :class:`InvalidModel` names ``where`` and the broken field."""

        def vector(value: Any, name: str, length: int | None = None) -> np.ndarray:
            try:
                arr = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                raise InvalidModel(f"{where}.{name}: expected a list of numbers") from None
            if arr.ndim != 1 or not np.isfinite(arr).all():
                raise InvalidModel(f"{where}.{name}: expected a list of finite numbers")
            if length is not None and arr.size != length:
                raise InvalidModel(f"{where}.{name}: has {arr.size} values but there are {length} columns")
            return arr

        try:
            columns = data["columns"]
            if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or not columns:
                raise InvalidModel(f"{where}.columns: expected a non-empty list of column names")
            if len(set(columns)) != len(columns):
                raise InvalidModel(f"{where}.columns: duplicated column names")
            p = len(columns)
            beta = vector(data["coefficients"], "coefficients", p)
            se = vector(data["standard_errors"], "standard_errors", p)
            means = vector(data["covariate_means"], "covariate_means", p)
            baseline = data["baseline"]
            times = vector(baseline["times_months"], "baseline.times_months")
            cumhaz = vector(baseline["cumulative_hazard"], "baseline.cumulative_hazard")
            max_time = float(data["max_time_months"])
            penalizer = float(data["penalizer"])
            ll = data.get("log_likelihood")
        except InvalidModel:
            raise
        except KeyError as exc:
            raise InvalidModel(f"{where}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise InvalidModel(f"{where}: malformed ({exc})") from None
        if times.size == 0 or times.size != cumhaz.size:
            raise InvalidModel(f"{where}.baseline: times_months and cumulative_hazard must be non-empty and "
                               f"of equal length (got {times.size} and {cumhaz.size})")
        if (np.diff(times) <= 0).any() or times[0] <= 0:
            raise InvalidModel(f"{where}.baseline.times_months: must be positive and strictly increasing")
        if (cumhaz < 0).any() or (np.diff(cumhaz) < 0).any():
            raise InvalidModel(f"{where}.baseline.cumulative_hazard: must be >= 0 and non-decreasing")
        if (se < 0).any():
            raise InvalidModel(f"{where}.standard_errors: must be >= 0")
        if not (math.isfinite(max_time) and max_time >= times[-1]):
            raise InvalidModel(f"{where}.max_time_months: must be finite and >= the last baseline time "
                               f"({times[-1]:g})")
        if not (math.isfinite(penalizer) and penalizer >= 0):
            raise InvalidModel(f"{where}.penalizer: must be a finite number >= 0")
        known = {"columns", "coefficients", "standard_errors", "covariate_means", "baseline", "max_time_months",
                 "penalizer", "log_likelihood"}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(list(columns), beta, se, means, times, cumhaz, max_time, penalizer,
                   float(ll) if isinstance(ll, (int, float)) else math.nan, extra)


def fit_cox(x, time: np.ndarray, event: np.ndarray, penalizer: float):
    """Fit lifelines' CoxPHFitter on design ``x`` (a DataFrame); returns ``(CoxParameters, fitter)``."""

    frame = x.copy()
    frame["__time"] = time
    frame["__event"] = event.astype(int)
    from lifelines import CoxPHFitter  # lazy: about 0.9 s at import; scoring and fusing only predict, without it

    cph = CoxPHFitter(penalizer=penalizer).fit(frame, "__time", "__event")
    h0 = cph.baseline_cumulative_hazard_.iloc[:, 0]
    jumps = np.r_[True, np.diff(h0.to_numpy()) > 0] & (h0.to_numpy() > 0)
    params = CoxParameters(
        columns=list(x.columns),
        beta=cph.params_.reindex(x.columns).to_numpy(dtype=float),
        standard_errors=cph.standard_errors_.reindex(x.columns).to_numpy(dtype=float),
        # lifelines centres covariates on their development means (predict_log_partial_hazard).
        means=x.mean(axis=0).to_numpy(dtype=float),
        baseline_times=h0.index.to_numpy(dtype=float)[jumps],
        baseline_cumulative_hazard=h0.to_numpy(dtype=float)[jumps],
        max_time=float(np.max(time)),
        penalizer=float(penalizer),
        log_likelihood=float(cph.log_likelihood_),
    )
    return params, cph
