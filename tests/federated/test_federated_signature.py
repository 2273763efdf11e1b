"""The slide signature fitted from per-centre sums equals the pooled signature stratified by centre."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter

from sarcoma_risk.federated.signature import answer, fit_federated_signature, signature_cases
from sarcoma_risk.pathology.signature import SlideSignature, tile_counts

CENTRES = {"A": 40, "B": 33, "C": 26}  # none the size of a reply array


@pytest.fixture(scope="module")
def cases():
    """{centre: (counts, time, event)}: patch probabilities of each case drawn around its latent risk."""
    rng = np.random.default_rng(8)
    out = {}
    for shift, (name, n) in enumerate(CENTRES.items()):
        z = rng.standard_normal(n)
        counts = [tile_counts(rng.beta(2 + 1.5 * max(v, -1.2) + 0.3 * shift, 3, size=int(rng.integers(50, 200))),
                              10, 20) for v in z]
        time = np.maximum(np.round(24 * np.exp(-0.8 * z + 0.4 * rng.standard_normal(n))), 1.0)  # ties: whole months
        out[name] = (counts, time, rng.random(n) < 0.7)
    return out


def _recording_query(parts, seen):
    def query(op, request):
        replies = {name: answer(part, request) for name, part in parts.items()}
        seen.extend(replies.values())
        return replies
    return query


def test_the_federated_signature_equals_the_pooled_one_stratified_by_centre(cases):
    parts = {name: signature_cases(*c) for name, c in cases.items()}
    seen = []
    federated = fit_federated_signature(_recording_query(parts, seen), SlideSignature(10, 20, 0.5))
    counts = [c for name in CENTRES for c in cases[name][0]]
    time = np.concatenate([cases[name][1] for name in CENTRES])
    event = np.concatenate([cases[name][2] for name in CENTRES])
    pooled = SlideSignature(10, 20, 0.5).fit(counts, time, event)
    # the standardisation is the pooled one exactly
    for attribute in ("idf_", "means_", "scales_", "used_"):
        np.testing.assert_allclose(getattr(federated, attribute), getattr(pooled, attribute), rtol=1e-10,
                                   err_msg=attribute)
    # the coefficients are lifelines' on the pooled rows with one baseline hazard per centre
    used = pooled.used_
    frame = pd.DataFrame(pooled.features(counts)[:, used], columns=[f"f{i}" for i in range(int(used.sum()))])
    frame["T"], frame["E"] = time, event.astype(int)
    frame["centre"] = [name for name in CENTRES for _ in range(CENTRES[name])]
    stratified = CoxPHFitter(penalizer=0.5, l1_ratio=0.0).fit(
        frame, "T", "E", strata=["centre"], fit_options={"precision": 1e-12, "r_precision": 1e-15, "max_steps": 200})
    np.testing.assert_allclose(federated.coefficients_[used], stratified.params_.to_numpy(), atol=1e-6)
    assert federated.coefficients_[~used].tolist() == [0.0] * int((~used).sum())
    # ... which is not the unstratified pooled fit: the difference is real
    assert np.abs(federated.coefficients_ - pooled.coefficients_).max() > 1e-3
    assert federated.n_cases_ == sum(CENTRES.values()) and federated.n_events_ == int(event.sum())
    assert 0.5 < federated.concordance_ < 1.0
    # it saves and scores as any signature
    again = SlideSignature.from_dict(federated.to_dict())
    np.testing.assert_allclose(again.predict(counts[:5]), federated.predict(counts[:5]))
    # every reply is sized by the signature (words, features, their square) or is a scalar, never by a centre's cases
    allowed = {(), (20,), (30,), (2,), (int(used.sum()),), (int(used.sum()), int(used.sum()))}
    assert all(np.shape(v) in allowed for reply in seen for v in reply.values())
    assert not any(np.shape(v) and np.shape(v)[0] in CENTRES.values() for reply in seen for v in reply.values())


def test_the_federated_signature_refuses_an_elastic_net_and_too_few_cases(cases):
    parts = {"A": signature_cases(cases["A"][0][:3], cases["A"][1][:3], cases["A"][2][:3])}
    query = _recording_query(parts, [])
    with pytest.raises(ValueError, match="only the ridge penalty"):
        fit_federated_signature(query, SlideSignature(10, 20, 0.5, l1_ratio=0.5))
    with pytest.raises(ValueError, match="3 cases in all are too few"):
        fit_federated_signature(query, SlideSignature(10, 20, 0.5))
