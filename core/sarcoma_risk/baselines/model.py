"""A ridge Cox model on hand-made features: fit on development cases, cross-fitted there, scored on others."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.fusion.cox import fit_cox
from sarcoma_risk.fusion.selection import DEFAULT_PENALIZERS, select_penalizer
from sarcoma_risk.survival.folds import event_strata, stratified_folds
from sarcoma_risk.survival.outcome import check_outcome


class BaselineCox:
    """Ridge Cox regression on standardized features, penalizer chosen by cross-validation.

    Parameters
    ----------
    penalizers : sequence of float
        Ridge penalizers tried (lifelines' scale).
    folds : int
        Folds of the penalizer cross-validation.
    seed : int
        Seed of those folds.
    """

    def __init__(self, penalizers: Sequence[float] = DEFAULT_PENALIZERS, folds: int = 5, seed: int = 0) -> None:
        self.penalizers = tuple(penalizers)
        self.folds = folds
        self.seed = seed

    def fit(self, x, time, event) -> "BaselineCox":
        """Fit on ``x`` (DataFrame, one column per feature, no missing value) and the outcome; returns self."""
        y = check_outcome(time, event, name="baseline development data")
        if x.shape[0] != y.time.size:
            raise InvalidInput(f"baseline: {x.shape[0]} feature rows for {y.time.size} outcomes")
        values = x.to_numpy(dtype=float)
        if not np.isfinite(values).all():
            raise InvalidInput("baseline: features hold missing or infinite values; drop those cases first")
        self.columns_ = list(x.columns)
        self.mean_ = values.mean(axis=0)
        sd = values.std(axis=0, ddof=1)
        # A constant feature carries nothing: it stays at its mean.
        self.sd_ = np.where(sd > 0, sd, np.inf)
        z = self._standardize(x)
        self.cv_ = select_penalizer(z, y.time, y.event, penalizers=self.penalizers, folds=self.folds, seed=self.seed)
        self.params_, _ = fit_cox(z, y.time, y.event, self.cv_.penalizer)
        return self

    def _standardize(self, x):
        missing = [c for c in getattr(self, "columns_", []) if c not in x.columns]
        if missing:
            raise InvalidInput(f"baseline: feature column(s) {missing} are absent")
        values = (x[self.columns_].to_numpy(dtype=float) - self.mean_) / self.sd_
        return pd.DataFrame(values, columns=self.columns_, index=x.index)

    def predict(self, x) -> np.ndarray:
        """Log relative hazard of each row; a higher value indicates a higher risk."""
        if not hasattr(self, "params_"):
            raise InvalidModel("BaselineCox: call fit() before predict()")
        return self.params_.risk(self._standardize(x).to_numpy())

    def summary(self) -> dict[str, Any]:
        return {"features": self.columns_, "penalizer": self.cv_.penalizer,
                "coefficients": dict(zip(self.columns_, map(float, self.params_.beta)))}


def crossfit_risk(x, time, event, *, folds: int = 5, seed: int = 0, penalizers: Sequence[float] = DEFAULT_PENALIZERS,
                  selection_folds: int = 5) -> np.ndarray:
    """Out-of-fold risk of every development row (folds stratified by event), as imaging scores are made;
    each fold's model chooses its penalizer from ``penalizers`` by ``selection_folds``-fold cross-validation."""
    y = check_outcome(time, event, name="baseline development data")
    k = min(folds, int(y.event.sum()))
    if k < 2:
        raise InvalidInput(f"baseline cross-fitting needs 2 folds with events; have {int(y.event.sum())} event(s)")
    fold = stratified_folds(event_strata(y.event), k, seed)
    out = np.full(y.time.size, np.nan)
    for f in range(k):
        train = fold != f
        model = BaselineCox(penalizers, selection_folds, seed).fit(x.loc[train], y.time[train], y.event[train])
        out[~train] = model.predict(x.loc[~train])
    return out
