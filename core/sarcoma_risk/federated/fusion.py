"""The server side of the federated Cox fusion: a CoxFusion fitted from per-centre sums only.

The server asks every centre the questions of :mod:`sarcoma_risk.federated.centre` through a
transport-independent ``query(op, request) -> {centre: reply}`` (Flower in
:mod:`sarcoma_risk.federated.flower`, or a plain function in tests) and assembles a
:class:`~sarcoma_risk.fusion.model.CoxFusion` that saves, loads, evaluates and scores like a pooled
one. What differs from ``train fusion``, and why:

* **Stratified by centre.** The coefficients maximise the sum over centres of each centre's partial
  likelihood (risk sets do not cross centres), i.e. the pooled Cox model stratified by centre.
  They equal lifelines' ``CoxPHFitter(penalizer=p, l1_ratio=0)`` with ``strata=["centre"]`` on the
  pooled rows to numerical tolerance (tests/federated/test_federated_cox.py).
* **Penalizer fixed, not cross-validated.** Cross-validation would need folds across centres; the
  ridge penalizer is the ``penalizer`` setting (default 0.1, the middle of ``train fusion``'s grid),
  recorded as a one-value grid with ``folds`` 0.
* **Baseline hazard from binned sums.** The deployed baseline is the piecewise-constant hazard on a
  fixed month grid, ``events / exposure`` per bin summed over centres (exposure = time at risk in
  the bin times the relative hazard), at the covariate means; a stratified model has no single
  Breslow baseline, and this one needs no event time from any centre.
* **Percentiles, median cutoff, apparent C from histograms and pair counts.** Development risk
  percentiles and the median cutoff come from the summed risk histogram on a fixed grid (bin width
  ``risk_bin``, default 0.005); the apparent Harrell's C counts pairs within centres. Only the
  ``median`` cutoff is available (maximally selected log-rank would need the cases' risks).
* **Nomogram ranges** are mean +/- 2.326 SD (the 1st-99th percentiles of a normal distribution)
  instead of the empirical percentiles.
* **Too few events.** A centre with fewer than ``min_centre_events`` development events is refused
  (left out, with its name and count in the log and the model card); sub-models need
  ``min_events`` events in all, as in ``train fusion``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sarcoma_risk.clinical.encoder import DEFAULT_FEATURES, ClinicalEncoder
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.coxstats import CoxStats, NewtonResult, newton_steps
from sarcoma_risk.federated.histogram import warn_outside_grid
from sarcoma_risk.fusion.cox import CoxParameters
from sarcoma_risk.fusion.groups import Cutoff
from sarcoma_risk.fusion.model import CoxFusion, all_subsets
from sarcoma_risk.fusion.modelcheck import PERCENTILES
from sarcoma_risk.fusion.selection import PenalizerCV
from sarcoma_risk.fusion.submodel import DevelopmentFit, SubModel
from sarcoma_risk.fusion.table import CLINICAL, MODALITY_ORDER, submodel_name
from sarcoma_risk.survival.scores import score_column

log = logging.getLogger(__name__)

Query = Callable[[str, Mapping[str, Any]], Mapping[str, Mapping[str, Any]]]

_Z99 = 2.3263478740408408  # standard normal 99th percentile


class CentreRefused(InvalidInput):
    """No centre (or too few) could take part in a federated fit."""


@dataclass(frozen=True)
class FederatedFusionSettings:
    """Settings of a federated Cox fusion fit (see the module docstring for the choices)."""
    clinical_features: tuple[str, ...] = tuple(DEFAULT_FEATURES)
    modalities: tuple[str, ...] = tuple(MODALITY_ORDER)
    penalizer: float = 0.1
    min_events: int = 10  # per sub-model, pooled over centres (as train fusion)
    min_centre_events: int = 10  # per centre: fewer and the centre is refused
    min_level_count: int = 5
    min_centres: int = 2  # centres that must take part (after refusals and dropouts)
    max_newton_steps: int = 50
    tolerance: float = 1e-10
    time_step_months: float = 1.0
    risk_bin: float = 0.005
    risk_limit: float = 10.0


@dataclass
class FitLog:
    """What happened: centres used and refused, rounds of messages, Newton convergence per sub-model."""
    centres: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    dropped_out: list[str] = field(default_factory=list)
    rounds: int = 0
    newton: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"centres": list(self.centres), "refused": dict(self.refused), "dropped_out": list(self.dropped_out),
                "rounds": self.rounds, "newton": dict(self.newton)}


class CentreDroppedOut(Exception):
    """A centre stopped answering: the fit restarts without it (a fit must use one set of centres)."""


def _sum(replies: Mapping[str, Mapping[str, Any]], key: str) -> Any:
    return sum(np.asarray(r[key], dtype=float) for r in replies.values())


class _Session:
    def __init__(self, query: Query, settings: FederatedFusionSettings, fit_log: FitLog) -> None:
        self.query, self.settings, self.log = query, settings, fit_log
        self.base = {"features": json.dumps(list(settings.clinical_features)),
                     "modalities": json.dumps(list(settings.modalities)),
                     "min_level_count": int(settings.min_level_count)}

    def ask(self, op: str, **request: Any) -> dict[str, Mapping[str, Any]]:
        self.log.rounds += 1
        replies = dict(self.query(op, {**self.base, **request, "op": op}))
        if op == "summary":
            return replies
        missing = sorted(set(self.log.centres) - set(replies))
        if missing:
            raise CentreDroppedOut(missing)
        return {c: replies[c] for c in self.log.centres}


def fit_federated_fusion(query: Query, settings: FederatedFusionSettings = FederatedFusionSettings(),
                         *, max_restarts: int = 3):
    """Fit a CoxFusion from per-centre sums; returns ``(model, FitLog)``.

    ``query(op, request)`` sends a request to every centre still in the federation and returns the
    replies of those that answered, keyed by centre name. A centre that stops answering is left out
    and the fit starts again with the others (at most ``max_restarts`` times).
    """
    fit_log = FitLog()
    for _ in range(max_restarts + 1):
        try:
            return _fit(_Session(query, settings, fit_log), settings), fit_log
        except CentreDroppedOut as exc:
            gone = list(exc.args[0])
            log.warning("centre(s) %s stopped answering; the fit starts again without them", ", ".join(gone))
            fit_log.dropped_out.extend(gone)
    raise CentreRefused(f"federated fit: centres kept dropping out ({', '.join(fit_log.dropped_out)}); gave up after "
                        f"{max_restarts} restarts")


def _fit(session: _Session, settings: FederatedFusionSettings):
    fit_log = session.log
    subsets = all_subsets(settings.modalities)
    summaries = session.ask("summary", subsets=json.dumps([list(s) for s in subsets]))
    summaries = {c: r for c, r in summaries.items() if c not in fit_log.dropped_out}
    fit_log.centres, fit_log.refused = [], {}
    for centre, reply in sorted(summaries.items()):
        events = int(reply["n_events"])
        if events < settings.min_centre_events:
            why = (f"centre {centre}: {events} development event(s); a centre needs at least "
                   f"{settings.min_centre_events} to take part (--min-centre-events)")
            log.warning("refused %s", why)
            fit_log.refused[centre] = why
        else:
            fit_log.centres.append(centre)
    if len(fit_log.centres) < settings.min_centres:
        reasons = [*fit_log.refused.values(), *(f"centre {c}: dropped out" for c in fit_log.dropped_out)]
        raise CentreRefused(f"federated fit: {len(fit_log.centres)} centre(s) can take part "
                            f"({', '.join(fit_log.centres) or 'none'}); need at least {settings.min_centres}"
                            + "".join(f"\n  {r}" for r in reasons))
    replies = {c: summaries[c] for c in fit_log.centres}

    model = CoxFusion(clinical_features=settings.clinical_features, penalizers=(settings.penalizer,),
                      min_events=settings.min_events, min_level_count=settings.min_level_count,
                      modalities=settings.modalities)
    model._check_params()
    model.encoder_ = None
    model.ranges_ = {}
    if CLINICAL in settings.modalities:
        stats: dict[str, dict[str, Any]] = {"levels": {}, "numeric": {}}
        for reply in replies.values():
            for key, value in reply.items():
                parts = key.split("/")
                if parts[0] == "level":
                    counts = stats["levels"].setdefault(parts[1], {})
                    counts[parts[2]] = counts.get(parts[2], 0) + int(value)
                elif parts[0] == "numeric":
                    stats["numeric"][parts[1]] = stats["numeric"].get(parts[1], 0) + np.asarray(value, dtype=float)
        if stats["numeric"] or stats["levels"]:
            n_numeric = {name: (int(v[0]), float(v[1]), float(v[2])) for name, v in stats["numeric"].items()}
            model.encoder_ = ClinicalEncoder.from_statistics(settings.clinical_features, settings.min_level_count,
                                                             {"levels": stats["levels"], "numeric": n_numeric})
            for name, (n, total, squares) in n_numeric.items():
                mean, sd = _mean_sd(n, total, squares)
                model.ranges_[name] = (mean - _Z99 * sd, mean + _Z99 * sd)
    model.score_scaling_ = {}
    for modality in settings.modalities:
        if modality == CLINICAL:
            continue
        key = f"score/{modality}_score"
        n, total, squares = (_sum(replies, key) if all(key in r for r in replies.values()) else np.zeros(3))
        if n >= 2:
            mean, sd = _mean_sd(int(n), float(total), float(squares))
            if not sd > 0:
                raise InvalidInput(f"{modality}_score: constant in all {int(n)} development cases of the federation")
            model.score_scaling_[modality] = (mean, sd)
            model.ranges_[f"{modality}_score"] = (mean - _Z99 * sd, mean + _Z99 * sd)
    state = json.dumps({"encoder": model.encoder_.to_dict() if model.encoder_ is not None else None,
                        "score_scaling": {m: list(v) for m, v in model.score_scaling_.items()}})
    model.submodels_, model.skipped_ = {}, {}
    follow_up = max(float(r["follow_up_months"]) for r in replies.values())
    fitted = []
    for subset in subsets:
        name = submodel_name(subset)
        n, events = (int(v) for v in _sum(replies, f"subset/{name}"))
        if CLINICAL in subset and model.encoder_ is None or any(
                m != CLINICAL and m not in model.score_scaling_ for m in subset):
            model.skipped_[name] = "no development data for this combination of modalities"
        elif events < settings.min_events:
            model.skipped_[name] = (f"{n} development case(s) with {events} event(s) across centres; "
                                    f"needs at least {settings.min_events} events")
        else:
            fitted.append(tuple(subset))
    if fitted:
        model.submodels_ = _fit_submodels(session, settings, fitted, state, follow_up)
    if not model.submodels_:
        raise InvalidInput("no sub-model could be fitted:\n  " + "\n  ".join(f"{k}: {v}" for k, v in model.skipped_.items()))
    model.n_development_ = int(sum(int(r["n_cases"]) for r in replies.values()))
    model.events_development_ = int(sum(int(r["n_events"]) for r in replies.values()))
    model.available_development_ = {}
    for modality in settings.modalities:
        key = "subset/clinical" if modality == CLINICAL else f"score/{modality}_score"
        model.available_development_[modality] = int(_sum(replies, key)[0]) if all(key in r for r in replies.values()) else 0
    return model


def _mean_sd(n: int, total: float, squares: float) -> tuple[float, float]:
    mean = total / n
    return mean, math.sqrt(max(squares - n * mean * mean, 0.0) / (n - 1)) if n > 1 else 0.0


def _parts(questions: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One request asking every sub-model in ``questions`` (name -> its fields): the names, and each
    field under ``<name>/<field>``."""
    return {"submodels": json.dumps(list(questions)),
            **{f"{name}/{key}": value for name, fields in questions.items() for key, value in fields.items()}}


