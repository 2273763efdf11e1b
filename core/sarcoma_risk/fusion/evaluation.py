"""Validation of a fitted CoxFusion on held-out cases: every figure of the report, as data.

Two views of the evaluated split:

* **comparison**: the cases that have every modality, scored by the clinical-only, radiology-only,
  pathology-only and combined sub-models side by side (same cases, same bootstrap resamples, so the
  differences get paired intervals). Radiology here is the score of the first radiology sequence
  set (:data:`~sarcoma_risk.fusion.table.RADIOLOGY_INPUTS`: both sequences first) the model and the
  cases have;
* **deployed**: every case scored the way ``fuse`` would score it (the sub-model of its modalities);
* **sequence sets** (when the model has sub-models of several radiology sequence sets): on the cases
  that have the scores of every set, the radiology-only and combined sub-models of each set.

For each: Harrell's C, Uno's C (truncated at the last horizon), cumulative/dynamic AUC at the
horizons and its mean, the integrated Brier score, the calibration slope and calibration-in-the-large
(observed/expected recurrences up to the last horizon and its log, the calibration intercept; see
:mod:`~sarcoma_risk.fusion.calibration`), each with a bootstrap 95% CI; Kaplan-Meier curves of the
fixed risk groups with numbers at risk, log-rank p and hazard ratio; calibration and decision
curves at each horizon; the nomogram of the combined model. With a phantom cohort's truth, the
oracle C-index on the same cases and the combined/oracle ratio.

:func:`evaluate` returns an :class:`Evaluation`; its ``to_dict()`` is the report JSON's ``data``
(read back with :meth:`Evaluation.from_dict`), and ``km_inputs`` keeps the outcome arrays the
Kaplan-Meier plots are drawn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from lifelines import KaplanMeierFitter

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.bootstrap import Prediction, bootstrap_metrics, interval, resample_counts
from sarcoma_risk.fusion.calibration import calibration_table
from sarcoma_risk.fusion.decision import decision_curve
from sarcoma_risk.fusion.groups import HIGH, LOW, compare_groups
from sarcoma_risk.fusion.metrics import uno_c
from sarcoma_risk.fusion.model import CoxFusion, survival_key
from sarcoma_risk.fusion.nomogram import nomogram
from sarcoma_risk.fusion.table import CLINICAL, DURATION, EVENT, PATHOLOGY, RADIOLOGY_INPUTS, submodel_name
from sarcoma_risk.survival.concordance import harrell_c, harrell_c_weighted
from sarcoma_risk.survival.outcome import check_outcome

DEPLOYED = "deployed"
REPORT_FORMAT = "sarcoma-risk-fusion-report/1"


@dataclass(frozen=True)
class EvaluationBlock:
    """The figures of one view of the evaluated cases: the side-by-side comparison, or as deployed.

    Each mapping is keyed by model name (``deployed`` for the as-deployed view) and JSON-ready.
    """

    cases: str  # which cases the view holds
    n: int
    events: int
    metrics: dict[str, Any] | None  # bootstrap_metrics' result; None without a usable horizon
    risk_groups: dict[str, Any]  # Kaplan-Meier curves, numbers at risk, log-rank test and hazard ratio
    calibration: dict[str, Any]  # per model, per horizon
    decision_curves: dict[str, Any]  # per horizon
    submodel_counts: dict[str, int] | None = None  # as deployed: how many cases each sub-model scored

    def to_dict(self) -> dict[str, Any]:
        out = {"n": self.n, "events": self.events, "metrics": self.metrics, "risk_groups": self.risk_groups,
               "calibration": self.calibration, "decision_curves": self.decision_curves, "cases": self.cases}
        if self.submodel_counts is not None:
            out["submodel_counts"] = self.submodel_counts
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EvaluationBlock":
        return cls(data["cases"], data["n"], data["events"], data["metrics"], data["risk_groups"],
                   data["calibration"], data["decision_curves"], data.get("submodel_counts"))


@dataclass(frozen=True)
class Evaluation:
    """Every figure of the validation report (module docstring)."""

    split: str | None
    horizons_months: tuple[float, ...]  # those inside the evaluated and the development follow-up
    cohort: dict[str, Any]  # n, events, centres, median follow-up, modalities available
    notes: tuple[str, ...]
    comparison: EvaluationBlock | None  # None with too few cases that have every modality
    deployed: EvaluationBlock
    nomogram: dict[str, Any]
    model: dict[str, Any]  # the fitted model's summary: parameters, sub-models, coefficients
    oracle: dict[str, Any] | None  # with a phantom cohort's truth: the oracle C-index
    combined: str | None = None  # the comparison's combined sub-model (clinical + radiology + pathology)
    sequence_sets: dict[str, Any] | None = None  # radiology-only and combined sub-models of each sequence set
    km_inputs: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, compare=False, repr=False)  # "<view>:<model>" -> time, event, group; not saved

    def to_dict(self) -> dict[str, Any]:
        """The report JSON's ``data``."""
        return {"format": REPORT_FORMAT, "split": self.split, "horizons_months": list(self.horizons_months),
                "cohort": self.cohort, "notes": list(self.notes),
                "comparison": None if self.comparison is None else self.comparison.to_dict(),
                "deployed": self.deployed.to_dict(), "nomogram": self.nomogram, "model": self.model,
                "oracle": self.oracle, "combined": self.combined, "sequence_sets": self.sequence_sets}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "report data") -> "Evaluation":
        """Read back a report JSON's ``data`` (without the Kaplan-Meier inputs, which are not saved)."""
        if not isinstance(data, Mapping) or data.get("format") != REPORT_FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInput(f"{source}: format {found!r}; expected {REPORT_FORMAT!r}")
        try:
            comparison = data["comparison"]
            return cls(data["split"], tuple(data["horizons_months"]), data["cohort"], tuple(data["notes"]),
                       None if comparison is None else EvaluationBlock.from_dict(comparison),
                       EvaluationBlock.from_dict(data["deployed"]), data["nomogram"], data["model"], data["oracle"],
                       data.get("combined"), data.get("sequence_sets"))
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"{source}: incomplete validation figures ({exc!r})") from None


