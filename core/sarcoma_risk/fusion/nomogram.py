"""Nomogram of a Cox sub-model: points per variable, total points, survival at each horizon.

Each variable's contribution to the linear predictor is ``beta * (x - mean) / sd`` for numeric
inputs and the level's coefficient for categories (0 at the reference level). A numeric axis covers
its development 1st-99th percentile range, rounded outwards to round ticks, so every value in that
range is drawn where it is (rounding inwards once put a pathology score of -0.048 at the axis's 0). The variable with the widest contribution range spans 0-100
points; the others are scaled alike. Total points map back to the log relative hazard and to the
survival probability at each horizon, ``S(h) = exp(-H0(h) * exp(risk))``.

A case's value beyond an axis (outside the development range) is not drawn on a stretched axis:
the nomogram is the model's fixed chart, the same for every case, and stretching one axis for one
case would change its points scale or run into the labels. :func:`case_points` says which values
lie beyond their axis (``beyond``), their points are computed from the real value all the same
(so the total and the survival read-out are right), and the plot marks them at the axis's end with
an outward arrow and the value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.submodel import SubModel
from sarcoma_risk.fusion.table import CLINICAL, input_column, input_of_column

#: Survival probabilities marked on the survival axes.
SURVIVAL_TICKS = (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05)


def nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick values whose span covers [low, high] (steps of 1, 2 or 5 times a power of ten).

    The first tick is at or below ``low`` and the last at or above ``high``.
    """
    if not high > low:
        return [float(low)]
    raw = (high - low) / max(target - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    return [float(round(i * step, 10)) for i in range(first, last + 1)]


def _variables(model, sub: SubModel) -> list[dict[str, Any]]:
    """Each input variable with its tick values and linear-predictor contributions."""
    cox = sub.cox
    beta = dict(zip(cox.columns, cox.beta))
    out = []
    if CLINICAL in sub.modalities:
        enc = model.encoder_
        for name in enc.features:
            if name in enc.numeric_:
                mean, sd = enc.numeric_[name]
                ticks = nice_ticks(*model.ranges_[name])
                contrib = [beta.get(name, 0.0) * (t - mean) / sd for t in ticks]
                out.append({"name": name, "kind": "numeric", "values": ticks, "contribution": contrib})
            else:
                levels = [enc.reference_[name], *enc.levels_[name]]
                contrib = [0.0] + [beta.get(f"{name}[{lv}]", 0.0) for lv in enc.levels_[name]]
                out.append({"name": name, "kind": "categorical", "values": levels, "contribution": contrib})
    for name in sub.modalities:
        if name == CLINICAL:
            continue
        column = input_column(name)
        mean, sd = model.score_scaling_[name]
        ticks = nice_ticks(*model.ranges_[column])
        out.append({"name": column, "kind": "numeric", "values": ticks,
                    "contribution": [beta.get(column, 0.0) * (t - mean) / sd for t in ticks]})
    return out


def nomogram(model, submodel: str) -> dict[str, Any]:
    """The nomogram of one fitted sub-model as plain data (what :func:`plots.plot_nomogram` draws).

    Returns
    -------
    dict
        ``{"submodel", "variables": [{"name", "kind", "values", "points"}], "points_per_unit_risk",
        "total_points": {"ticks", "risk"}, "survival": {"<h>": {"probabilities", "total_points"}}}``
    """
    if submodel not in model.submodels_:
        raise InvalidInput(f"nomogram: no sub-model {submodel!r}; fitted: {', '.join(model.submodels_)}")
    sub = model.submodels_[submodel]
    cox = sub.cox
    variables = _variables(model, sub)
    spans = [max(v["contribution"]) - min(v["contribution"]) for v in variables]
    widest = max(spans)
    if not widest > 0:
        raise InvalidInput(f"nomogram: every coefficient of {submodel} is 0; nothing to draw")
    scale = 100.0 / widest
    minimum = sum(min(v["contribution"]) for v in variables)
    # Contributions add up to beta . z over the design columns z; the Cox model centres z on its
    # development means m, so risk = sum of contributions - beta . m.
    offset = float(np.dot(cox.beta, cox.means))
    for v in variables:
        low = min(v["contribution"])
        v["points"] = [(c - low) * scale for c in v["contribution"]]
    max_total = sum(max(v["points"]) for v in variables)
    total_ticks = nice_ticks(0.0, max_total, 8)
    to_risk = lambda points: points / scale + minimum - offset  # noqa: E731
    survival = {}
    for h in model.horizons:
        h0 = float(cox.cumulative_hazard_at([h])[0])
        if not (math.isfinite(h0) and h0 > 0):
            continue
        probs, points = [], []
        for p in SURVIVAL_TICKS:
            risk = math.log(-math.log(p) / h0)
            total = (risk + offset - minimum) * scale
            if 0.0 <= total <= max_total:
                probs.append(p)
                points.append(total)
        survival[f"{h:g}"] = {"probabilities": probs, "total_points": points}
    return {"submodel": submodel, "variables": variables, "points_per_unit_risk": scale,
            "total_points": {"ticks": total_ticks, "risk": [to_risk(t) for t in total_ticks]},
            "survival": survival}



def case_points(model, nomo: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """Where one case sits on a nomogram of ``model``: its value and points on each axis, its total.

    Parameters
    ----------
    model : CoxFusion
        The fitted model ``nomo`` was drawn from (:func:`nomogram`).
    nomo : dict
        The nomogram of the sub-model that scores the case.
    row : dict
        The case as a fusion-table row: clinical values by name, the imaging score columns
        (``radiology_score[<set>]``, ``pathology_score``; e.g. :func:`sarcoma_risk.fusion.table.row_from_record`).

    Returns
    -------
    dict
        ``{"values": {name: value}, "points": {name: points}, "total_points", "risk", "beyond"}``;
        ``risk`` is the log relative hazard the total points stand for (the sub-model's prediction
        for the case). ``beyond`` maps each axis the case lies beyond (a variable's name, or
        ``"total_points"``) to ``"below"`` or ``"above"``; the points of such a value are computed
        from the value itself and lie beyond the axis's ends.
    """
    sub = model.submodels_[nomo["submodel"]]
    beta = dict(zip(sub.cox.columns, sub.cox.beta))
    enc = model.encoder_
    values, points, beyond = {}, {}, {}
    for v in nomo["variables"]:
        name = v["name"]
        value = row.get(name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise InvalidInput(f"nomogram: the case has no {name}; it cannot be placed on the {nomo['submodel']} nomogram")
        if v["kind"] == "categorical":
            # As the encoder reads it: a grade stored as 2.0 is level "2"; a level without a column is the reference.
            level = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
            contribution = beta.get(f"{name}[{level}]", 0.0)
        elif enc is not None and name in enc.numeric_:
            mean, sd = enc.numeric_[name]
            contribution = beta.get(name, 0.0) * (float(value) - mean) / sd
        else:  # an imaging score column
            mean, sd = model.score_scaling_[input_of_column(name)]
            contribution = beta.get(name, 0.0) * (float(value) - mean) / sd
        values[name] = value
        points[name] = (contribution - min(v["contribution"])) * nomo["points_per_unit_risk"]
        if v["kind"] == "numeric":
            side = _side(float(value), min(v["values"]), max(v["values"]))
            if side is not None:
                beyond[name] = side
    total = float(sum(points.values()))
    ticks, risks = nomo["total_points"]["ticks"], nomo["total_points"]["risk"]
    side = _side(total, min(ticks), max(ticks))
    if side is not None:
        beyond["total_points"] = side
    return {"values": values, "points": points, "total_points": total,
            "risk": risks[0] + (total - ticks[0]) / nomo["points_per_unit_risk"], "beyond": beyond}


def _side(value: float, low: float, high: float) -> str | None:
    """``"below"`` or ``"above"`` when ``value`` lies outside [low, high] (beyond rounding), else None."""
    tolerance = 1e-9 * max(1.0, abs(low), abs(high))
    if value < low - tolerance:
        return "below"
    if value > high + tolerance:
        return "above"
    return None