def _part(replies: Mapping[str, Mapping[str, Any]], name: str, key: str) -> Any:
    """A sub-model's field summed over centres."""
    return _sum(replies, f"{name}/{key}")


def _fit_submodels(session: _Session, settings: FederatedFusionSettings, subsets: Sequence[tuple[str, ...]],
                   state: str, follow_up: float) -> dict[str, SubModel]:
    """Fit the sub-models side by side: every round asks the centres about all of them at once (their
    moments; the Cox statistics of those whose Newton-Raphson fit is still running; their description
    at the final coefficients), so a fit takes as many rounds as its slowest sub-model, not their sum."""
    names = [submodel_name(s) for s in subsets]
    replies = session.ask("moments", state=state, **_parts({name: {} for name in names}))
    design: dict[str, dict[str, Any]] = {}
    for subset, name in zip(subsets, names):
        columns = _columns(state, subset, settings)
        total_n = int(sum(int(r[f"{name}/n"]) for r in replies.values()))
        sums, squares = _part(replies, name, "sum"), _part(replies, name, "sum_squares")
        mean = sums / total_n
        sd = np.sqrt(np.maximum(squares - total_n * mean * mean, 0.0) / (total_n - 1))
        keep = sd > 1e-12 * np.maximum(1.0, np.abs(mean))
        dropped = tuple(c for c, k in zip(columns, keep) if not k)
        columns = [c for c, k in zip(columns, keep) if k]
        if not columns:
            raise InvalidInput(f"sub-model {name}: every covariate is constant among its {total_n} development cases")
        design[name] = {"n": total_n, "columns": columns, "dropped": dropped, "mean": mean[keep], "sd": sd[keep]}

    fits = {name: newton_steps(len(d["columns"]), d["n"], settings.penalizer, max_steps=settings.max_newton_steps,
                               tolerance=settings.tolerance) for name, d in design.items()}
    betas = {name: next(fit) for name, fit in fits.items()}
    results: dict[str, NewtonResult] = {}
    while betas:
        answers = session.ask("cox", state=state, **_parts({
            name: {"columns": json.dumps(design[name]["columns"]), "mean": design[name]["mean"],
                   "std": design[name]["sd"], "beta": beta} for name, beta in betas.items()}))
        for name in list(betas):
            stats = CoxStats(float(_part(answers, name, "log_likelihood")), _part(answers, name, "gradient"),
                             _part(answers, name, "hessian"))
            try:
                betas[name] = fits[name].send(stats)
            except StopIteration as done:
                results[name] = done.value
                del betas[name]

    step = settings.time_step_months
    time_edges = np.arange(0.0, math.ceil(follow_up / step) * step + step / 2, step)
    risk_edges = np.round(np.arange(-settings.risk_limit, settings.risk_limit + settings.risk_bin / 2, settings.risk_bin), 9)
    for name, result in results.items():
        d = design[name]
        session.log.newton[name] = {"iterations": result.iterations, "converged": result.converged}
        if not result.converged:
            log.warning("sub-model %s: Newton-Raphson did not converge in %d steps", name, result.iterations)
        d["beta"] = result.beta / d["sd"]
    answers = session.ask("describe", state=state, time_edges=time_edges, risk_edges=risk_edges, **_parts({
        name: {"columns": json.dumps(d["columns"]), "beta": d["beta"], "means": d["mean"]} for name, d in design.items()}))
    return {name: _submodel(settings, subset, design[name], results[name], answers, time_edges, risk_edges)
            for subset, name in zip(subsets, names)}