def _km_curves(time: np.ndarray, event: np.ndarray, groups: np.ndarray, step: float = 12.0) -> dict[str, Any]:
    """Kaplan-Meier curves with 95% CI per group, numbers at risk and cumulative events every ``step`` months.

    The numbers are those lifelines' ``add_at_risk_counts`` prints under the plot: at risk after
    time t (still followed beyond t; everyone at 0) and events up to t.
    """

    curves = {}
    ticks = np.arange(0.0, time.max() + step, step)
    at_risk: dict[str, Any] = {"times_months": ticks.tolist()}
    events: dict[str, Any] = {"times_months": ticks.tolist()}
    for g in (LOW, HIGH):
        mask = groups == g
        at_risk[g] = [int(mask.sum()) if t == 0 else int((time[mask] > t).sum()) for t in ticks]
        events[g] = [int((event[mask] & (time[mask] <= t)).sum()) for t in ticks]
        if not mask.any():
            continue
        kmf = KaplanMeierFitter().fit(time[mask], event[mask])
        ci = kmf.confidence_interval_survival_function_
        curves[g] = {"times_months": kmf.survival_function_.index.to_numpy(dtype=float).tolist(),
                     "survival": kmf.survival_function_.iloc[:, 0].to_numpy(dtype=float).tolist(),
                     "ci_low": ci.iloc[:, 0].to_numpy(dtype=float).tolist(),
                     "ci_high": ci.iloc[:, 1].to_numpy(dtype=float).tolist()}
    return {"curves": curves, "at_risk": at_risk, "cumulative_events": events,
            "comparison": compare_groups(time, event, groups)}


