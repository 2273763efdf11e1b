"""CoxFusion: Cox regression over clinical features and imaging scores, one sub-model per modality subset.

Missing modalities are normal in clinic, so the model keeps one Cox sub-model for each subset of
{clinical, radiology, pathology} that has enough development data ("clinical", "radiology",
"clinical+radiology", ..., "clinical+radiology+pathology"). A case is scored by the sub-model of
the modalities it has (or, when that one could not be fitted, by the largest fitted subset of them),
and the prediction says which.

The radiology score comes from the model of one MRI sequence set (T2FS + T1CE, T2FS alone, T1CE
alone), and the scores of different sets are different quantities with their own scales. So each
set is its own fusion input (``radiology[t2fs]``, see :mod:`sarcoma_risk.fusion.table`), every
subset with radiology is fitted once per set on that set's out-of-fold scores
("clinical+radiology[t2fs]+pathology"), and a case is scored only by sub-models of the set its
score came from; a case with the scores of several sets (a cohort table) is scored with the first
set of :data:`~sarcoma_risk.fusion.table.RADIOLOGY_INPUTS` that has a fitted sub-model.

Each sub-model is a lifelines ``CoxPHFitter`` with a ridge penalizer chosen by cross-validation on
the development cases that have its modalities; clinical variables are encoded by
:class:`sarcoma_risk.clinical.encoder.ClinicalEncoder`, imaging scores standardized with their development
mean and SD. Each sub-model's risk-group cutoff is fixed on its development cases. The whole model
saves to plain JSON (:meth:`CoxFusion.to_dict`) and :meth:`CoxFusion.from_dict` checks every field.
"""

from __future__ import annotations

import itertools
from importlib.metadata import version
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.choices import check_choice
from sarcoma_risk.clinical.encoder import DEFAULT_FEATURES, ClinicalEncoder
from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.errors import InvalidClinicalData, InvalidInput, InvalidModel, InvalidOutcome
from sarcoma_risk.fusion.cox import fit_cox
from sarcoma_risk.fusion.groups import CutoffMethod, assign_groups, choose_cutoff
from sarcoma_risk.fusion.modelcheck import FUSION_FORMAT, PERCENTILES, check_fusion_dict
from sarcoma_risk.fusion.selection import DEFAULT_PENALIZERS, CVMetric, select_penalizer
from sarcoma_risk.fusion.submodel import DevelopmentFit, SubModel
from sarcoma_risk.fusion.table import (
    CLINICAL,
    DURATION,
    EVENT,
    IMAGING_INPUTS,
    MODALITY_ORDER,
    RADIOLOGY,
    RADIOLOGY_INPUTS,
    input_column,
    is_missing,
    modality_of,
    submodel_name,
)
from sarcoma_risk.provenance import software_version
from sarcoma_risk.survival.concordance import harrell_c
from sarcoma_risk.survival.outcome import check_outcome

#: Horizons (months) of the survival probabilities: 1, 3 and 5 years.
DEFAULT_HORIZONS: tuple[float, ...] = (12.0, 36.0, 60.0)


def all_subsets(modalities: Sequence[str] = MODALITY_ORDER) -> list[tuple[str, ...]]:
    """Every non-empty subset, largest first, then in canonical order."""
    chosen = [m for m in MODALITY_ORDER if m in modalities]
    subsets = [s for r in range(len(chosen), 0, -1) for s in itertools.combinations(chosen, r)]
    return subsets


def input_subsets(modalities: Sequence[str], radiology_inputs: Sequence[str]) -> list[tuple[str, ...]]:
    """Every subset of the modalities with radiology spelt out as each of ``radiology_inputs`` in
    turn: largest first, then in canonical order, radiology inputs in the order given."""
    out = []
    for subset in all_subsets(modalities):
        if RADIOLOGY not in subset:
            out.append(subset)
            continue
        out += [tuple(r if m == RADIOLOGY else m for m in subset) for r in radiology_inputs]
    return out


def survival_key(horizon: float) -> str:
    """Column/key name of the survival probability at a horizon: ``survival_12`` for 12 months."""
    return f"survival_{horizon:g}"


