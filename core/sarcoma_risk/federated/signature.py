"""The slide signature fitted from per-centre sums: no case's counts or outcome leave its centre.

:class:`~sarcoma_risk.pathology.signature.SlideSignature` needs, from the development cases, the
inverse document frequency of each word, the means and standard deviations of the features, and a
penalized Cox model over the standardised features. Each is a sum over cases:

* ``summary``: number of cases and events, and per word the number of cases that contain it: the
  pooled idf ``log((1 + n) / (1 + df)) + 1`` exactly;
* ``moments`` (at the server's idf): per feature the sum and the sum of squares: the pooled means
  and (population) standard deviations exactly;
* ``cox`` (at the server's standardisation and coefficients): the Efron log partial likelihood,
  gradient and Hessian of the centre's cases; Newton-Raphson on their totals with the ridge penalty
  added once (:func:`sarcoma_risk.federated.coxstats.fit_newton`).

A centre's risk sets hold only its own cases, so the coefficients are those of the pooled fit
**stratified by centre** (lifelines ``CoxPHFitter(penalizer, l1_ratio=0).fit(..., strata=["centre"])``),
as for the federated fusion; only the ridge penalty (``l1_ratio = 0``) is supported. The training
concordance is Harrell's C within centres (concordant and comparable pairs summed).

A centre computes its cases' counts itself (its slides tiled by the patch model, e.g. the federated
one: :func:`sarcoma_risk.pathology.signature.tile_counts`); :func:`answer` is its side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.federated.centre import harrell_pairs
from sarcoma_risk.federated.coxstats import CoxStats, efron_stats, fit_newton
from sarcoma_risk.pathology.signature import SlideSignature
from sarcoma_risk.survival.outcome import check_outcome

Query = Callable[[str, Mapping[str, Any]], dict[str, Mapping[str, Any]]]


@dataclass
class SignatureCases:
    """A centre's development cases: pooled counts per case (``histogram``, ``words``) and outcomes."""

    counts: Sequence[Mapping[str, Sequence[int]]]
    time: np.ndarray
    event: np.ndarray


def _shell(request: Mapping[str, Any]) -> SlideSignature:
    return SlideSignature(int(request["n_bins"]), int(request["n_words"]), float(request["penalizer"]))


def _standardised(cases: SignatureCases, request: Mapping[str, Any]) -> np.ndarray:
    raw = _shell(request)._raw(cases.counts, np.asarray(request["idf"], dtype=float))
    used = np.asarray(request["used"], dtype=float) > 0
    return ((raw - np.asarray(request["means"])) / np.asarray(request["scales"]))[:, used] / float(request["rescale"])


def answer(cases: SignatureCases, request: Mapping[str, Any]) -> dict[str, Any]:
    """A centre's reply to ``request["op"]``: sums whose sizes depend on the signature, never on its cases."""
    op = request.get("op")
    if op == "summary":
        words = np.vstack([np.asarray(c["words"], dtype=float) for c in cases.counts])
        return {"n": float(len(cases.counts)), "events": float(np.sum(cases.event)),
                "df": (words > 0).sum(axis=0).astype(float)}
    if op == "moments":
        raw = _shell(request)._raw(cases.counts, np.asarray(request["idf"], dtype=float))
        return {"sum": raw.sum(axis=0), "sum_squares": (raw * raw).sum(axis=0)}
    if op == "cox":
        stats = efron_stats(_standardised(cases, request), np.asarray(cases.time, dtype=float),
                            np.asarray(cases.event, dtype=bool), np.asarray(request["beta"], dtype=float))
        return {"log_likelihood": stats.log_likelihood, "gradient": stats.gradient, "hessian": stats.hessian}
    if op == "pairs":
        risk = _standardised(cases, request) @ np.asarray(request["beta"], dtype=float)
        concordant, comparable = harrell_pairs(np.asarray(cases.time, dtype=float),
                                                np.asarray(cases.event, dtype=bool), risk)
        return {"pairs": np.array([concordant, comparable])}
    raise InvalidInput(f"federated signature request: op {op!r}; expected summary, moments, cox or pairs")


def _total(replies: Mapping[str, Mapping[str, Any]], key: str) -> Any:
    return sum(np.asarray(r[key], dtype=float) for r in replies.values())


def fit_federated_signature(query: Query, signature: SlideSignature, *, max_steps: int = 50,
                            tolerance: float = 1e-10) -> SlideSignature:
    """Fit ``signature`` (its parameters; ridge only) from the centres' sums; returns it fitted.

    ``query(op, request) -> {centre: reply}`` asks every centre (:func:`answer` at each).
    """
    signature._check_params()
    if signature.l1_ratio:
        raise InvalidModel(f"federated slide signature: l1_ratio {signature.l1_ratio:g}; only the ridge penalty "
                           "(l1_ratio 0) is fitted from sums")
    base = {"n_bins": signature.n_bins, "n_words": signature.n_words, "penalizer": signature.penalizer}
    summary = query("summary", {"op": "summary", **base})
    n, events = int(_total(summary, "n")), int(_total(summary, "events"))
    if n < 4:
        raise InvalidInput(f"federated slide signature: {n} cases in all are too few to fit a Cox model (need >= 4)")
    idf = np.log((1 + n) / (1 + _total(summary, "df"))) + 1.0
    moments = query("moments", {"op": "moments", **base, "idf": idf})
    means = _total(moments, "sum") / n
    scales = np.sqrt(np.maximum(_total(moments, "sum_squares") / n - means * means, 0.0))
    used = scales > 1e-9  # as SlideSignature.fit: a feature constant over every centre carries nothing
    scales = np.where(used, scales, 1.0)
    # lifelines (SlideSignature.fit) standardises the already standardised features once more, with the
    # n - 1 standard deviation, and penalises the coefficients on that scale: the same here
    rescale = float(np.sqrt(n / (n - 1)))
    request = {**base, "idf": idf, "means": means, "scales": scales, "used": used.astype(float), "rescale": rescale}

    def evaluate(beta: np.ndarray) -> CoxStats:
        replies = query("cox", {"op": "cox", **request, "beta": beta})
        return CoxStats(float(_total(replies, "log_likelihood")), _total(replies, "gradient"),
                        _total(replies, "hessian"))

    result = fit_newton(evaluate, int(used.sum()), n, signature.penalizer, max_steps=max_steps, tolerance=tolerance)
    concordant, comparable = _total(query("pairs", {"op": "pairs", **request, "beta": result.beta}), "pairs")
    coefficients = np.zeros(used.size)
    coefficients[used] = result.beta / rescale
    signature.idf_, signature.means_, signature.scales_, signature.used_ = idf, means, scales, used
    signature.coefficients_ = coefficients
    signature.n_cases_, signature.n_events_ = n, events
    signature.concordance_ = float(concordant / comparable) if comparable else float("nan")
    return signature


def signature_cases(counts: Sequence[Mapping[str, Sequence[int]]], time: Sequence[float],
                    event: Sequence[bool]) -> SignatureCases:
    """A centre's cases, checked: one counts mapping per outcome."""
    outcome = check_outcome(time, event, name="federated slide signature outcome")
    if len(counts) != len(outcome.time):
        raise InvalidInput(f"federated slide signature: {len(counts)} cases of counts but {len(outcome.time)} outcomes")
    return SignatureCases(list(counts), outcome.time, outcome.event)