def _usable_horizons(model: CoxFusion, time: np.ndarray) -> tuple[list[float], list[str]]:
    """Horizons inside the evaluated follow-up and the development follow-up of every sub-model."""
    development_end = min(sub.cox.max_time for sub in model.submodels_.values())
    usable, notes = [], []
    for h in model.horizons:
        if not time.min() <= h < time.max():
            notes.append(f"horizon {h:g} months lies outside the follow-up of the evaluated cases "
                         f"({time.min():g}-{time.max():g} months) and was left out of AUC, Brier and calibration")
        elif h > development_end:
            notes.append(f"horizon {h:g} months lies beyond the development follow-up ({development_end:g} months): "
                         "survival there is not estimable and was left out")
        else:
            usable.append(float(h))
    return usable, notes


def _predictions(model: CoxFusion, predictions: Mapping[str, Any], time: np.ndarray,
                 horizons: list[float]) -> dict[str, Prediction]:
    """Risk, survival at the horizons and expected recurrences up to the last horizon, per model.

    A case's expected count is its sub-model's cumulative hazard at the end of its follow-up, cut at
    the last horizon: ``H0(min(t, tau)) * exp(risk)``.
    """
    out = {}
    tau = horizons[-1] if horizons else None
    for name, p in predictions.items():
        risk = p["risk"].to_numpy(dtype=float)
        surv = np.column_stack([p[survival_key(h)].to_numpy(dtype=float) for h in horizons]) if horizons \
            else np.empty((len(p), 0))
        expected = None
        if tau is not None:
            expected = np.empty(risk.size)
            submodels = p["submodel"].to_numpy()
            for sub in dict.fromkeys(submodels):
                rows = submodels == sub
                baseline = model.submodels_[sub].cox.cumulative_hazard_at(np.minimum(time[rows], tau))
                expected[rows] = baseline * np.exp(risk[rows])
        out[name] = Prediction(risk, surv, expected)
    return out


def _block(model: CoxFusion, table, predictions: Mapping[str, Any], horizons: list[float], *, n_resamples: int,
           seed: int, reference: str | None, cases: str,
           submodel_counts: dict[str, int] | None = None) -> tuple[EvaluationBlock, dict[str, tuple]]:
    """Metrics with CIs, risk groups, calibration and decision curves for models scored on ``table``."""
    y = check_outcome(table[DURATION], table[EVENT], name="evaluated cases")
    tau = horizons[-1] if horizons else None
    preds = _predictions(model, predictions, y.time, horizons)
    metrics = bootstrap_metrics(y.time, y.event, preds, horizons, n_resamples=n_resamples, seed=seed, tau=tau,
                                reference=reference) if horizons else None
    groups, km_inputs, calibration = {}, {}, {}
    for name, p in predictions.items():
        g = p["group"].to_numpy()
        groups[name] = _km_curves(y.time, y.event, g)
        km_inputs[name] = (y.time, y.event, g)
        calibration[name] = {f"{h:g}": calibration_table(y.time, y.event, preds[name].survival[:, k], h)
                             for k, h in enumerate(horizons)}
    decisions = {f"{h:g}": decision_curve(y.time, y.event, {n: 1.0 - p.survival[:, k] for n, p in preds.items()}, h)
                 for k, h in enumerate(horizons)}
    block = EvaluationBlock(cases, int(y.time.size), int(y.event.sum()), metrics, groups, calibration, decisions,
                            submodel_counts)
    return block, km_inputs


