"""The federated Cox fusion equals the pooled Cox model stratified by centre, and refuses thin centres."""

from __future__ import annotations

import numpy as np
import pytest
from lifelines import CoxPHFitter

from sarcoma_risk.clinical.encoder import ClinicalEncoder
from sarcoma_risk.federated.coxstats import efron_stats
from sarcoma_risk.federated.fusion import CentreRefused, FederatedFusionSettings, fit_federated_fusion
from sarcoma_risk.fusion.model import CoxFusion

from .conftest import local_query, split


def _pooled_stratified(model, table, name, penalizer):
    sub = model.submodels_[name]
    clinical, scores, _ = model._availability(table)
    x = model._design(clinical, scores, np.arange(len(table)), sub.modalities).reindex(columns=sub.cox.columns)
    x["T"], x["E"], x["centre"] = table["time_months"].to_numpy(), table["event"].to_numpy(), table["centre"].to_numpy()
    # lifelines stops by default when the log-likelihood changes by less than 1e-9 relative, which can
    # leave coefficients 1e-4 short of the optimum; run it to convergence for a fair comparison.
    return CoxPHFitter(penalizer=penalizer, l1_ratio=0.0).fit(
        x, "T", "E", strata=["centre"], fit_options={"precision": 1e-12, "r_precision": 1e-15, "max_steps": 200})


@pytest.mark.parametrize("round_times", [False, True], ids=["distinct-times", "tied-times"])
def test_federated_coefficients_equal_the_pooled_cox_model_stratified_by_centre(three_centres, round_times):
    table = three_centres.copy()
    if round_times:  # whole months: many tied event times, so Efron's correction matters
        table["time_months"] = np.maximum(np.round(table["time_months"]), 1.0)
    settings = FederatedFusionSettings(penalizer=0.1)
    model, fit_log = fit_federated_fusion(local_query(split(table)), settings)
    assert fit_log.centres == ["A", "B", "C"]
    for name, sub in model.submodels_.items():
        cph = _pooled_stratified(model, table, name, settings.penalizer)
        np.testing.assert_allclose(sub.cox.beta, cph.params_.reindex(sub.cox.columns).to_numpy(), atol=1e-6)
        np.testing.assert_allclose(sub.cox.standard_errors,
                                   cph.standard_errors_.reindex(sub.cox.columns).to_numpy(), atol=1e-6)


def test_federated_fit_is_not_the_unstratified_pooled_fit(three_centres):
    """Risk sets do not cross centres: the docs say 'stratified', and this shows the difference is real."""
    model, _ = fit_federated_fusion(local_query(split(three_centres)), FederatedFusionSettings(penalizer=0.1))
    name = "clinical+radiology+pathology"
    sub = model.submodels_[name]
    clinical, scores, _ = model._availability(three_centres)
    x = model._design(clinical, scores, np.arange(len(three_centres)), sub.modalities)
    x["T"], x["E"] = three_centres["time_months"].to_numpy(), three_centres["event"].to_numpy()
    unstratified = CoxPHFitter(penalizer=0.1).fit(x, "T", "E").params_.reindex(sub.cox.columns).to_numpy()
    assert np.abs(unstratified - sub.cox.beta).max() > 1e-3


def test_efron_statistics_of_two_centres_add_up_to_lifelines_stratified_gradient_at_zero(three_centres):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    time = np.round(rng.exponential(10, 60)) + 1
    event = rng.random(60) < 0.6
    beta = np.array([0.3, -0.2, 0.1])
    total = efron_stats(x[:30], time[:30], event[:30], beta) + efron_stats(x[30:], time[30:], event[30:], beta)
    step = 1e-6
    for j in range(3):  # the gradient is the derivative of the summed log-likelihood
        shifted = beta.copy()
        shifted[j] += step
        ll = (efron_stats(x[:30], time[:30], event[:30], shifted).log_likelihood
              + efron_stats(x[30:], time[30:], event[30:], shifted).log_likelihood)
        assert (ll - total.log_likelihood) / step == pytest.approx(total.gradient[j], rel=1e-4, abs=1e-4)


