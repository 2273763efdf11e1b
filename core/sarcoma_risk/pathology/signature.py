"""The whole-slide signature: patch probabilities -> slide features -> penalized Cox -> pathology score.

Features of a case (its "document" of patches):

- a histogram of patch probabilities over ``n_bins`` equal bins of [0, 1] (the share of patches in
  each bin: the patch likelihood histogram);
- a bag of words: each patch's probability quantised into one of ``n_words`` words; term frequency
  (share of patches per word) times the inverse document frequency learnt on the development cases
  (smooth idf, ``log((1 + n) / (1 + df)) + 1``), L2-normalised (TF-IDF).

The features are standardised with the development means and standard deviations, and a Cox model
with a ridge/elastic-net penalty (lifelines ``CoxPHFitter(penalizer, l1_ratio)``) is fit on the
development cases. The pathology score is the log relative hazard ``x_std @ beta``: 0 for a case
at the development mean, higher = riskier.

Pooling several slides of one case: the patches of all its slides form one document, i.e. the
per-slide counts (histogram and word counts) are summed before the features are computed. A slide
with more tumor tiles therefore weighs more, as it would for a pathologist reading all blocks.
Per-slide counts are kept in the case record, so the case score can be recomputed when a slide is
added without reading any slide again.

The deployed signature can carry a linear map onto the scale of the out-of-fold scores the fusion
was fitted on (:attr:`SlideSignature.to_out_of_fold_`, set by ``train pathology``; see
:mod:`sarcoma_risk.pathology.crossfit`): :meth:`SlideSignature.predict` then returns
``offset + slope * x_std @ beta``. Signatures without it (cross-fitting folds, ``train
pathology-signature``) return ``x_std @ beta``.

Saved as plain JSON (:meth:`SlideSignature.to_dict`): bins, idf, means, scales, coefficients and the
map, when there is one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.errors import InvalidModel, InvalidOutcome
from sarcoma_risk.survival.outcome import check_outcome

SIGNATURE_FORMAT = "sarcoma-risk-slide-signature/1"


@dataclass(frozen=True)
class ScaleMap:
    """``offset + slope * score``: the deployed pipeline's score on the out-of-fold scale, and how it was fitted."""

    offset: float
    slope: float
    n_cases: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "slope": self.slope, "n_cases": self.n_cases, "method": self.method}

    @classmethod
    def from_dict(cls, data: Any) -> "ScaleMap":
        if not isinstance(data, Mapping):
            raise InvalidModel("slide signature: to_out_of_fold must be an object")
        try:
            out = cls(float(data["offset"]), float(data["slope"]), int(data["n_cases"]), str(data["method"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidModel(f"slide signature: to_out_of_fold is incomplete ({exc!r})") from None
        if not (np.isfinite(out.offset) and np.isfinite(out.slope) and out.slope > 0):
            raise InvalidModel("slide signature: to_out_of_fold needs a finite offset and a slope > 0")
        return out


def tile_counts(probabilities: np.ndarray, n_bins: int, n_words: int) -> dict[str, list[int]]:
    """Histogram and word counts of one slide's patch probabilities (both bin [0, 1] equally)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0.0, 1.0)
    return {"histogram": np.bincount(np.minimum((p * n_bins).astype(int), n_bins - 1), minlength=n_bins).tolist(),
            "words": np.bincount(np.minimum((p * n_words).astype(int), n_words - 1), minlength=n_words).tolist()}


def pool_counts(counts: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, list[int]]:
    """Sum per-slide counts into the counts of the case (patch-level pooling)."""
    if not counts:
        raise InvalidModel("pooling: no slides to pool")
    return {key: np.sum([np.asarray(c[key], dtype=np.int64) for c in counts], axis=0).tolist()
            for key in ("histogram", "words")}


class SlideSignature:
    """Histogram + TF-IDF features of patch probabilities and a penalized Cox model over them.

    Parameters
    ----------
    n_bins : int
        Histogram bins over [0, 1].
    n_words : int
        Quantisation levels (words) for the bag of words.
    penalizer : float
        lifelines ``CoxPHFitter`` penalizer (> 0: the features are collinear by construction).
    l1_ratio : float
        Share of L1 in the elastic-net penalty (0 = ridge).
    """

    def __init__(self, n_bins: int = 10, n_words: int = 20, penalizer: float = 0.5, l1_ratio: float = 0.0) -> None:
        self.n_bins = n_bins
        self.n_words = n_words
        self.penalizer = penalizer
        self.l1_ratio = l1_ratio
        self.to_out_of_fold_: ScaleMap | None = None  # set on the deployed signature by train pathology

    # ---- features ----------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        return ([f"hist_{i:02d}" for i in range(self.n_bins)] + [f"tfidf_{i:02d}" for i in range(self.n_words)])

    def _check_params(self) -> None:
        if not (isinstance(self.n_bins, int) and isinstance(self.n_words, int) and self.n_bins >= 2
                and self.n_words >= 2):
            raise InvalidModel(f"slide signature: n_bins {self.n_bins!r} and n_words {self.n_words!r} must be "
                               "integers >= 2")
        if not (self.penalizer > 0 and 0 <= self.l1_ratio <= 1):
            raise InvalidModel(f"slide signature: penalizer {self.penalizer} must be > 0 and l1_ratio "
                               f"{self.l1_ratio} in [0, 1]")

    def counts(self, probabilities: np.ndarray) -> dict[str, list[int]]:
        return tile_counts(probabilities, self.n_bins, self.n_words)

    def _raw(self, counts: Sequence[Mapping[str, Sequence[int]]], idf: np.ndarray) -> np.ndarray:
        rows = []
        for c in counts:
            hist = np.asarray(c["histogram"], dtype=float)
            words = np.asarray(c["words"], dtype=float)
            if hist.shape != (self.n_bins,) or words.shape != (self.n_words,) or hist.sum() <= 0:
                raise InvalidModel(f"slide signature: counts need {self.n_bins} histogram and {self.n_words} word "
                                   f"counts with at least one patch; got {hist.size} and {words.size}")
            tfidf = words / words.sum() * idf
            rows.append(np.concatenate([hist / hist.sum(), tfidf / np.linalg.norm(tfidf)]))
        return np.vstack(rows)

    # ---- fitting -----------------------------------------------------------------------------

    def fit(self, counts: Sequence[Mapping[str, Sequence[int]]], time: Sequence[float],
            event: Sequence[bool]) -> "SlideSignature":
        """Fit on development cases: one (pooled) counts mapping per case, with its outcome."""

        self._check_params()
        outcome = check_outcome(time, event, name="slide signature outcome")
        if len(counts) != len(outcome.time):
            raise InvalidOutcome(f"slide signature: {len(counts)} cases of counts but {len(outcome.time)} outcomes")
        if len(counts) < 4:
            raise InvalidOutcome(f"slide signature: {len(counts)} cases are too few to fit a Cox model (need >= 4)")
        words = np.vstack([np.asarray(c["words"], dtype=float) for c in counts])
        df = (words > 0).sum(axis=0)
        self.idf_ = np.log((1 + len(counts)) / (1 + df)) + 1.0
        raw = self._raw(counts, self.idf_)
        self.means_ = raw.mean(axis=0)
        scales = raw.std(axis=0)
        self.used_ = scales > 1e-9  # a bin empty in every development case carries nothing
        self.scales_ = np.where(self.used_, scales, 1.0)
        x = (raw - self.means_) / self.scales_
        names = [n for n, u in zip(self.feature_names, self.used_) if u]
        frame = pd.DataFrame(x[:, self.used_], columns=names)
        frame["time"], frame["event"] = outcome.time, outcome.event.astype(int)
        from lifelines import CoxPHFitter  # lazy: about 0.9 s at import; scoring a slide only predicts

        cph = CoxPHFitter(penalizer=self.penalizer, l1_ratio=self.l1_ratio)
        with warnings.catch_warnings():
            # a bin that is rare among events has "low variance" by design; the penalty handles it
            warnings.filterwarnings("ignore", message=".*low variance.*")
            cph.fit(frame, duration_col="time", event_col="event")
        coefficients = np.zeros(len(self.feature_names))
        coefficients[self.used_] = cph.params_.reindex(names).to_numpy()
        self.coefficients_ = coefficients
        self.n_cases_ = len(counts)
        self.n_events_ = int(outcome.event.sum())
        self.concordance_ = float(cph.concordance_index_)
        self.to_out_of_fold_ = None
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "coefficients_"):
            raise InvalidModel("slide signature: not fitted yet (call fit, or load one with from_dict)")

    def features(self, counts: Sequence[Mapping[str, Sequence[int]]]) -> np.ndarray:
        """Standardised features (n_cases, n_features) with the development idf, means and scales."""
        self._check_fitted()
        return (self._raw(counts, self.idf_) - self.means_) / self.scales_

    def predict(self, counts: Sequence[Mapping[str, Sequence[int]]]) -> np.ndarray:
        """Pathology score per case: log relative hazard vs the development mean; higher = riskier.

        With :attr:`to_out_of_fold_` set, the score is mapped onto the out-of-fold scale (module docstring).
        """
        raw = self.features(counts) @ self.coefficients_
        scale = self.to_out_of_fold_
        return raw if scale is None else scale.offset + scale.slope * raw

    def predict_probabilities(self, probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of cases given as patch probabilities (one array per case, slides already pooled)."""
        return self.predict([self.counts(p) for p in probabilities])

    # ---- JSON --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        return {"format": SIGNATURE_FORMAT, "n_bins": self.n_bins, "n_words": self.n_words,
                "bin_edges": {"histogram": self._edges(self.n_bins), "words": self._edges(self.n_words)},
                "penalizer": self.penalizer, "l1_ratio": self.l1_ratio, "feature_names": self.feature_names,
                "idf": self.idf_.tolist(), "means": self.means_.tolist(), "scales": self.scales_.tolist(),
                "coefficients": self.coefficients_.tolist(), "n_cases": self.n_cases_,
                "n_events": self.n_events_, "training_concordance": self.concordance_,
                "pooling": "patch counts summed over the slides of a case",
                **({"to_out_of_fold": self.to_out_of_fold_.to_dict()} if self.to_out_of_fold_ is not None else {})}

    @staticmethod
    def _edges(n: int) -> list[float]:
        """Bin edges over [0, 1] (the last bin includes 1), as :func:`tile_counts` uses them."""
        return np.linspace(0.0, 1.0, n + 1).round(12).tolist()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SlideSignature":
        """Rebuild a fitted signature from :meth:`to_dict` output, checking every field."""
        if not isinstance(data, Mapping) or data.get("format") != SIGNATURE_FORMAT:
            raise InvalidModel(f"slide signature: expected an object with format {SIGNATURE_FORMAT!r}")
        try:
            model = cls(int(data["n_bins"]), int(data["n_words"]), float(data["penalizer"]), float(data["l1_ratio"]))
            model._check_params()
            n = model.n_bins + model.n_words
            arrays = {}
            for key, size in (("idf", model.n_words), ("means", n), ("scales", n), ("coefficients", n)):
                arr = np.asarray(data[key], dtype=float)
                if arr.shape != (size,) or not np.isfinite(arr).all():
                    raise InvalidModel(f"slide signature: {key!r} must be {size} finite numbers, got shape {arr.shape}")
                arrays[key] = arr
            if (arrays["scales"] <= 0).any() or (arrays["idf"] <= 0).any():
                raise InvalidModel("slide signature: scales and idf must be > 0")
            if list(data.get("feature_names", model.feature_names)) != model.feature_names:
                raise InvalidModel("slide signature: feature_names do not match n_bins/n_words")
            edges = data.get("bin_edges", {})
            for key, n in (("histogram", model.n_bins), ("words", model.n_words)):
                given = np.asarray(edges.get(key, model._edges(n)), dtype=float)
                if given.shape != (n + 1,) or not np.allclose(given, model._edges(n)):
                    raise InvalidModel(f"slide signature: bin_edges.{key} are not {n} equal bins of [0, 1] "
                                       "(the only binning this version computes)")
            model.idf_, model.means_, model.scales_ = arrays["idf"], arrays["means"], arrays["scales"]
            model.coefficients_ = arrays["coefficients"]
            model.used_ = model.coefficients_ != 0
            model.n_cases_ = int(data["n_cases"])
            model.n_events_ = int(data["n_events"])
            concordance = data.get("training_concordance")
            model.concordance_ = float(concordance) if concordance is not None else None
            scale = data.get("to_out_of_fold")
            model.to_out_of_fold_ = ScaleMap.from_dict(scale) if scale is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidModel(f"slide signature: missing or malformed field ({exc})") from None
        return model
