"""What one centre computes for the federated Cox fusion: sums over its own cases, never rows.

Each function takes the centre's development table (one row per case, as
:func:`sarcoma_risk.fusion.table.table_from_manifest` builds it) and a request from the server,
and returns a flat mapping of names to numbers or numpy arrays whose sizes depend on the model
(features, design columns, a fixed grid), never on the number of cases. The design matrix is built
by :class:`~sarcoma_risk.fusion.model.CoxFusion` itself, so a federated model encodes cases exactly
as a pooled one.

Requests (``op``):

* ``summary``: numbers of cases and events; the encoder's sufficient statistics (level counts,
  numeric sums); per imaging score its count, sum and sum of squares; per sub-model its cases and
  events.
``moments``, ``cox`` and ``describe`` ask about several sub-models at once (the server fits them side
by side): ``submodels`` lists their names, and each one's fields and answers are named
``<sub-model>/<field>`` (e.g. ``clinical+radiology/beta``, ``clinical+radiology/gradient``).

* ``moments``: per design column of a sub-model its sum and sum of squares (pooled means and SDs).
* ``cox``: the Efron log partial likelihood, gradient and Hessian at the server's coefficients.
* ``describe``: at the final coefficients, the events and the exposure (time at risk times relative
  hazard) per bin of a fixed month grid (the baseline hazard), a histogram of the risk on a fixed
  grid (percentiles and the median cutoff) with the numbers of risks below and above that grid,
  and Harrell's concordant and comparable pair counts.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np

from sarcoma_risk.clinical.encoder import ClinicalEncoder
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.coxstats import efron_stats
from sarcoma_risk.federated.histogram import grid_histogram
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.fusion.table import CLINICAL, DURATION, EVENT, submodel_name
from sarcoma_risk.survival.scores import score_column

Payload = dict[str, Any]


def _shell(request: Mapping[str, Any]):
    """A CoxFusion holding the server's encoder and score scaling (the state it needs to encode rows)."""
    model = CoxFusion(clinical_features=json.loads(request["features"]), min_level_count=int(request["min_level_count"]),
                      modalities=json.loads(request["modalities"]))
    model._check_params()
    state = json.loads(request.get("state", "{}"))
    model.encoder_ = ClinicalEncoder.from_dict(state["encoder"]) if state.get("encoder") else None
    model.score_scaling_ = {m: (float(v[0]), float(v[1])) for m, v in state.get("score_scaling", {}).items()}
    return model


def _rows(table, model, subset: tuple[str, ...]):
    clinical, scores, available = model._availability(table)
    rows = np.flatnonzero(np.logical_and.reduce([available[m] for m in subset]))
    return clinical, scores, rows


def _subset(request: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(request["subset"]).split("+"))


def _design(table, request: Mapping[str, Any]):
    model = _shell(request)
    subset = _subset(request)
    clinical, scores, rows = _rows(table, model, subset)
    x = model._design(clinical, scores, rows, subset)
    if "columns" in request:
        x = x.reindex(columns=json.loads(request["columns"]))
    time = np.asarray(table[DURATION], dtype=float)[rows]
    event = np.asarray(table[EVENT], dtype=float)[rows] > 0
    return x.to_numpy(dtype=float), time, event