def test_clinical_encoder_from_summed_statistics_equals_the_encoder_fitted_on_pooled_records(three_centres):
    model = CoxFusion()
    model._check_params()
    records = [r for r in model._clinical_rows(three_centres) if r is not None]
    pooled = ClinicalEncoder().fit(records)
    halves = [ClinicalEncoder().sufficient_statistics(records[:100]), ClinicalEncoder().sufficient_statistics(records[100:])]
    summed = {"levels": {}, "numeric": {}}
    for stats in halves:
        for name, counts in stats["levels"].items():
            for level, count in counts.items():
                summed["levels"].setdefault(name, {})[level] = summed["levels"].get(name, {}).get(level, 0) + count
        for name, moments in stats["numeric"].items():
            old = summed["numeric"].get(name, (0, 0.0, 0.0))
            summed["numeric"][name] = tuple(a + b for a, b in zip(old, moments))
    federated = ClinicalEncoder.from_statistics(pooled.features, pooled.min_level_count, summed)
    assert federated.levels_ == pooled.levels_ and federated.reference_ == pooled.reference_
    for name, (mean, sd) in pooled.numeric_.items():
        assert federated.numeric_[name] == pytest.approx((mean, sd), rel=1e-12)


def test_federated_model_saves_loads_and_predicts_like_any_fusion_model(three_centres):
    model, _ = fit_federated_fusion(local_query(split(three_centres)))
    again = CoxFusion.from_dict(model.to_dict())
    a, b = model.predict(three_centres), again.predict(three_centres)
    np.testing.assert_allclose(a["risk"], b["risk"])
    assert set(a["group"]) == {"low", "high"}
    assert a["survival_12"].between(0, 1).all()
    # the median cutoff from the summed histogram splits the development cases in two halves
    share_high = (a["group"] == "high").mean()
    assert share_high == pytest.approx(0.5, abs=0.02)


def test_a_centre_with_too_few_events_is_refused_naming_the_centre_and_its_events(three_centres, caplog):
    parts = split(three_centres)
    c = parts["C"]
    parts["C"] = c[(c["event"] == 0) | (c.index.isin(c.index[c["event"] == 1][:3]))]  # 3 events left
    model, fit_log = fit_federated_fusion(local_query(parts), FederatedFusionSettings(min_centre_events=10))
    assert fit_log.centres == ["A", "B"]
    assert fit_log.refused == {"C": "centre C: 3 development event(s); a centre needs at least 10 to take part "
                                    "(--min-centre-events)"}
    assert "centre C: 3 development event(s)" in caplog.text
    assert model.n_development_ == len(parts["A"]) + len(parts["B"])


def test_too_few_centres_left_stops_the_fit_with_every_reason(three_centres):
    parts = split(three_centres)
    with pytest.raises(CentreRefused, match=r"1 centre\(s\) can take part \(C\); need at least 2") as err:
        fit_federated_fusion(local_query(parts), FederatedFusionSettings(min_centre_events=32))
    assert "centre A: 31 development event(s)" in str(err.value)
    assert "centre B: 27 development event(s)" in str(err.value)


def test_the_federated_fit_does_not_depend_on_the_order_the_centres_answer_in(three_centres):
    # Sums of floats depend on their order; a transport delivers the centres' answers in any order.
    parts = split(three_centres)
    forward = local_query(parts)
    backward = lambda op, request: dict(reversed(forward(op, request).items()))  # noqa: E731
    first, _ = fit_federated_fusion(forward, FederatedFusionSettings(penalizer=0.1))
    second, _ = fit_federated_fusion(backward, FederatedFusionSettings(penalizer=0.1))
    for submodel, fitted in first.submodels_.items():
        np.testing.assert_array_equal(fitted.cox.beta, second.submodels_[submodel].cox.beta, err_msg=submodel)


def test_risks_beyond_the_histogram_grid_are_counted_and_named_in_a_warning(three_centres, caplog):
    # A narrow grid: the centres' end bins then hold clipped risks, which would shift the extreme
    # percentiles without a trace; the centres send how many fell outside and the server says so.
    settings = FederatedFusionSettings(penalizer=0.1, risk_limit=0.5)
    model, _ = fit_federated_fusion(local_query(split(three_centres)), settings)
    risk = model.predict(three_centres)["risk"].to_numpy()  # every case has all three modalities
    below, above = int((risk < -0.5).sum()), int((risk > 0.5).sum())
    assert below > 0 and above > 0
    assert (f"{below} sub-model clinical+radiology+pathology risk value(s) below and {above} above the "
            "histogram grid [-0.5, 0.5]") in caplog.text
    caplog.clear()
    fit_federated_fusion(local_query(split(three_centres)), FederatedFusionSettings(penalizer=0.1))
    assert "histogram grid" not in caplog.text
