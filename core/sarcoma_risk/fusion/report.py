"""The validation report: one self-contained HTML file, the figures as PNG, and a JSON of everything.

``write_report(evaluation, out_dir)`` writes

* ``report.html``: every figure embedded as a base64 PNG, tables of every figure's numbers, no
  external link, script or style sheet (it opens offline and can be mailed or archived as is);
* ``report.json``: the evaluation's numbers (``data``) and, for each figure, its title, PNG file,
  the PNG's sha256 and a JSON pointer to the numbers it shows (``figures``);
* ``figures/<id>.png``: the same figures as files, for a manuscript.

The layout follows the items of TRIPOD+AI a reader looks for: data and participants, outcome,
predictors, missing data, model development, performance with CIs, risk groups, calibration,
clinical utility, presentation of the model (nomogram), and what the numbers do not show.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from sarcoma_risk.errors import OutputError
from sarcoma_risk.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from sarcoma_risk.fusion import plots
from sarcoma_risk.fusion.evaluation import DEPLOYED, Evaluation, EvaluationBlock
from sarcoma_risk.fusion.plots import label, to_png
from sarcoma_risk.provenance import sha256_bytes, utc_now

REPORT_HTML, REPORT_JSON, FIGURES_DIR = "report.html", "report.json", "figures"


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN/inf to None (JSON has no NaN)."""

    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _ci(iv: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not iv or iv.get("estimate") is None:
        return "n/a"
    return f"{_fmt(iv['estimate'], digits)} ({_fmt(iv['low'], digits)}&ndash;{_fmt(iv['high'], digits)})"


def html_table(header: list[str], rows: list[list[str]]) -> str:
    """An HTML table; cells are inserted as given (escape text first)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metric_label(key: str, tau: float | None = None) -> str:
    """Readable name of a metric key of :mod:`sarcoma_risk.fusion.bootstrap`."""
    if key.startswith("auc_"):
        return f"Cumulative/dynamic AUC at {key[4:]} months"
    upto = f" up to {tau:g} months" if tau else ""
    names = {"harrell_c": "Harrell's C", "uno_c": "Uno's C" + (f" (&tau; = {tau:g} months)" if tau else ""),
             "mean_auc": "Mean time-dependent AUC", "integrated_brier": "Integrated Brier score (lower is better)",
             "calibration_slope": "Calibration slope (Cox coefficient of the risk; 1 is ideal, &lt; 1 too spread out)",
             "observed_expected": f"Calibration-in-the-large: observed / expected recurrences{upto} (1 is ideal)",
             "calibration_intercept": "Calibration intercept: log(observed / expected) (0 is ideal)"}
    return names.get(key, html.escape(key))


def _p_value(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "&lt; 0.001" if p < 0.001 else f"{p:.3f}"


def _metric_rows(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = list(metrics["models"])
    keys = list(metrics["models"][names[0]])
    header = ["Metric", *[label(n) for n in names]]
    tau = metrics.get("tau_months")
    rows = [[metric_label(k, tau), *[_ci(metrics["models"][n][k]) for n in names]] for k in keys]
    return header, rows


def _difference_rows(metrics: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Combined minus each single-modality model (paired bootstrap)."""

    diffs = metrics.get("differences") or {}
    names = list(diffs)
    if not names:
        return [], []
    keys = list(diffs[names[0]])
    flipped = {n: {k: _flip(diffs[n][k]) for k in keys} for n in names}
    header = ["Metric", *[f"Combined &minus; {label(n)}" for n in names]]
    tau = metrics.get("tau_months")
    return header, [[metric_label(k, tau), *[_ci(flipped[n][k]) for n in names]] for k in keys]


def _flip(iv: Mapping[str, Any]) -> dict[str, Any]:
    neg = lambda v: None if v is None else -v  # noqa: E731
    return {"estimate": neg(iv["estimate"]), "low": neg(iv["high"]), "high": neg(iv["low"])}


class _Figures:
    """Collects rendered figures: id, title, PNG bytes and the JSON pointer of their data."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, fig_id: str, title: str, fig, pointer: str) -> str:
        png = to_png(fig)
        self.items.append({"id": fig_id, "title": title, "png": png, "data": pointer})
        return figure_html(fig_id, title, png, f'<span class="ptr">(data: report.json {html.escape(pointer)})</span>')


def figure_html(fig_id: str, title: str, png: bytes, note: str = "") -> str:
    """A ``<figure>`` with the PNG embedded as a data URI (``title`` is its alt text and caption;
    ``note``, already HTML, follows the caption)."""
    encoded = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{html.escape(fig_id)}"><img alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{html.escape(title)} {note}</figcaption></figure>')


def _block_html(block: EvaluationBlock, prefix: str, figures: _Figures, km_inputs, heading: str,
                combined: str | None) -> str:
    """Metrics, risk groups, calibration and decision curves of one view (comparison or deployed)."""

    parts = [f"<h2>{heading}</h2><p>{html.escape(block.cases)}: n = {block.n}, "
             f"{block.events} recurrences.</p>"]
    metrics = block.metrics
    if metrics:
        parts.append("<h3>Discrimination, accuracy and calibration (estimate, 95% bootstrap CI)</h3>"
                     f"<p>Percentile intervals over {metrics['n_resamples']} bootstrap resamples of the cases, the "
                     "same resamples for every figure and model (calibration slope and intercept included).</p>")
        parts.append(html_table(*_metric_rows(metrics)))
        header, rows = _difference_rows(metrics)
        if rows:
            parts.append("<p>Paired differences on the same resamples:</p>" + html_table(header, rows))
        parts.append(figures.add(f"{prefix}-metrics", f"{heading}: metrics with 95% CI",
                                 plots.plot_metric_comparison(metrics), f"/data/{prefix}/metrics"))
        parts.append(figures.add(f"{prefix}-auc", f"{heading}: time-dependent AUC",
                                 plots.plot_time_auc(metrics), f"/data/{prefix}/metrics"))
    parts.append("<h3>Risk groups (cutoff fixed on the development set)</h3>")
    rows = []
    for name, rg in block.risk_groups.items():
        c = rg["comparison"]
        hr = (f"{_fmt(c['hazard_ratio'], 2)} ({_fmt(c['hr_low'], 2)}&ndash;{_fmt(c['hr_high'], 2)})"
              if c["hazard_ratio"] is not None else "n/a")
        rows.append([plots.label(name), f"{c['n']['low']} / {c['n']['high']}",
                     f"{c['events']['low']} / {c['events']['high']}", _p_value(c["logrank_p"]), hr,
                     html.escape(c.get("note") or "")])
        time, event, groups = km_inputs[f"{prefix}:{name}"]
        ticks = rg["at_risk"]["times_months"]
        parts.append(figures.add(f"{prefix}-km-{name}", f"Kaplan-Meier by risk group: {plots.label(name)}",
                                 plots.plot_kaplan_meier(time, event, groups, c, f"{plots.label(name)} model", ticks),
                                 f"/data/{prefix}/risk_groups/{name}"))
    parts.append(html_table(["Model", "n low / high", "events low / high", "log-rank p", "HR high vs low (95% CI)", "note"],
                        rows))
    calibration_names = [n for n in (combined, DEPLOYED) if n in block.calibration]
    for name in calibration_names:
        if block.calibration[name]:
            parts.append(figures.add(f"{prefix}-calibration-{name}", f"Calibration: {plots.label(name)} model",
                                     plots.plot_calibration(block.calibration[name],
                                                            f"Calibration, {plots.label(name)} model"),
                                     f"/data/{prefix}/calibration/{name}"))
    for h, curve in block.decision_curves.items():
        parts.append(figures.add(f"{prefix}-decision-{h}", f"Decision curve at {h} months",
                                 plots.plot_decision_curve(curve), f"/data/{prefix}/decision_curves/{h}"))
    return "\n".join(parts)


def _sequence_sets_html(sets: Mapping[str, Any] | None) -> str:
    """The radiology-only and combined sub-models of each MRI sequence set, side by side."""
    if not sets:
        return ""
    return "\n".join([
        "<h2>Radiology models by MRI sequence set</h2>",
        f"<p>One radiology model per sequence set, each with its own fusion sub-models; "
        f"{html.escape(sets['cases'])}: n = {sets['n']}, {sets['events']} recurrences.</p>",
        html_table(*_metric_rows(sets["metrics"]))])


def _oracle_html(oracle: Mapping[str, Any] | None) -> str:
    if not oracle:
        return ""
    rows = [[html.escape(k), _fmt(v)] for k, v in (oracle.get("from_truth_json") or {}).items()]
    parts = ["<h2>Phantom cohort: oracle C-index</h2>",
             "<p>The oracle ranks cases by the true linear predictor of the generative model; no model can "
             "beat it on this cohort.</p>", html_table(["Group (truth.json)", "Oracle Harrell's C"], rows)]
    if "combined_to_oracle_ratio" in oracle:
        parts.append(html_table(["On the comparison cases", "Estimate (95% CI)"], [
            ["Oracle Harrell's C", _ci(oracle["oracle_harrell_c"])],
            ["Combined Harrell's C", _ci(oracle["combined_harrell_c"])],
            ["Combined / oracle", _ci(oracle["combined_to_oracle_ratio"])]]))
    if oracle.get("note"):
        parts.append(f"<p>{html.escape(oracle['note'])}</p>")
    return "\n".join(parts)


def _scores_statement(honest: bool | None) -> str:
    """What the report may say about the imaging scores the weights were fitted on."""
    if honest is True:
        return "imaging score weights fitted on out-of-fold development scores (cross-fitting)"
    if honest is False:
        return ("imaging score weights fitted on development scores that were NOT all out-of-fold "
                "(--allow-in-sample-scores): the imaging weights and the development figures are optimistic")
    return ("imaging score weights fitted on the development scores given to train fusion (their sources are "
            "recorded in the weights manifest, not in this model file)")


def _model_html(model: Mapping[str, Any], honest: bool | None) -> str:
    available = ", ".join(f"{html.escape(k)} {v}" for k, v in model["development"].get("available", {}).items())
    parts = ["<h2>Model development</h2>",
             f"<p>Development cases: {model['development']['n']} ({model['development']['events']} recurrences; "
             f"with each modality: {available}). "
             "One Cox sub-model per available subset of modalities; ridge penalizer chosen by "
             f"{model['params']['cv_folds']}-fold cross-validation ({html.escape(model['params']['cv_metric'])}); "
             f"{html.escape(_scores_statement(honest))}; risk-group cutoff "
             f"({html.escape(model['params']['cutoff'])}) fixed on the development cases.</p>"]
    for name, sub in model["submodels"].items():
        rows = [[html.escape(c), _fmt(v["coef"]), _fmt(v["hazard_ratio"]), _fmt(v["se"])]
                for c, v in sub["coefficients"].items()]
        parts.append(f"<h3>{html.escape(label(name))} ({html.escape(name)}): n = {sub['n']}, events = {sub['events']}, "
                     f"penalizer {sub['penalizer']:g}, cutoff {sub['cutoff']['value']:.3f}</h3>")
        parts.append(html_table(["Covariate (standardized / vs reference)", "coef", "HR", "SE"], rows))
    if model["skipped"]:
        parts.append("<p>Sub-models not fitted: " + "; ".join(f"{html.escape(k)}: {html.escape(v)}"
                                                             for k, v in model["skipped"].items()) + "</p>")
    return "\n".join(parts)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.6em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#f3f3f3}figure{margin:1em 0}img{max-width:100%}figcaption{font-size:0.85em;color:#555}
.ptr{color:#999}.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:0.5em 1em}"""


def render_html(evaluation: Evaluation, figures: _Figures, *, title: str, model_info: Mapping[str, Any]) -> str:
    cohort = evaluation.cohort
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             "<p class=\"warn\">Research software: no clinical validation; not for decisions about patients.</p>",
             "<h2>Data and participants</h2>",
             html_table(["Item", "Value"], [
                 ["Evaluated split", _fmt(evaluation.split)],
                 ["Cases / recurrences", f"{cohort['n']} / {cohort['events']}"],
                 ["Centres", html.escape(", ".join(f"{k}: {v}" for k, v in cohort["centres"].items()))],
                 ["Median follow-up (reverse Kaplan-Meier), months", _fmt(cohort["median_follow_up_months"], 1)],
                 ["Modalities available", html.escape(", ".join(f"{k}: {v}" for k, v in
                                                                 cohort["modalities_available"].items()))],
                 ["Horizons, months", html.escape(", ".join(f"{h:g}" for h in evaluation.horizons_months))],
                 ["Model", html.escape(", ".join(f"{k}: {v}" for k, v in model_info.items()
                                                 if k != "honest_out_of_fold"))],
             ]),
             "<p>Outcome: recurrence after surgery (time in months, censored at last follow-up). Predictors: the "
             "clinical variables of the model, the radiology score and the pathology score. Missing modalities: each "
             "case is scored by the sub-model of the modalities it has (the <em>as deployed</em> view); the "
             "side-by-side comparison uses the cases that have every modality.</p>"]
    if evaluation.comparison:
        parts.append(_block_html(evaluation.comparison, "comparison", figures, evaluation.km_inputs,
                                 "Clinical, radiology, pathology and combined models side by side",
                                 evaluation.combined))
    parts.append(_block_html(evaluation.deployed, "deployed", figures, evaluation.km_inputs,
                             "Every case, as deployed", evaluation.combined))
    parts.append(_sequence_sets_html(evaluation.sequence_sets))
    parts.append("<h2>Presentation of the model</h2>")

    parts.append(figures.add("nomogram", f"Nomogram of the {plots.label(evaluation.nomogram['submodel'])} model",
                             plots.plot_nomogram(evaluation.nomogram), "/data/nomogram"))
    parts.append(_oracle_html(evaluation.oracle))
    honest = model_info.get("honest_out_of_fold")
    parts.append(_model_html(evaluation.model, honest))
    if honest is False:
        parts.insert(2, f"<p class=\"warn\">{html.escape(_scores_statement(False).capitalize())}.</p>")
    notes = list(evaluation.notes)
    notes.append("Uno's C is truncated at the last horizon; the time-dependent AUC and Brier score use inverse "
                 "probability of censoring weights estimated on the evaluated cases.")
    notes.append("The maximally selected log-rank cutoff (if used) was chosen on the development set; only the "
                 "log-rank test on the evaluated cases above is a fair test of the groups.")
    parts.append("<h2>Notes and limitations</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(evaluation: Evaluation, out_dir: str | Path, *, title: str = "SarcomaRisk validation report",
                 model_info: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write report.html, report.json and figures/*.png into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    try:
        (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot create the report folder ({exc.strerror})") from None
    figures = _Figures()
    page = render_html(evaluation, figures, title=title, model_info=dict(model_info or {}))
    index = []
    for item in figures.items:
        name = f"{FIGURES_DIR}/{item['id']}.png"
        atomic_write_bytes(out / name, item["png"])
        index.append({"id": item["id"], "title": item["title"], "png": name, "sha256": sha256_bytes(item["png"]),
                      "data": item["data"]})
    data = evaluation.to_dict()
    document = {"format": data["format"], "title": title, "created_utc": utc_now(),
                "model": dict(model_info or {}), "figures": index, "data": jsonable(data)}
    atomic_write_text(out / REPORT_HTML, page)  # a reader never sees half a page, nor a rerun half of one
    atomic_write_json(out / REPORT_JSON, document)
    return {"html": out / REPORT_HTML, "json": out / REPORT_JSON, "figures": out / FIGURES_DIR}