class CoxFusion:
    """Cox fusion of clinical features, radiology score and pathology score.

    Parameters
    ----------
    clinical_features : sequence of str
        Clinical variables of the clinical part (see :data:`sarcoma_risk.clinical.variables.VARIABLES`).
    penalizers : sequence of float
        Ridge penalizers tried by cross-validation (lifelines' scale).
    cv_folds : int
        Folds of the penalizer cross-validation (fewer when there are fewer events).
    cv_metric : {"partial_likelihood", "c_index"}
        Criterion of the cross-validation.
    cutoff : {"median", "maxstat"}
        How the low/high risk cutoff is fixed on the development cases.
    min_group_share : float
        Smallest share of development cases in either group for ``maxstat``.
    horizons : sequence of float
        Months at which survival probabilities are predicted.
    min_events : int
        A sub-model is fitted only when its development cases have at least this many events.
    min_level_count : int
        Passed to the clinical encoder: rarer categorical levels are pooled with the reference.
    modalities : sequence of str
        Which of clinical, radiology, pathology to use at all.
    seed : int
        Seed of the cross-validation folds.
    """

    def __init__(self, clinical_features: Sequence[str] = DEFAULT_FEATURES,
                 penalizers: Sequence[float] = DEFAULT_PENALIZERS, cv_folds: int = 5,
                 cv_metric: CVMetric | str = CVMetric.PARTIAL_LIKELIHOOD,
                 cutoff: CutoffMethod | str = CutoffMethod.MEDIAN, min_group_share: float = 0.2,
                 horizons: Sequence[float] = DEFAULT_HORIZONS, min_events: int = 10, min_level_count: int = 5,
                 modalities: Sequence[str] = MODALITY_ORDER, seed: int = 0) -> None:
        self.clinical_features = tuple(clinical_features)
        self.penalizers = tuple(penalizers)
        self.cv_folds = cv_folds
        self.cv_metric = cv_metric
        self.cutoff = cutoff
        self.min_group_share = min_group_share
        self.horizons = tuple(horizons)
        self.min_events = min_events
        self.min_level_count = min_level_count
        self.modalities = tuple(modalities)
        self.seed = seed

    # ---- parameters and inputs ---------------------------------------------------------------

    def _check_params(self) -> None:
        self.cv_metric = check_choice(self.cv_metric, CVMetric, "cv_metric")
        self.cutoff = check_choice(self.cutoff, CutoffMethod, "cutoff")
        unknown = [m for m in self.modalities if m not in MODALITY_ORDER]
        if unknown or not self.modalities:
            raise InvalidInput(f"modalities: {list(self.modalities)}; expected a non-empty subset of "
                               f"{', '.join(MODALITY_ORDER)}")
        bad = [f for f in self.clinical_features if f not in VARIABLES]
        if bad:
            raise InvalidInput(f"clinical_features: unknown variable(s) {bad}; known: {', '.join(VARIABLES)}")
        if CLINICAL in self.modalities and not self.clinical_features:
            raise InvalidInput("clinical_features: empty; give at least one or leave clinical out of modalities")
        h = np.asarray(self.horizons, dtype=float)
        if h.size == 0 or not np.isfinite(h).all() or (h <= 0).any() or (np.diff(h) <= 0).any():
            raise InvalidInput(f"horizons: {list(self.horizons)}; expected increasing positive months")
        if int(self.cv_folds) < 2:
            raise InvalidInput(f"cv_folds: {self.cv_folds}; need at least 2")
        if int(self.min_events) < 2:
            raise InvalidInput(f"min_events: {self.min_events}; need at least 2")

    def _clinical_rows(self, df) -> list[dict[str, Any] | None]:
        """Per row: the parsed clinical feature values, or None when any feature is missing."""
        if CLINICAL not in self.modalities:
            return [None] * len(df)
        present = [f for f in self.clinical_features if f in df.columns]
        if not present:
            return [None] * len(df)
        if len(present) != len(self.clinical_features):
            absent = [f for f in self.clinical_features if f not in df.columns]
            raise InvalidInput(f"data: clinical column(s) {absent} are absent; the model uses "
                               f"{', '.join(self.clinical_features)}")
        out: list[dict[str, Any] | None] = []
        problems = []
        for case_id, raw in zip(df.index, df[list(self.clinical_features)].itertuples(index=False)):
            values = dict(zip(self.clinical_features, raw))
            if any(is_missing(v) for v in values.values()):
                out.append(None)
                continue
            clean = {}
            for name, value in values.items():
                try:
                    clean[name] = VARIABLES[name].parse(value)
                except ValueError as exc:
                    problems.append(f"case {case_id}, column {name!r}: {value!r} -> expected {exc}")
            out.append(clean if len(clean) == len(values) else None)
        if problems:
            raise InvalidClinicalData("invalid clinical values:\n  " + "\n  ".join(problems[:20]), problems)
        return out

    def _scores(self, df, name: str) -> np.ndarray:
        column = input_column(name)
        if modality_of(name) not in self.modalities or column not in df.columns:
            return np.full(len(df), np.nan)
        values = np.asarray(df[column], dtype=float)
        if np.isinf(values).any():
            raise InvalidInput(f"{column}: infinite value for case(s) {list(df.index[np.isinf(values)][:10])}")
        return values

    def _availability(self, df) -> tuple[list[dict[str, Any] | None], dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Clinical rows, scores by imaging input, and availability by input (clinical included)."""
        clinical = self._clinical_rows(df)
        scores = {name: self._scores(df, name) for name in IMAGING_INPUTS}
        available = {CLINICAL: np.array([c is not None for c in clinical], dtype=bool)}
        available.update({name: np.isfinite(v) for name, v in scores.items()})
        return clinical, scores, available

    def _design(self, clinical: list, scores: Mapping[str, np.ndarray], rows: np.ndarray,
                inputs: Sequence[str]):
        """Design matrix (DataFrame) of the given rows for a sub-model's inputs."""
        parts = []
        if CLINICAL in inputs:
            parts.append(self.encoder_.transform([clinical[i] for i in rows]).reset_index(drop=True))
        for name in inputs:
            if name == CLINICAL:
                continue
            mean, sd = self.score_scaling_[name]
            parts.append(pd.DataFrame({input_column(name): (scores[name][rows] - mean) / sd}))
        return pd.concat(parts, axis=1)

    # ---- fitting -----------------------------------------------------------------------------

    def fit(self, df, duration_col: str = DURATION, event_col: str = EVENT) -> "CoxFusion":
        """Fit every sub-model on development data; returns self.

        Parameters
        ----------
        df : pandas.DataFrame
            One row per development case: ``duration_col`` (months, > 0), ``event_col`` (0/1), the
            clinical feature columns (None/NaN when missing) and the imaging score columns of
            :mod:`sarcoma_risk.fusion.table` (``radiology_score[<set>]``, ``pathology_score``; NaN
            when missing), e.g. from :func:`sarcoma_risk.fusion.table.table_from_manifest`.
            Development imaging scores must be out-of-fold (see :mod:`sarcoma_risk.survival.scores`).
        """
        self._check_params()
        for column in (duration_col, event_col):
            if column not in df.columns:
                raise InvalidInput(f"data: no column {column!r}")
        y = check_outcome(df[duration_col], df[event_col], name="development data")
        event_times = np.unique(y.time[y.event])
        if event_times.size == 1 and y.event.sum() > 1:
            raise InvalidOutcome(
                f"development data: all {int(y.event.sum())} events happen at the same time "
                f"({event_times[0]:g} months); a Cox model needs events ordered in time (check the time column, "
                "e.g. a placeholder date copied to every case)")
        clinical, scores, available = self._availability(df)
        self.encoder_: ClinicalEncoder | None = None
        if available[CLINICAL].sum() >= 2:
            records = [c for c in clinical if c is not None]
            self.encoder_ = ClinicalEncoder(self.clinical_features, self.min_level_count).fit(records)
            self._check_constant_clinical(records)
        self.score_scaling_: dict[str, tuple[float, float]] = {}
        for name, values in scores.items():
            have = values[np.isfinite(values)]
            if have.size >= 2:
                sd = float(np.std(have, ddof=1))
                if not sd > 0:
                    raise InvalidInput(f"{input_column(name)}: constant ({have[0]:g}) in all {have.size} development "
                                       "cases; a Cox model cannot estimate its weight (check the imaging scores)")
                self.score_scaling_[name] = (float(np.mean(have)), sd)

        # Development ranges (1st-99th percentile) of numeric inputs: the nomogram's axes.
        self.ranges_: dict[str, tuple[float, float]] = {}
        if self.encoder_ is not None:
            for name in self.encoder_.numeric_:
                values = np.array([float(c[name]) for c in clinical if c is not None])
                self.ranges_[name] = tuple(float(v) for v in np.percentile(values, [1, 99]))
        for name in self.score_scaling_:
            values = scores[name][np.isfinite(scores[name])]
            self.ranges_[input_column(name)] = tuple(float(v) for v in np.percentile(values, [1, 99]))
        self.submodels_: dict[str, SubModel] = {}
        self.skipped_: dict[str, str] = {}
        # Radiology inputs without a development score (e.g. no unstated-set scores) are not tried.
        radiology = [r for r in RADIOLOGY_INPUTS if r in self.score_scaling_] or [RADIOLOGY]
        for subset in input_subsets(self.modalities, radiology):
            name = submodel_name(subset)
            rows = np.flatnonzero(np.logical_and.reduce([available[m] for m in subset]))
            n_events = int(y.event[rows].sum())
            if CLINICAL in subset and self.encoder_ is None or any(
                    m != CLINICAL and m not in self.score_scaling_ for m in subset):
                self.skipped_[name] = "no development data for this combination of modalities"
                continue
            if n_events < self.min_events:
                self.skipped_[name] = (f"{rows.size} development case(s) with {n_events} event(s); "
                                       f"needs at least {self.min_events} events")
                continue
            self.submodels_[name] = self._fit_submodel(subset, clinical, scores, rows, y)
        if not self.submodels_:
            raise InvalidInput("no sub-model could be fitted:\n  " + "\n  ".join(f"{k}: {v}" for k, v in self.skipped_.items()))
        self.n_development_ = int(y.time.size)
        self.events_development_ = int(y.event.sum())
        # How many development cases had each input: the missing-data figures of a model card.
        self.available_development_ = {m: int(available[m].sum()) for m in (CLINICAL, *IMAGING_INPUTS)
                                       if modality_of(m) in self.modalities and available[m].any()}
        return self

    def _check_constant_clinical(self, records: list[dict[str, Any]]) -> None:
        for name in self.clinical_features:
            values = {str(r[name]) for r in records}
            if len(values) == 1:
                raise InvalidInput(
                    f"clinical feature {name!r} is constant ({values.pop()}) in all {len(records)} development cases "
                    "with clinical data; a Cox model cannot estimate its effect. Leave it out of the features "
                    "(--features) or check the data")

    def _fit_submodel(self, subset, clinical, scores, rows, y) -> SubModel:
        x = self._design(clinical, scores, rows, subset)
        time, event = y.time[rows], y.event[rows]
        sd = x.std(axis=0, ddof=1).to_numpy()
        # A level absent among this subset's cases (e.g. no R2 margin among cases with slides)
        # carries no information here: the sub-model leaves it at the reference.
        dropped = [c for c, s in zip(x.columns, sd) if not s > 0]
        x = x.drop(columns=dropped)
        if x.shape[1] == 0:
            raise InvalidInput(f"sub-model {submodel_name(subset)}: every covariate is constant among its "
                               f"{rows.size} development cases")
        cv = select_penalizer(x, time, event, penalizers=self.penalizers, folds=self.cv_folds, seed=self.seed,
                              metric=self.cv_metric)
        params, _ = fit_cox(x, time, event, cv.penalizer)
        risk = params.risk(x.to_numpy())
        cutoff = choose_cutoff(time, event, risk, self.cutoff, min_share=self.min_group_share)
        development = DevelopmentFit(int(rows.size), int(event.sum()), harrell_c(time, event, risk),
                                     tuple(np.percentile(risk, PERCENTILES).tolist()))
        return SubModel(tuple(subset), params, tuple(dropped), cv, cutoff, development)

    # ---- prediction --------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "submodels_"):
            raise InvalidModel("CoxFusion: call fit() or from_dict() before predicting")

    def available_inputs(self, df) -> list[list[str]]:
        """Per row: the inputs the model can use (complete clinical features, finite scores), e.g.
        ``["clinical", "radiology[t2fs]", "pathology"]``."""
        _, _, available = self._availability(df)
        return [[m for m in (CLINICAL, *IMAGING_INPUTS) if available[m][i]] for i in range(len(df))]

    def choose_submodel(self, inputs: Sequence[str]) -> str | None:
        """The sub-model for a case with these inputs: the exact one if fitted, else the largest
        fitted subset of them (first in canonical order; of radiology inputs, the first of
        :data:`~sarcoma_risk.fusion.table.RADIOLOGY_INPUTS` the case has); None when no fitted
        sub-model applies. A radiology input stands only for itself: a T2-only score is never used
        by a sub-model fitted on the scores of another sequence set."""
        self._check_fitted()
        have = set(inputs)
        modalities = [m for m in self.modalities if m in {modality_of(i) for i in have}]
        for subset in input_subsets(modalities, [r for r in RADIOLOGY_INPUTS if r in have]):
            name = submodel_name(subset)
            if name in self.submodels_:
                return name
        return None

    def predict(self, df, *, submodel: str | None = None):
        """Risk, risk group and survival probabilities of each row.

        Parameters
        ----------
        df : pandas.DataFrame
            Rows as for :meth:`fit` (outcome columns are not needed).
        submodel : str, optional
            Score every row with this sub-model (rows must have its modalities); by default each
            row gets the sub-model of the modalities it has.

        Returns
        -------
        pandas.DataFrame
            Indexed like ``df``: ``risk`` (log relative hazard versus the average development case;
            higher means riskier), ``group`` ("low"/"high"), ``percentile`` (0-100 among the
            development cases of that sub-model), ``survival_<h>`` for each horizon (NaN beyond the
            development follow-up), ``submodel`` and ``modalities_available`` (e.g.
            ``clinical+radiology+pathology``).
        """

        self._check_fitted()
        clinical, scores, available = self._availability(df)
        names: list[str | None] = []
        have_lists = []
        for i in range(len(df)):
            have = [m for m in (CLINICAL, *IMAGING_INPUTS) if available[m][i]]
            have_lists.append("+".join(m for m in MODALITY_ORDER if any(modality_of(h) == m for h in have)))
            names.append(self.choose_submodel(have) if submodel is None else submodel)
        if submodel is not None:
            if submodel not in self.submodels_:
                raise InvalidInput(f"submodel: {submodel!r} was not fitted; available: {', '.join(self.submodels_)}")
            need = self.submodels_[submodel].modalities
            lacking = [df.index[i] for i in range(len(df)) if not all(available[m][i] for m in need)]
            if lacking:
                raise InvalidInput(f"submodel {submodel}: {len(lacking)} case(s) lack one of its modalities, "
                                   f"e.g. {', '.join(map(str, lacking[:5]))}")
        unscorable = [df.index[i] for i, n in enumerate(names) if n is None]
        if unscorable:
            raise InvalidInput(
                f"{len(unscorable)} case(s) have no modality the model can use (complete clinical data for "
                f"{', '.join(self.clinical_features)}, a radiology score or a pathology score): "
                f"{', '.join(map(str, unscorable[:10]))}")
        out = pd.DataFrame(index=df.index)
        out["risk"] = np.nan
        out["percentile"] = np.nan
        out["group"] = ""
        for h in self.horizons:
            out[survival_key(h)] = np.nan
        out["submodel"] = names
        out["modalities_available"] = have_lists
        for name in dict.fromkeys(names):
            rows = np.flatnonzero(np.asarray(names) == name)
            sub = self.submodels_[name]
            params = sub.cox
            x = self._design(clinical, scores, rows, sub.modalities).reindex(columns=params.columns)
            risk = params.risk(x.to_numpy())
            out.iloc[rows, out.columns.get_loc("risk")] = risk
            percentiles = np.asarray(sub.development.risk_percentiles)
            out.iloc[rows, out.columns.get_loc("percentile")] = np.interp(risk, percentiles, PERCENTILES)
            out.iloc[rows, out.columns.get_loc("group")] = assign_groups(risk, sub.cutoff.value)
            surv = params.survival(risk, self.horizons)
            for k, h in enumerate(self.horizons):
                out.iloc[rows, out.columns.get_loc(survival_key(h))] = surv[:, k]
        return out

    def predict_risk(self, df, *, submodel: str | None = None):
        """Log relative hazard of each row (higher = riskier), as a pandas Series."""
        return self.predict(df, submodel=submodel)["risk"]

    # ---- persistence -------------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        return {
            "clinical_features": list(self.clinical_features), "penalizers": list(self.penalizers),
            "cv_folds": int(self.cv_folds), "cv_metric": check_choice(self.cv_metric, CVMetric, "cv_metric").value,
            "cutoff": check_choice(self.cutoff, CutoffMethod, "cutoff").value, "min_group_share": self.min_group_share,
            "horizons": [float(h) for h in self.horizons], "min_events": int(self.min_events),
            "min_level_count": int(self.min_level_count), "modalities": list(self.modalities), "seed": int(self.seed),
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: parameters, encoder, score scaling (by input), every sub-model, versions."""
        self._check_fitted()
        return {
            "format": FUSION_FORMAT,
            "params": self.get_params(),
            "encoder": self.encoder_.to_dict() if self.encoder_ is not None else None,
            "score_scaling": {m: {"mean": v[0], "sd": v[1]} for m, v in self.score_scaling_.items()},
            "submodels": {name: sub.to_dict() for name, sub in self.submodels_.items()},
            "ranges": {k: list(v) for k, v in self.ranges_.items()},
            "skipped": dict(self.skipped_),
            "development": {"n": self.n_development_, "events": self.events_development_,
                            "available": dict(self.available_development_)},
            "versions": _versions(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CoxFusion":
        """Rebuild a fitted model; :class:`InvalidModel` names the first inconsistent field."""
        return check_fusion_dict(cls, data)


def _versions() -> dict[str, str]:
    out = {"sarcoma_risk": software_version()}
    for package in ("lifelines", "numpy", "pandas"):
        out[package] = version(package)
    return out