def summary(table, request: Mapping[str, Any]) -> Payload:
    model = _shell(request)
    event = np.asarray(table[EVENT], dtype=float) > 0
    clinical, scores, available = model._availability(table)
    time = np.asarray(table[DURATION], dtype=float)
    # the follow-up in whole months (a grid bound for the baseline hazard, not a case's time)
    out: Payload = {"n_cases": int(len(table)), "n_events": int(event.sum()),
                    "follow_up_months": float(np.ceil(time.max())) if time.size else 0.0}
    records = [c for c in clinical if c is not None]
    if CLINICAL in model.modalities and records:
        stats = ClinicalEncoder(model.clinical_features, model.min_level_count).sufficient_statistics(records)
        for name, counts in stats["levels"].items():
            for level, count in counts.items():
                out[f"level/{name}/{level}"] = int(count)
        for name, (n, total, squares) in stats["numeric"].items():
            out[f"numeric/{name}"] = np.array([n, total, squares], dtype=float)
    for modality, values in scores.items():
        have = values[np.isfinite(values)]
        out[f"score/{score_column(modality)}"] = np.array([have.size, have.sum(), (have * have).sum()], dtype=float)
    for subset in json.loads(request["subsets"]):
        rows = np.logical_and.reduce([available[m] for m in subset])
        out[f"subset/{submodel_name(subset)}"] = np.array([rows.sum(), event[rows].sum()], dtype=float)
    return out


def moments(table, request: Mapping[str, Any]) -> Payload:
    x, _, _ = _design(table, request)
    return {"n": int(x.shape[0]), "sum": x.sum(axis=0), "sum_squares": (x * x).sum(axis=0)}


def cox(table, request: Mapping[str, Any]) -> Payload:
    x, time, event = _design(table, request)
    mean, std = np.asarray(request["mean"], dtype=float), np.asarray(request["std"], dtype=float)
    stats = efron_stats((x - mean) / std, time, event, np.asarray(request["beta"], dtype=float))
    return {"log_likelihood": stats.log_likelihood, "gradient": stats.gradient, "hessian": stats.hessian}


def describe(table, request: Mapping[str, Any]) -> Payload:
    x, time, event = _design(table, request)
    risk = (x - np.asarray(request["means"], dtype=float)) @ np.asarray(request["beta"], dtype=float)
    edges = np.asarray(request["time_edges"], dtype=float)
    # time at risk inside each bin of the grid, times the relative hazard
    inside = np.clip(time[:, None], edges[None, :-1], edges[None, 1:]) - edges[None, :-1]
    exposure = np.exp(risk) @ inside
    events = np.histogram(time[event], bins=edges)[0].astype(float)
    risk_edges = np.asarray(request["risk_edges"], dtype=float)
    histogram, outside = grid_histogram(risk, risk_edges)
    concordant, comparable = harrell_pairs(time, event, risk)
    return {"events": events, "exposure": exposure, "risk_histogram": histogram, "risk_outside": outside,
            "pairs": np.array([concordant, comparable], dtype=float)}


def harrell_pairs(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> tuple[float, float]:
    """Concordant (ties in risk count 1/2) and comparable pairs of Harrell's C within the centre."""
    concordant = comparable = 0.0
    for i in np.flatnonzero(event):
        later = time > time[i]
        comparable += later.sum()
        concordant += (risk[later] < risk[i]).sum() + 0.5 * (risk[later] == risk[i]).sum()
    return float(concordant), float(comparable)


OPERATIONS = {"summary": summary, "moments": moments, "cox": cox, "describe": describe}


def answer(table, request: Mapping[str, Any]) -> Payload:
    """Dispatch a server request to the computation it names (for each sub-model it asks about)."""
    op = request.get("op")
    if op not in OPERATIONS:
        raise InvalidInput(f"federated request: op {op!r}; expected one of {', '.join(OPERATIONS)}")
    if op == "summary":
        return summary(table, request)
    try:
        names = json.loads(request["submodels"])
    except (KeyError, TypeError, ValueError):
        names = None
    if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
        raise InvalidInput(f"federated request {op!r}: field 'submodels' must be a JSON list of sub-model names")
    shared = {key: value for key, value in request.items() if "/" not in key}
    out: Payload = {}
    for name in names:
        prefix = f"{name}/"
        fields = {key[len(prefix):]: value for key, value in request.items() if key.startswith(prefix)}
        reply = OPERATIONS[op](table, {**shared, **fields, "subset": name})
        out.update({prefix + key: value for key, value in reply.items()})
    return out
