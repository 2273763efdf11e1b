"""Figures of the validation report, drawn with matplotlib's Agg canvas.

Every function takes the figure's data (the dicts of :mod:`sarcoma_risk.fusion.evaluation`, which
also go into the report's JSON) and returns a :class:`matplotlib.figure.Figure` built without
pyplot, so no GUI backend is touched and nothing global changes; :func:`to_png` renders it.
"""

from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np
from lifelines import KaplanMeierFitter
from lifelines.plotting import add_at_risk_counts
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.fusion.table import input_sequences, modality_of, submodel_inputs
from sarcoma_risk.sequences import SET_LABELS

#: Display names and colours of the models, in the order they are drawn.
LABELS = {"clinical": "Clinical", "radiology": "Radiology", "pathology": "Pathology",
          "clinical+radiology+pathology": "Combined", "deployed": "As deployed"}
COLOURS = {"clinical": "#1b9e77", "radiology": "#d95f02", "pathology": "#7570b3",
           "clinical+radiology+pathology": "#e7298a", "deployed": "#333333"}
#: Approximate width of one label character on the nomogram's 0-100 point scale (fontsize 7).
CHAR_WIDTH = 1.25
METRIC_LABELS = {"harrell_c": "Harrell's C", "uno_c": "Uno's C", "mean_auc": "Mean time-dependent AUC",
                 "integrated_brier": "Integrated Brier score (lower is better)"}


def variable_label(name: str) -> str:
    """A nomogram row title: the clinical variable's description and unit, or the score's name."""

    if name in VARIABLES:
        v = VARIABLES[name]
        title = v.description.split(" (")[0]  # "FNCLCC grade (given, or computed ...)" -> "FNCLCC grade"
        return f"{title} ({v.unit})" if v.unit else title
    return name.replace("_", " ").capitalize()


def label(name: str) -> str:
    """The display name of a model: ``Radiology (T2FS only)``, ``Combined (T2FS + T1CE)``, ..."""
    if name in LABELS:
        return LABELS[name]
    inputs = submodel_inputs(name)
    sequences = next((input_sequences(i) for i in inputs if input_sequences(i)), None)
    base = "+".join(modality_of(i) for i in inputs)
    if sequences is None or base not in LABELS:
        return name
    return f"{LABELS[base]} ({SET_LABELS[sequences]})"


def colour(name: str) -> str:
    """A model's colour: the colour of its modalities (every radiology sequence set alike)."""
    return COLOURS.get(name, COLOURS.get("+".join(modality_of(i) for i in submodel_inputs(name)), "#666666"))


def new_figure(width: float, height: float):
    """A Figure attached to an Agg canvas (no pyplot)."""

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def plot_metric_comparison(metrics: Mapping[str, Any]):
    """Forest plot: each metric's estimate and 95% CI for each model."""
    names = list(metrics["models"])
    keys = [k for k in METRIC_LABELS if k in metrics["models"][names[0]]]
    fig = new_figure(4.0 * len(keys), 0.6 * len(names) + 1.6)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        for row, name in enumerate(names[::-1]):
            iv = metrics["models"][name][key]
            if iv["estimate"] is None:
                continue
            low = iv["low"] if iv["low"] is not None else iv["estimate"]
            high = iv["high"] if iv["high"] is not None else iv["estimate"]
            ax.errorbar(iv["estimate"], row, xerr=[[iv["estimate"] - low], [high - iv["estimate"]]], fmt="o",
                        color=colour(name), capsize=3)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([label(n) for n in names[::-1]] if i == 0 else [])
        ax.set_title(METRIC_LABELS[key], fontsize=9)
        if key != "integrated_brier":
            ax.axvline(0.5, color="#999999", lw=0.8, ls=":")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(f"Discrimination and accuracy, n = {metrics['n']} ({metrics['events']} events), "
                 f"95% bootstrap CI ({metrics['n_resamples']} resamples)", fontsize=10)
    return fig