def _submodel(settings: FederatedFusionSettings, subset: tuple[str, ...], design: Mapping[str, Any],
              result: NewtonResult, answers: Mapping[str, Mapping[str, Any]], time_edges: np.ndarray,
              risk_edges: np.ndarray) -> SubModel:
    """A sub-model from its Newton-Raphson result and the centres' description of it."""
    name = submodel_name(subset)
    se = np.sqrt(np.diag(result.covariance)) / design["sd"]
    events, exposure = _part(answers, name, "events"), _part(answers, name, "exposure")
    hazard = np.where(exposure > 0, events / np.where(exposure > 0, exposure, 1.0), 0.0)
    cumulative = np.cumsum(hazard)
    jumps = events > 0
    histogram = _part(answers, name, "risk_histogram")
    warn_outside_grid(f"sub-model {name} risk", _part(answers, name, "risk_outside"), risk_edges)
    percentiles = _percentiles(histogram, risk_edges, PERCENTILES)
    median = float(np.interp(50.0, PERCENTILES, percentiles))
    share_high = 1.0 - _cdf(histogram, risk_edges, median)
    concordant, comparable = _part(answers, name, "pairs")
    cox = CoxParameters(columns=design["columns"], beta=design["beta"], standard_errors=se, means=design["mean"],
                        baseline_times=time_edges[1:][jumps], baseline_cumulative_hazard=cumulative[jumps],
                        max_time=float(time_edges[-1]), penalizer=float(settings.penalizer),
                        log_likelihood=float(result.log_likelihood))
    cv = PenalizerCV(penalizer=float(settings.penalizer), metric="partial_likelihood", folds=0, seed=0,
                     grid=(float(settings.penalizer),), scores=(None,),
                     failed={"%g" % settings.penalizer: "not cross-validated: fixed for the federated fit"})
    cutoff = Cutoff(method="median", value=median, share_high=float(share_high), min_share=0.0, statistic=None)
    development = DevelopmentFit(int(design["n"]), int(events.sum()),
                                 float(concordant / comparable) if comparable > 0 else math.nan,
                                 tuple(float(v) for v in percentiles))
    return SubModel(tuple(subset), cox, design["dropped"], cv, cutoff, development)


def _columns(state: str, subset: Sequence[str], settings: FederatedFusionSettings) -> list[str]:
    encoder = json.loads(state)["encoder"]
    columns = ClinicalEncoder.from_dict(encoder).columns_ if CLINICAL in subset else []
    return columns + [score_column(m) for m in subset if m != CLINICAL]


def _cdf(histogram: np.ndarray, edges: np.ndarray, value: float) -> float:
    cumulative = np.r_[0.0, np.cumsum(histogram)] / histogram.sum()
    return float(np.interp(value, edges, cumulative))


def _percentiles(histogram: np.ndarray, edges: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Percentiles of values known by their histogram (linear within a bin)."""
    cumulative = np.r_[0.0, np.cumsum(histogram)] / histogram.sum()
    # the first and last occupied edges bound the values
    occupied = np.flatnonzero(histogram > 0)
    lo, hi = occupied[0], occupied[-1] + 1
    c, e = cumulative[lo:hi + 1], edges[lo:hi + 1]
    keep = np.r_[True, np.diff(c) > 0]
    return np.interp(np.asarray(q, dtype=float) / 100.0, c[keep], e[keep])
