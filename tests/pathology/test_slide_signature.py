"""The whole-slide signature: features, penalized Cox fit, pooling, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sarcoma_risk.errors import InvalidModel, InvalidOutcome
from sarcoma_risk.pathology.signature import SlideSignature, pool_counts, tile_counts
from sarcoma_risk.survival.concordance import harrell_c


def synthetic_cases(n=60, seed=0):
    """Cases whose patch probabilities rise with a latent risk that also shortens survival."""
    rng = np.random.default_rng(seed)
    risk = rng.normal(size=n)
    probabilities = [np.clip(rng.beta(2, 2, size=rng.integers(40, 200)) + 0.15 * r, 0, 1) for r in risk]
    time = rng.exponential(40 * np.exp(-0.9 * risk))
    event = rng.random(n) < 0.8
    return probabilities, time, event


def test_features_are_a_histogram_and_an_l2_normalised_tfidf():
    probabilities, time, event = synthetic_cases()
    model = SlideSignature(n_bins=10, n_words=20).fit([tile_counts(p, 10, 20) for p in probabilities], time, event)
    counts = tile_counts(np.array([0.0, 0.05, 0.5, 0.99, 1.0]), 10, 20)
    assert counts["histogram"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert sum(counts["words"]) == 5
    raw = model.features([counts]) * model.scales_ + model.means_
    assert raw[0, :10].sum() == pytest.approx(1.0)
    assert np.linalg.norm(raw[0, 10:]) == pytest.approx(1.0)
    assert len(model.feature_names) == 30


def test_the_fitted_score_ranks_risk_and_is_centred_on_development():
    probabilities, time, event = synthetic_cases()
    model = SlideSignature().fit([tile_counts(p, 10, 20) for p in probabilities], time, event)
    scores = model.predict_probabilities(probabilities)
    assert harrell_c(time, event, scores) > 0.65
    assert abs(float(np.mean(scores))) < 1e-6  # log relative hazard vs the development mean
    low, high = model.predict_probabilities([np.full(100, 0.2), np.full(100, 0.8)])
    assert high > low


def test_json_round_trip_gives_identical_scores_and_from_dict_validates():
    probabilities, time, event = synthetic_cases()
    model = SlideSignature(penalizer=0.3).fit([tile_counts(p, 10, 20) for p in probabilities], time, event)
    data = json.loads(json.dumps(model.to_dict(), allow_nan=False))
    again = SlideSignature.from_dict(data)
    np.testing.assert_array_equal(again.predict_probabilities(probabilities), model.predict_probabilities(probabilities))
    for broken, match in [({**data, "format": "pickle"}, "format"),
                          ({k: v for k, v in data.items() if k != "idf"}, "idf"),
                          ({**data, "coefficients": data["coefficients"][:-1]}, "coefficients"),
                          ({**data, "means": [float("nan")] * 30}, "finite"),
                          ({**data, "scales": [0.0] * 30}, "> 0"),
                          ({**data, "bin_edges": {"histogram": [0, 0.5, 1]}}, "bin_edges")]:
        with pytest.raises(InvalidModel, match=match):
            SlideSignature.from_dict(broken)


def test_slides_of_a_case_are_pooled_at_patch_level():
    rng = np.random.default_rng(3)
    a, b = rng.random(120), rng.random(40) * 0.5
    pooled = pool_counts([tile_counts(a, 10, 20), tile_counts(b, 10, 20)])
    assert pooled == tile_counts(np.concatenate([a, b]), 10, 20)
    probabilities, time, event = synthetic_cases()
    model = SlideSignature().fit([tile_counts(p, 10, 20) for p in probabilities], time, event)
    assert model.predict([pooled])[0] == pytest.approx(model.predict_probabilities([np.concatenate([a, b])])[0])


def test_unusable_inputs_are_refused():
    with pytest.raises(InvalidModel, match="not fitted"):
        SlideSignature().predict([tile_counts(np.array([0.5]), 10, 20)])
    with pytest.raises(InvalidOutcome, match="too few"):
        SlideSignature().fit([tile_counts(np.array([0.5]), 10, 20)] * 3, [1, 2, 3], [1, 1, 0])
    with pytest.raises(InvalidModel, match="penalizer"):
        SlideSignature(penalizer=0).fit([tile_counts(np.array([0.5]), 10, 20)] * 5, [1, 2, 3, 4, 5], [1] * 5)


def test_the_map_onto_the_out_of_fold_scale_gives_the_deployed_scores_its_mean_and_sd_and_survives_json():
    from sarcoma_risk.pathology.crossfit import match_scale
    from sarcoma_risk.pathology.signature import ScaleMap

    probabilities, time, event = synthetic_cases()
    model = SlideSignature().fit([tile_counts(p, 10, 20) for p in probabilities], time, event)
    deployed = model.predict_probabilities(probabilities[:30])
    out_of_fold = 0.4 * deployed + 0.2 + np.random.default_rng(1).normal(0, 0.05, 30)  # another spread and centre
    model.to_out_of_fold_ = match_scale(deployed, out_of_fold, "test")
    mapped = model.predict_probabilities(probabilities[:30])
    assert mapped.mean() == pytest.approx(out_of_fold.mean()) and mapped.std() == pytest.approx(out_of_fold.std())
    np.testing.assert_allclose(mapped, model.to_out_of_fold_.offset + model.to_out_of_fold_.slope * deployed)
    again = SlideSignature.from_dict(json.loads(json.dumps(model.to_dict(), allow_nan=False)))
    assert again.to_out_of_fold_ == model.to_out_of_fold_
    np.testing.assert_array_equal(again.predict_probabilities(probabilities[:30]), mapped)
    assert match_scale(deployed[:9], out_of_fold[:9], "test") is None  # too few cases to fit the map
    assert match_scale(deployed, np.zeros(30), "test") is None
    with pytest.raises(InvalidModel, match="slope > 0"):
        ScaleMap.from_dict({"offset": 0.0, "slope": -1.0, "n_cases": 30, "method": "test"})