def _oracle(truth: Mapping[str, Any], table, combined_risk: np.ndarray | None, split: str | None,
            n_resamples: int, seed: int, tau: float | None) -> dict[str, Any]:
    """Oracle C-index from a phantom cohort's truth.json and the combined model's share of it."""
    lp = {c["case_id"]: c["lp"] for c in truth.get("cases", []) if "case_id" in c and "lp" in c}
    oracle_table = truth.get("oracle_c_index") or {}
    out: dict[str, Any] = {"from_truth_json": {k: v for k, v in oracle_table.items()
                                               if k == "all" or k.startswith(("centre:", "split:"))}}
    if split is not None:
        out["split_oracle_c_index"] = oracle_table.get(f"split:{split}")
    missing = [c for c in table.index if c not in lp]
    if combined_risk is None or missing or not lp:
        out["note"] = ("no combined model scores" if combined_risk is None
                       else f"truth.json lacks the true linear predictor of {len(missing)} evaluated case(s)")
        return out
    y = check_outcome(table[DURATION], table[EVENT], name="oracle")
    true_lp = np.array([lp[c] for c in table.index], dtype=float)
    counts = resample_counts(y.time.size, n_resamples, seed)
    oracle_b = harrell_c_weighted(y.time, y.event, true_lp, counts)
    model_b = harrell_c_weighted(y.time, y.event, combined_risk, counts)
    oracle_c = harrell_c(y.time, y.event, true_lp)
    model_c = harrell_c(y.time, y.event, combined_risk)
    out.update({
        "cases": "the comparison cases (every modality present)",
        "n": int(y.time.size),
        "oracle_harrell_c": interval(oracle_c, oracle_b),
        "combined_harrell_c": interval(model_c, model_b),
        "combined_to_oracle_ratio": interval(model_c / oracle_c, model_b / oracle_b),
    })
    try:
        out["oracle_uno_c"] = uno_c(y.time, y.event, true_lp, tau=tau)
    except InvalidInput as exc:
        out["oracle_uno_c"] = None
        out["note"] = str(exc)
    return out


def evaluate(model: CoxFusion, table, *, split: str | None = None, n_resamples: int = 1000, seed: int = 0,
             truth: Mapping[str, Any] | None = None, notes: Sequence[str] = ()) -> Evaluation:
    """Every figure of the validation report, computed on ``table`` (a fusion table with outcome).

    Parameters
    ----------
    model : CoxFusion
        A fitted model.
    table : pandas.DataFrame
        The evaluated cases (e.g. the validation split), as from
        :func:`sarcoma_risk.fusion.table.table_from_manifest`.
    split : str, optional
        Name of the evaluated split (for the report and the truth.json look-up).
    n_resamples, seed : int
        Bootstrap resamples and seed.
    truth : mapping, optional
        A phantom cohort's truth.json: adds the oracle C-index and the combined/oracle ratio.
    notes : sequence of str
        Remarks for the report's notes (e.g. about the score sources).
    """
    unscorable = [case for case, have in zip(table.index, model.available_inputs(table))
                  if model.choose_submodel(have) is None]
    excluded = []
    if unscorable:
        table = table.drop(index=unscorable)
        excluded.append(f"{len(unscorable)} case(s) had no modality the model can use and were left out "
                        f"(e.g. {', '.join(map(str, unscorable[:5]))})")
    y = check_outcome(table[DURATION], table[EVENT], name="evaluated cases")
    horizons, horizon_notes = _usable_horizons(model, y.time)
    deployed = model.predict(table)
    inputs = model.available_inputs(table)
    radiology = [r for r in RADIOLOGY_INPUTS if r in model.submodels_ and any(r in have for have in inputs)]
    primary = radiology[0] if radiology else RADIOLOGY_INPUTS[-1]
    combined = submodel_name((CLINICAL, primary, PATHOLOGY))
    comparison_models = [m for m in (CLINICAL, primary, PATHOLOGY, combined) if m in model.submodels_]
    needed = {m for name in comparison_models for m in model.submodels_[name].modalities}
    complete = np.array([needed <= set(have) for have in inputs])
    all_notes = [*notes, *excluded, *horizon_notes]
    km_inputs: dict[str, tuple] = {}
    reference = combined if combined in comparison_models else None
    comparison = None
    if comparison_models and complete.sum() >= 2 and y.event[complete].any():
        sub_table = table.loc[complete]
        predictions = {name: model.predict(sub_table, submodel=name) for name in comparison_models}
        comparison, km = _block(model, sub_table, predictions, horizons, n_resamples=n_resamples, seed=seed,
                                reference=reference,
                                cases=f"cases with every modality of the compared models ({', '.join(sorted(needed))})")
        km_inputs.update({f"comparison:{k}": v for k, v in km.items()})
    else:
        all_notes.append("too few cases with every modality (or no event among them) for the side-by-side comparison")
    deployed_block, km = _block(model, table, {DEPLOYED: deployed}, horizons, n_resamples=n_resamples, seed=seed,
                                reference=None, cases="every evaluated case, scored by the sub-model of the modalities it has",
                                submodel_counts=deployed["submodel"].value_counts().to_dict())
    km_inputs.update({f"deployed:{k}": v for k, v in km.items()})
    nomogram_model = reference or max(model.submodels_, key=lambda n: len(model.submodels_[n].modalities))
    oracle = None
    if truth is not None:
        combined_risk = None
        if comparison is not None and reference is not None:
            combined_risk = model.predict(table.loc[complete], submodel=reference)["risk"].to_numpy(dtype=float)
        oracle = _oracle(truth, table.loc[complete] if combined_risk is not None else table, combined_risk,
                         split, n_resamples, seed, horizons[-1] if horizons else None)
    sets = _sequence_sets(model, table, inputs, radiology, horizons, n_resamples, seed) if len(radiology) > 1 else None
    return Evaluation(split, tuple(horizons), _cohort_summary(table, deployed), tuple(all_notes), comparison,
                      deployed_block, nomogram(model, nomogram_model), _model_summary(model), oracle, reference, sets,
                      km_inputs)


