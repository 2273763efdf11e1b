"""What ``train radiology`` did, as typed data: ``radiology_training.json`` and the manifest's figures.

``to_dict()`` gives the JSON the run writes: :class:`RadiologyRun` the run file (one
:class:`SequenceSetRun` per sequence set trained), :class:`RadiologyFigures` the ``validation``
entry of a model's weights manifest entry and :class:`RadiologyTrainingData` its ``training_data``
entry. No file paths or names are recorded (they may identify patients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class MemberFigures:
    """One model of the ensemble: its sizes, the epoch kept and its C-indices.

    ``fold`` is the 1-based cross-fitting fold (None for the single model of a run without folds);
    ``test_cindex`` is Harrell's C on the fold's held-out cases (None without folds, or when no pair
    of them is comparable); ``early_stopping_cindex`` is on its early-stopping share at the epoch kept.
    """

    fold: int | None
    n_train: int
    n_test: int
    best_epoch: int
    early_stopping_cindex: float | None
    test_cindex: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"fold": self.fold, "n_train": self.n_train, "n_test": self.n_test, "best_epoch": self.best_epoch,
                "early_stopping_cindex": self.early_stopping_cindex, "test_cindex": self.test_cindex}


@dataclass(frozen=True)
class RadiologyFigures:
    """One sequence set's C-indices (None where undefined or not computed) and its members' figures."""

    out_of_fold_cindex: float | None  # development cases, each scored by the model of its fold
    validation_split_cindex: float | None  # validation cases, scored by the deployed model (the ensemble)
    members: tuple[MemberFigures, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"out_of_fold_cindex": self.out_of_fold_cindex, "validation_split_cindex": self.validation_split_cindex,
                "members": [m.to_dict() for m in self.members]}


@dataclass(frozen=True)
class RadiologyTrainingData:
    """What a model was trained on: a hash of the cases' ids, outcomes and inputs, and counts."""

    data_sha256: str
    manifest_sha256: str
    n_cases: int
    n_events: int
    sequences: tuple[str, ...]
    split: str

    def to_dict(self) -> dict[str, Any]:
        return {"data_sha256": self.data_sha256, "manifest_sha256": self.manifest_sha256, "n_cases": self.n_cases,
                "n_events": self.n_events, "sequences": list(self.sequences), "split": self.split}


@dataclass(frozen=True)
class CohortCases:
    """How many cases each split gave, and the cases left out (failed reading, or without the sequences)."""

    development: int
    validation: int
    failed: tuple[Mapping[str, str], ...]  # {"case_id", "error"}, file paths redacted
    without_sequences: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"development": self.development, "validation": self.validation,
                "failed": [dict(f) for f in self.failed], "without_sequences": list(self.without_sequences)}


@dataclass(frozen=True)
class SequenceSetRun:
    """The model of one sequence set: its file's hash and version, data, figures and cases."""

    sequence_set: str
    weights_sha256: str
    model_version: str
    training_data: RadiologyTrainingData
    validation: RadiologyFigures
    cases: CohortCases

    def to_dict(self) -> dict[str, Any]:
        return {"sequence_set": self.sequence_set, "weights_sha256": self.weights_sha256,
                "model_version": self.model_version, "training_data": self.training_data.to_dict(),
                "validation": self.validation.to_dict(), "cases": self.cases.to_dict()}


@dataclass(frozen=True)
class RadiologyRun:
    """A ``train radiology`` run (``radiology_training.json``)."""

    created_utc: str
    arguments: Mapping[str, Any]  # folds, sequence sets and the three configurations
    versions: Mapping[str, str]
    runtime: Mapping[str, Any]  # device, precision, processes, checkpoints (sarcoma_risk.runtime.TrainRuntime)
    models: Mapping[str, SequenceSetRun]  # by sequence set, in order of preference
    skipped: Mapping[str, str]  # sequence set -> why no model was trained
    scores_file: str

    def to_dict(self) -> dict[str, Any]:
        return {"created_utc": self.created_utc, "command": "train radiology", "arguments": dict(self.arguments),
                "versions": dict(self.versions), "runtime": dict(self.runtime),
                "models": {k: v.to_dict() for k, v in self.models.items()}, "skipped": dict(self.skipped),
                "scores_file": self.scores_file}