def plot_time_auc(metrics: Mapping[str, Any]):
    """Cumulative/dynamic AUC at each horizon with 95% CI, one line per model."""
    horizons = metrics["horizons_months"]
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    names = list(metrics["models"])
    width = 0.8 * min(np.diff(horizons)) / max(len(names), 1) if len(horizons) > 1 else 1.0
    for j, name in enumerate(names):
        est, lo, hi = [], [], []
        for h in horizons:
            iv = metrics["models"][name][f"auc_{h:g}"]
            est.append(iv["estimate"] if iv["estimate"] is not None else np.nan)
            lo.append(iv["low"] if iv["low"] is not None else np.nan)
            hi.append(iv["high"] if iv["high"] is not None else np.nan)
        x = np.asarray(horizons) + (j - (len(names) - 1) / 2) * width
        est_a = np.asarray(est)
        ax.errorbar(x, est_a, yerr=[est_a - np.asarray(lo), np.asarray(hi) - est_a], fmt="o-", capsize=3,
                    color=colour(name), label=label(name))
    ax.axhline(0.5, color="#999999", lw=0.8, ls=":")
    ax.set_xticks(horizons)
    ax.set_xlabel("Months after surgery")
    ax.set_ylabel("Cumulative/dynamic AUC")
    ax.set_ylim(0.3, 1.0)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_kaplan_meier(time: np.ndarray, event: np.ndarray, groups: np.ndarray, comparison: Mapping[str, Any],
                      title: str, ticks: Sequence[float]):
    """Kaplan-Meier curves of the low/high risk groups with numbers at risk (lifelines)."""

    fig = new_figure(6.0, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    fitters = []
    for g, col in (("low", "#1f77b4"), ("high", "#d62728")):
        mask = groups == g
        if not mask.any():
            continue
        kmf = KaplanMeierFitter(label=f"{g} risk (n = {int(mask.sum())})").fit(time[mask], event[mask])
        kmf.plot_survival_function(ax=ax, color=col, ci_show=True, show_censors=True,
                                   censor_styles={"ms": 4, "marker": "|"})
        fitters.append(kmf)
    ax.set_xlim(0, max(ticks))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("Months after surgery")
    ax.set_ylabel("Recurrence-free probability")
    text = []
    if comparison.get("logrank_p") is not None:
        text.append(f"log-rank p = {comparison['logrank_p']:.2g}")
    if comparison.get("hazard_ratio") is not None:
        text.append(f"HR {comparison['hazard_ratio']:.2f} ({comparison['hr_low']:.2f}-{comparison['hr_high']:.2f})")
    if comparison.get("note"):
        text.append(comparison["note"])
    ax.text(0.02, 0.04, "\n".join(text), transform=ax.transAxes, fontsize=8, va="bottom")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper right")
    if fitters:
        add_at_risk_counts(*fitters, ax=ax, fig=fig, xticks=list(ticks), rows_to_show=["At risk", "Events"])
    return fig


def plot_calibration(calibration: Mapping[str, Mapping[str, Any]], title: str):
    """Predicted versus Kaplan-Meier observed recurrence-free probability, one panel per horizon."""
    horizons = list(calibration)
    fig = new_figure(3.6 * max(len(horizons), 1), 3.8)
    for i, h in enumerate(horizons):
        table = calibration[h]
        ax = fig.add_subplot(1, len(horizons), i + 1)
        ax.plot([0, 1], [0, 1], color="#999999", lw=0.8, ls=":")
        for g in table["groups"]:
            if g["observed"] is None:
                continue
            ax.errorbar(g["predicted"], g["observed"],
                        yerr=[[g["observed"] - g["observed_low"]], [g["observed_high"] - g["observed"]]],
                        fmt="o", color="#e7298a", capsize=2, ms=4)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"Predicted at {h} months")
        if i == 0:
            ax.set_ylabel("Observed (Kaplan-Meier)")
        mad = table.get("mean_abs_difference")
        ax.set_title(f"{h} months" + (f", mean |diff| {mad:.3f}" if mad is not None else ""), fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_decision_curve(curve: Mapping[str, Any]):
    """Net benefit against threshold probability, with treat-all and treat-none references."""
    fig = new_figure(5.5, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    pt = np.asarray(curve["thresholds"])
    for name, nb in curve["models"].items():
        ax.plot(pt, nb, color=colour(name), label=label(name))
    ax.plot(pt, curve["treat_all"], color="#999999", ls="--", label="Treat all")
    ax.plot(pt, curve["treat_none"], color="#000000", lw=0.8, label="Treat none")
    top = max([max(v) for v in curve["models"].values()] + [max(curve["treat_all"])] + [0.01])
    ax.set_ylim(-0.05 * top - 0.01, top * 1.1)
    ax.set_xlim(0, min(1.0, float(pt.max())))
    ax.set_xlabel(f"Threshold probability of recurrence by {curve['horizon_months']:g} months")
    ax.set_ylabel("Net benefit")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_nomogram(nomo: Mapping[str, Any], case: Mapping[str, Any] | None = None):
    """A classic nomogram: points axis, one axis per variable, total points, survival axes.

    With ``case`` (from :func:`sarcoma_risk.fusion.nomogram.case_points`) the case's points are marked
    on every axis and its total points across the survival axes, in red: a triangle on the axis, or,
    for a value beyond the axis, an outward arrow at its end with the value written beside it.
    """
    variables = nomo["variables"]
    survival = nomo["survival"]
    rows = 1 + len(variables) + 1 + len(survival)
    fig = new_figure(8.0, 0.55 * rows + 0.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_axis_off()
    y = rows
    max_total = max(nomo["total_points"]["ticks"])

    def axis_row(y: float, name: str, positions: Sequence[float], labels: Sequence[str], span: float) -> None:
        x = np.asarray(positions) / span * 100.0
        ax.plot([x.min(), x.max()], [y, y], color="black", lw=0.8)
        # Labels go above the axis, or below when they would overlap the previous one above; a label
        # that fits in neither lane (values with nearly the same points) is left out, its tick kept.
        last = {1: -np.inf, -1: -np.inf}
        last_width = {1: 0.0, -1: 0.0}
        for i in np.argsort(x, kind="mergesort"):
            width = CHAR_WIDTH * len(labels[i])
            lane = next((side for side in (1, -1) if x[i] - last[side] >= (width + last_width[side]) / 2 + 1.0), None)
            ax.plot([x[i], x[i]], [y, y + 0.12 * (lane or 1)], color="black", lw=0.8)
            if lane is None:
                continue
            last[lane], last_width[lane] = x[i], width
            ax.text(x[i], y + 0.18 * lane, labels[i], ha="center", va="bottom" if lane == 1 else "top", fontsize=7)
        ax.text(-4, y, name, ha="right", va="center", fontsize=8)

    def mark(y: float, x: float, low: float, high: float, side: str | None, value: str) -> float:
        # The axes cover the development range; a case beyond it is marked at the axis's end by an
        # outward arrow with its value, not drawn on a stretched axis (see fusion.nomogram).
        if side is None:
            ax.plot([x], [y], marker="v", color="#d62728", ms=8, zorder=5)
            return x
        end = low if side == "below" else high
        ax.plot([end], [y], marker="<" if side == "below" else ">", color="#d62728", ms=8, zorder=5)
        # Written inside the axis's span, so it never runs into the row titles on the left.
        ax.text(end + (2.0 if side == "below" else -2.0), y - 0.22, f"{value}: beyond the axis", color="#d62728",
                ha="left" if side == "below" else "right", va="top", fontsize=7)
        return end

    axis_row(y, "Points", np.arange(0, 101, 10), [f"{v}" for v in range(0, 101, 10)], 100.0)
    for v in variables:
        y -= 1
        labels = [f"{val:g}" if isinstance(val, float) else str(val) for val in v["values"]]
        axis_row(y, variable_label(v["name"]), v["points"], labels, 100.0)
        if case is not None:
            value = case["values"][v["name"]]
            mark(y, case["points"][v["name"]], min(v["points"]), max(v["points"]),
                 case.get("beyond", {}).get(v["name"]), f"{value:.3g}" if isinstance(value, float) else str(value))
    y -= 1
    ticks = nomo["total_points"]["ticks"]
    axis_row(y, "Total points", ticks, [f"{t:g}" for t in ticks], max_total)
    total_y = y
    for h, axis in survival.items():
        y -= 1
        if axis["total_points"]:
            axis_row(y, f"{h}-month recurrence-free", axis["total_points"],
                     [f"{p:g}" for p in axis["probabilities"]], max_total)
    if case is not None:
        x = mark(total_y, case["total_points"] / max_total * 100.0, min(ticks) / max_total * 100.0, 100.0,
                 case.get("beyond", {}).get("total_points"), f"{case['total_points']:.0f} points")
        ax.plot([x, x], [total_y, y - 0.3], color="#d62728", lw=1.0, ls="--", zorder=4)
        ax.text(x, y - 0.45, f"this case: {case['total_points']:.0f} points", color="#d62728", ha="center",
                va="top", fontsize=8)
    ax.set_xlim(-45, 105)
    ax.set_ylim(y - (1.2 if case is not None else 0.6), rows + 0.8)
    ax.set_title(f"Nomogram ({label(nomo['submodel'])} model)", fontsize=10)
    return fig
