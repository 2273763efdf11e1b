"""Calibration tables, decision curves and the nomogram, checked against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import KaplanMeierFitter

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fusion.calibration import calibration_table
from sarcoma_risk.fusion.decision import decision_curve, net_benefit
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.fusion.nomogram import nomogram

from .fusion_synthetic import make_table


def true_model_cohort(n: int = 600, seed: int = 0):
    """Exponential times with known survival S(t) = exp(-t * 0.02 * exp(lp)); censoring at 100 months."""
    rng = np.random.default_rng(seed)
    lp = rng.normal(size=n)
    event_time = rng.exponential(1.0 / (0.02 * np.exp(lp)))
    censor = rng.uniform(70, 100, n)
    return np.minimum(event_time, censor), event_time <= censor, lp


def km_at(time, event, t):
    return float(KaplanMeierFitter().fit(time, event).survival_function_at_times(t).iloc[0])


def test_true_survival_is_calibrated_and_groups_match_kaplan_meier():
    time, event, lp = true_model_cohort()
    predicted = np.exp(-36.0 * 0.02 * np.exp(lp))
    table = calibration_table(time, event, predicted, 36.0)
    assert len(table["groups"]) == 10 and sum(g["n"] for g in table["groups"]) == time.size
    assert table["mean_abs_difference"] < 0.06
    order = np.argsort(predicted, kind="mergesort")
    lowest = order[:60]
    assert table["groups"][0]["observed"] == pytest.approx(km_at(time[lowest], event[lowest], 36.0))
    assert table["groups"][0]["observed_low"] <= table["groups"][0]["observed"] <= table["groups"][0]["observed_high"]
    miscalibrated = calibration_table(time, event, predicted ** 3, 36.0)
    assert miscalibrated["mean_abs_difference"] > 3 * table["mean_abs_difference"]


def test_net_benefit_uses_kaplan_meier_among_the_treated():
    time, event, lp = true_model_cohort(n=300, seed=1)
    risk = 1.0 - np.exp(-24.0 * 0.02 * np.exp(lp))
    pt = 0.3
    treated = risk >= pt
    s = km_at(time[treated], event[treated], 24.0)
    share = treated.mean()
    expected = (1 - s) * share - s * share * pt / (1 - pt)
    assert net_benefit(time, event, risk, 24.0, [pt])[0] == pytest.approx(expected, abs=1e-12)
    curve = decision_curve(time, event, {"model": risk}, 24.0)
    s_all = km_at(time, event, 24.0)
    expected_all = (1 - s_all) - s_all * np.asarray(curve["thresholds"]) / (1 - np.asarray(curve["thresholds"]))
    np.testing.assert_allclose(curve["treat_all"], expected_all, atol=1e-12)
    assert net_benefit(time, event, np.ones(time.size), 24.0, curve["thresholds"]) == pytest.approx(curve["treat_all"])
    # A useful model beats both references over a range of thresholds.
    model = np.asarray(curve["models"]["model"])
    assert (model[9:40] > np.maximum(expected_all[9:40], 0)).all()
    with pytest.raises(InvalidInput, match="strictly between 0 and 1"):
        net_benefit(time, event, risk, 24.0, [0.0])


def test_nomogram_points_add_up_to_the_model_risk():
    table, _ = make_table(200, seed=4)
    model = CoxFusion(penalizers=(0.1,), cv_folds=2, modalities=("clinical", "radiology", "pathology")).fit(table)
    name = "clinical+radiology+pathology"
    nomo = nomogram(model, name)
    assert max(max(v["points"]) for v in nomo["variables"]) == pytest.approx(100.0)
    by_name = {v["name"]: v for v in nomo["variables"]}
    # A case whose values sit on tick marks: read its points off the nomogram.
    case = table.iloc[:1].copy()
    chosen = {}
    for v in nomo["variables"]:
        chosen[v["name"]] = v["values"][1] if len(v["values"]) > 1 else v["values"][0]
    for column, value in chosen.items():
        case.iloc[0, case.columns.get_loc(column)] = value
    total = sum(by_name[n]["points"][by_name[n]["values"].index(chosen[n])] for n in chosen)
    risk_from_points = total / nomo["points_per_unit_risk"] + sum(min(v["contribution"]) for v in nomo["variables"]) \
        - float(np.dot(model.submodels_[name].cox.beta, model.submodels_[name].cox.means))
    assert risk_from_points == pytest.approx(float(model.predict(case, submodel=name)["risk"].iloc[0]), abs=1e-9)
    for axis in nomo["survival"].values():
        assert axis["probabilities"] == sorted(axis["probabilities"], reverse=True)
    with pytest.raises(InvalidInput, match="no sub-model"):
        nomogram(model, "genomics")


def test_case_points_place_any_case_where_its_predicted_risk_is_and_the_plot_marks_it():
    from sarcoma_risk.fusion.nomogram import case_points
    from sarcoma_risk.fusion.plots import plot_nomogram, to_png

    table, _ = make_table(200, seed=4)
    model = CoxFusion(penalizers=(0.1,), cv_folds=2, modalities=("clinical", "radiology", "pathology")).fit(table)
    for name in ("clinical+radiology+pathology", "clinical", "radiology+pathology"):
        nomo = nomogram(model, name)
        predicted = model.predict(table.iloc[:25], submodel=name)["risk"]
        for case_id, risk in predicted.items():
            row = table.loc[case_id].to_dict()
            points = case_points(model, nomo, row)
            assert points["risk"] == pytest.approx(float(risk), abs=1e-9)
            assert points["total_points"] == pytest.approx(sum(points["points"].values()))
            assert set(points["points"]) == {v["name"] for v in nomo["variables"]}
    figure = plot_nomogram(nomo, case=points)
    marks = [line for line in figure.axes[0].lines if line.get_marker() == "v"]
    assert len(marks) == len(nomo["variables"]) + 1  # one per variable axis and one on the total points
    assert to_png(figure)[:4] == b"\x89PNG"
    row["pathology_score"] = float("nan")
    with pytest.raises(InvalidInput, match="no pathology_score"):
        case_points(model, nomo, row)


def test_a_score_inside_the_development_range_is_drawn_where_it_is_not_clipped_to_the_first_tick():
    from sarcoma_risk.fusion.nomogram import case_points, nice_ticks

    # The shipped model's pathology range: ticks rounded inwards started at 0 and drew -0.048 at 0.
    ticks = nice_ticks(-0.44031081, 1.24423763)
    assert ticks[0] <= -0.44031081 and ticks[-1] >= 1.24423763
    table, _ = make_table(200, seed=4)
    model = CoxFusion(penalizers=(0.1,), cv_folds=2, modalities=("clinical", "radiology", "pathology")).fit(table)
    nomo = nomogram(model, "radiology+pathology")
    axis = {v["name"]: v for v in nomo["variables"]}["pathology_score"]
    low, high = model.ranges_["pathology_score"]
    assert min(axis["values"]) <= low and max(axis["values"]) >= high
    row = table.iloc[0].to_dict()
    row["pathology_score"] = low + 0.01 * (high - low)
    points = case_points(model, nomo, row)
    assert "pathology_score" not in points["beyond"]
    # Linear between the axis's ticks: the value's points, not the first tick's.
    expected = np.interp(row["pathology_score"], axis["values"], axis["points"])
    assert points["points"]["pathology_score"] == pytest.approx(expected)
    assert points["points"]["pathology_score"] != pytest.approx(axis["points"][axis["values"].index(0.0)])


def test_a_value_beyond_its_axis_is_reported_and_marked_at_the_axis_end_with_its_value():
    from sarcoma_risk.fusion.nomogram import case_points
    from sarcoma_risk.fusion.plots import plot_nomogram

    table, _ = make_table(200, seed=4)
    model = CoxFusion(penalizers=(0.1,), cv_folds=2, modalities=("clinical", "radiology", "pathology")).fit(table)
    nomo = nomogram(model, "radiology+pathology")
    axis = {v["name"]: v for v in nomo["variables"]}["pathology_score"]
    row = table.iloc[0].to_dict()
    row["pathology_score"] = min(axis["values"]) - 5.0
    points = case_points(model, nomo, row)
    assert points["beyond"]["pathology_score"] == "below"
    assert points["risk"] == pytest.approx(float(model.predict(
        table.iloc[:1].assign(pathology_score=row["pathology_score"]), submodel="radiology+pathology")["risk"].iloc[0]))
    figure = plot_nomogram(nomo, case=points)
    ax = figure.axes[0]
    arrows = [line for line in ax.lines if line.get_marker() in ("<", ">")]
    assert arrows, "a value beyond the axis is marked by an arrow at the axis end"
    texts = [t.get_text() for t in ax.texts]
    assert any(t.startswith(f"{row['pathology_score']:.3g}") and "beyond the axis" in t for t in texts)
    # The other axes still carry the plain mark.
    assert len([line for line in ax.lines if line.get_marker() == "v"]) == len(nomo["variables"]) - 1 + \
        ("total_points" not in points["beyond"])