def _sequence_sets(model: CoxFusion, table, inputs: list[list[str]], radiology: list[str], horizons: list[float],
                   n_resamples: int, seed: int) -> dict[str, Any] | None:
    """Radiology-only and combined sub-models of each radiology sequence set, on the cases that have them all."""
    names = [n for r in radiology for n in (r, submodel_name((CLINICAL, r, PATHOLOGY))) if n in model.submodels_]
    needed = {m for name in names for m in model.submodels_[name].modalities}
    complete = np.array([needed <= set(have) for have in inputs])
    y = check_outcome(table[DURATION], table[EVENT], name="evaluated cases")
    if not horizons or complete.sum() < 2 or not y.event[complete].any():
        return None
    sub_table = table.loc[complete]
    predictions = _predictions(model, {n: model.predict(sub_table, submodel=n) for n in names},
                               y.time[complete], horizons)
    metrics = bootstrap_metrics(y.time[complete], y.event[complete], predictions, horizons,
                                n_resamples=n_resamples, seed=seed, tau=horizons[-1])
    return {"cases": f"cases with the radiology score of every sequence set ({', '.join(radiology)}), clinical data "
                     "and a pathology score", "n": int(complete.sum()), "events": int(y.event[complete].sum()),
            "radiology_inputs": list(radiology), "metrics": metrics}


def _cohort_summary(table, deployed) -> dict[str, Any]:
    y = check_outcome(table[DURATION], table[EVENT], name="evaluated cases")
    # Median follow-up by the reverse Kaplan-Meier method (censoring as the event).
    reverse = KaplanMeierFitter().fit(y.time, ~y.event)
    median_fu = reverse.median_survival_time_
    return {
        "n": int(y.time.size), "events": int(y.event.sum()),
        "centres": table["centre"].value_counts().to_dict() if "centre" in table.columns else {},
        "median_follow_up_months": float(median_fu) if np.isfinite(median_fu) else None,
        "modalities_available": deployed["modalities_available"].value_counts().to_dict(),
    }


def _model_summary(model: CoxFusion) -> dict[str, Any]:
    subs = {}
    for name, sub in model.submodels_.items():
        cox = sub.cox
        subs[name] = {
            "n": sub.development.n, "events": sub.development.events,
            "penalizer": cox.penalizer, "cutoff": sub.cutoff.to_dict(),
            "coefficients": {c: {"coef": float(b), "hazard_ratio": float(np.exp(b)), "se": float(s)}
                             for c, b, s in zip(cox.columns, cox.beta, cox.standard_errors)},
            "dropped_columns": list(sub.dropped_columns),
        }
    return {"params": model.get_params(), "submodels": subs, "skipped": dict(model.skipped_),
            "development": {"n": model.n_development_, "events": model.events_development_,
                            "available": dict(model.available_development_)}}
