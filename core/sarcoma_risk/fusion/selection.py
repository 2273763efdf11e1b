"""Choosing the ridge penalizer of a Cox model by K-fold cross-validation.

Two criteria:

* ``partial_likelihood`` (default): the cross-validated partial log-likelihood of Verweij and van
  Houwelingen (1993), ``sum_k [l(beta_-k) - l_-k(beta_-k)]``: the fold's contribution is what the
  model fitted without the fold adds to the full-data partial likelihood. Unlike the partial
  likelihood of a held-out fold alone, it stays stable with small folds.
* ``c_index``: the mean Harrell's C of the held-out folds.

Folds are stratified by event status with a fixed seed, so the same data always select the same
penalizer. A penalizer whose fit fails to converge in any fold is left out (and reported).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Sequence

import numpy as np

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.survival.folds import event_strata, stratified_folds

#: Ridge penalizers tried by default (lifelines scale: penalty = n * penalizer / 2 * ||beta||^2 on
#: standardized covariates).
DEFAULT_PENALIZERS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


class CVMetric(str, Enum):
    PARTIAL_LIKELIHOOD = "partial_likelihood"
    C_INDEX = "c_index"


@dataclass(frozen=True)
class PenalizerCV:
    """The cross-validation of a Cox model's penalizer: the grid, its scores and the chosen value."""

    penalizer: float  # the chosen value (ties go to the larger penalizer, the simpler model)
    metric: str  # a CVMetric value
    folds: int
    seed: int
    grid: tuple[float, ...]  # increasing
    scores: tuple[float | None, ...]  # per grid value; None where a fold's fit failed
    failed: Mapping[str, str]  # why, per failed penalizer ("%g" of it)

    def to_dict(self) -> dict[str, Any]:
        return {"penalizer": self.penalizer, "metric": self.metric, "folds": self.folds, "seed": self.seed,
                "grid": list(self.grid), "scores": list(self.scores), "failed": dict(self.failed)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "cross_validation") -> "PenalizerCV":
        """Rebuild a saved cross-validation; :class:`InvalidModel` names ``where`` and the broken field."""
        if not isinstance(data, Mapping):
            raise InvalidModel(f"{where}: expected an object")

        def number(value: Any, name: str, kind: type | tuple = (int, float)) -> Any:
            if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
                raise InvalidModel(f"{where}.{name}: expected a finite number, got {value!r}")
            return value

        try:
            metric = check_choice(data.get("metric"), CVMetric, f"{where}.metric").value
        except InvalidInput as exc:
            raise InvalidModel(str(exc)) from None
        grid, scores, failed = data.get("grid"), data.get("scores"), data.get("failed")
        if not isinstance(grid, list) or not isinstance(scores, list) or len(grid) != len(scores) or not grid:
            raise InvalidModel(f"{where}: expected 'grid' and 'scores' lists of equal, non-zero length")
        if not isinstance(failed, Mapping) or not all(isinstance(v, str) for v in failed.values()):
            raise InvalidModel(f"{where}.failed: expected an object of reasons (text) per penalizer")
        return cls(number(data.get("penalizer"), "penalizer"), metric, number(data.get("folds"), "folds", int),
                   number(data.get("seed"), "seed", int), tuple(number(g, "grid") for g in grid),
                   tuple(None if s is None else number(s, "scores") for s in scores), dict(failed))


def _frame(x, time, event):
    frame = x.copy()
    frame["__time"] = time
    frame["__event"] = event.astype(int)
    return frame


def select_penalizer(x, time: np.ndarray, event: np.ndarray, *, penalizers: Sequence[float] = DEFAULT_PENALIZERS,
                     folds: int = 5, seed: int = 0,
                     metric: CVMetric | str = CVMetric.PARTIAL_LIKELIHOOD) -> PenalizerCV:
    """Cross-validate the penalizer of a Cox model on design ``x`` (a DataFrame).

    Returns
    -------
    PenalizerCV
        The chosen value, the grid with its cross-validated scores (None where the fit failed), and
        why fits failed. Ties go to the larger penalizer (the simpler model).
    """

    metric = check_choice(metric, CVMetric, "cv_metric")
    grid = sorted({float(p) for p in penalizers})
    if not grid or any(not math.isfinite(p) or p < 0 for p in grid):
        raise InvalidInput(f"penalizers: need one or more finite values >= 0, got {list(penalizers)}")
    n_events = int(event.sum())
    k = min(int(folds), n_events)
    if k < 2:
        raise InvalidInput(f"cross-validation needs at least 2 folds with events; have {n_events} event(s) "
                           f"and folds={folds}")
    # lifelines costs about 0.9 s at import; a process that only predicts (a federated centre) never selects
    from lifelines import CoxPHFitter  # lazy: see above
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning  # lazy: see above

    fold = stratified_folds(event_strata(event), k, seed)
    full = _frame(x, time, event)
    scores: list[float | None] = []
    failed: dict[str, str] = {}
    for penalizer in grid:
        total, c_values, ok = 0.0, [], True
        for f in range(k):
            train = fold != f
            with warnings.catch_warnings():
                # A fold that does not converge disqualifies this penalizer instead of warning.
                warnings.simplefilter("error", ConvergenceWarning)
                try:
                    cph = CoxPHFitter(penalizer=penalizer).fit(full.loc[train], "__time", "__event")
                except (ConvergenceError, ConvergenceWarning, np.linalg.LinAlgError) as exc:
                    failed[f"{penalizer:g}"] = f"fold {f + 1}/{k}: {str(exc).splitlines()[0]}"
                    ok = False
                    break
            if metric is CVMetric.PARTIAL_LIKELIHOOD:
                n_full, n_train = len(full), int(train.sum())
                total += cph.score(full, "log_likelihood") * n_full - cph.score(full.loc[train], "log_likelihood") * n_train
            else:
                held = ~train
                risk = x.loc[held].to_numpy(dtype=float) @ cph.params_.reindex(x.columns).to_numpy()
                c = harrell_c(time[held], event[held], risk)
                if math.isfinite(c):  # NaN: no comparable pair in this fold
                    c_values.append(c)
        if not ok:
            scores.append(None)
        elif metric is CVMetric.PARTIAL_LIKELIHOOD:
            scores.append(float(total))
        else:
            scores.append(float(np.mean(c_values)) if c_values else None)
    valid = [(s, p) for s, p in zip(scores, grid) if s is not None]
    if not valid:
        raise InvalidInput("no penalizer could be cross-validated: " + "; ".join(f"{p}: {why}" for p, why in failed.items())
                           + ". Try larger penalizers or fewer covariates.")
    best = max(valid, key=lambda sp: (sp[0], sp[1]))[1]
    return PenalizerCV(best, metric.value, k, seed, tuple(grid), tuple(scores), failed)
