"""The deployed radiology model of one sequence set: the mean of the cross-fitting fold models.

Why the fold models and not one model refitted on every development case: the fusion's radiology
weight is fitted on the out-of-fold development scores, each from the fold model that did not see
the case. A fold model scores a new case exactly as it scored its own held-out fold, so the mean of
the K fold models puts a new case's score on the scale the fusion was fitted on, with nothing to
estimate. A model refitted on all cases has its own scale (a Cox network's output spread depends on
how long it trained; in the first shipped weights it was 0.85 on validation cases against 0.53 for
the out-of-fold scores), and the fusion would over-weight it. Averaging K scores removes part of
each fold model's noise, so if anything the mean is slightly better than the scores the weight was
fitted on and the fused risk slightly under-spread (a calibration slope above 1), never over-spread.
K passes of the small 3D CNN cost a fraction of a second.

Without cross-fitting (``train radiology --folds 0``) the ensemble is one model fitted on all
development cases, and its percentiles come from its own (in-sample) development scores.

The Grad-CAM of the mean is the mean of the members' Grad-CAM shares: each member's signed voxel
shares sum to its score (:mod:`~sarcoma_risk.radiology.gradcam`), so the averaged shares sum to the
ensemble's score.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from sarcoma_risk.errors import InvalidModel
from sarcoma_risk.radiology.config import ModelConfig, PreprocessConfig
from sarcoma_risk.radiology.train import RadiologyCoxModel

ENSEMBLE_FORMAT = "sarcoma-risk-radiology-ensemble/1"


class ReferenceSource:
    """Where an ensemble's development score distribution (for percentiles) comes from."""

    OUT_OF_FOLD = "out_of_fold"  # each development case scored by the fold model that did not see it
    IN_SAMPLE = "in_sample"  # the single model's scores of the cases it was fitted on


class RadiologyEnsemble:
    """Mean of fitted :class:`~sarcoma_risk.radiology.train.RadiologyCoxModel` members of one sequence set.

    Parameters
    ----------
    members : sequence of RadiologyCoxModel
        Fitted models with the same preprocessing and network configuration (their training
        configurations differ by seed only).
    reference_scores : array-like
        The development score distribution percentiles are read from (out-of-fold scores of the
        fold models, or the single member's in-sample scores).
    reference_source : str
        :class:`ReferenceSource` value saying which.
    """

    def __init__(self, members: Sequence[RadiologyCoxModel], reference_scores: Any,
                 reference_source: str = ReferenceSource.OUT_OF_FOLD) -> None:
        if not members:
            raise InvalidModel("a radiology ensemble needs at least one fitted model")
        first = members[0]
        for member in members:
            member._check_fitted()
            if member.preprocess != first.preprocess or member.model != first.model:
                raise InvalidModel("radiology ensemble: the members differ in preprocessing or network configuration")
        reference = np.sort(np.asarray(reference_scores, dtype=float).ravel())
        if reference.size == 0 or not np.all(np.isfinite(reference)):
            raise InvalidModel("radiology ensemble: the development score distribution is empty or not finite")
        if reference_source not in (ReferenceSource.OUT_OF_FOLD, ReferenceSource.IN_SAMPLE):
            raise InvalidModel(f"radiology ensemble: reference source {reference_source!r}; expected "
                               f"{ReferenceSource.OUT_OF_FOLD} or {ReferenceSource.IN_SAMPLE}")
        self.members = list(members)
        self.reference_scores = reference
        self.reference_source = reference_source

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.members[0].preprocess

    @property
    def model(self) -> ModelConfig:
        return self.members[0].model

    @property
    def sequence_set(self) -> str:
        """The name of the sequence set this model reads, e.g. ``"t2fs"``."""
        return self.preprocess.sequence_set

    @property
    def device(self) -> Any:
        """The torch device the members' networks are on."""
        return self.members[0]._check_fitted().offset.device

    def to(self, device: Any) -> "RadiologyEnsemble":
        """Move every member's network to ``device``; returns self."""
        for member in self.members:
            member.to(device)
        return self

    def predict(self, X: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Mean log relative hazard of the members per case (higher = riskier)."""
        return np.mean([member.predict(X, batch_size) for member in self.members], axis=0)

    def percentile(self, scores: np.ndarray | float) -> np.ndarray:
        """Percentile (0-100) of each score among the development scores (mid-rank for ties)."""
        scores = np.atleast_1d(np.asarray(scores, dtype=float))
        below = np.searchsorted(self.reference_scores, scores, side="left")
        at_or_below = np.searchsorted(self.reference_scores, scores, side="right")
        return 100.0 * (below + at_or_below) / (2 * self.reference_scores.size)

    # ---- saving ------------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """What the weights manifest records: the shared configurations and each member's seed."""
        return {"preprocess": self.preprocess.to_dict(), "model": self.model.to_dict(),
                "train": self.members[0].train.to_dict(), "member_seeds": [m.train.seed for m in self.members],
                "reference_scores": self.reference_source}

    def to_checkpoint(self) -> dict[str, Any]:
        """A ``torch.save``-able dict of tensors, strings and lists (loadable with ``weights_only=True``)."""
        return {"format": ENSEMBLE_FORMAT, "members": [m.to_checkpoint() for m in self.members],
                "reference_scores": torch.from_numpy(self.reference_scores.astype(np.float64)),
                "reference_source": self.reference_source}

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, source: str = "checkpoint") -> "RadiologyEnsemble":
        """Rebuild from :meth:`to_checkpoint`'s dict; :class:`InvalidModel` names ``source`` when it does not fit."""
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != ENSEMBLE_FORMAT:
            found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
            raise InvalidModel(f"{source}: not a radiology model of this version (format {found!r}, expected "
                               f"{ENSEMBLE_FORMAT!r}); retrain it with `sarcoma-risk train radiology`")
        members = checkpoint.get("members")
        if not isinstance(members, list) or not members:
            raise InvalidModel(f"{source}: holds no member models")
        fitted = [RadiologyCoxModel.from_checkpoint(m, f"{source} member {k + 1}") for k, m in enumerate(members)]
        try:
            reference = checkpoint["reference_scores"].double().numpy()
            return cls(fitted, reference, str(checkpoint.get("reference_source")))
        except (KeyError, AttributeError) as exc:
            raise InvalidModel(f"{source}: inconsistent radiology checkpoint ({exc!r})") from None
        except InvalidModel as exc:
            raise InvalidModel(f"{source}: {exc}") from None

