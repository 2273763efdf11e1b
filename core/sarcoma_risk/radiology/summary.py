"""What ``train radiology`` did, as typed data: ``radiology_training.json`` and the manifest's figures.

``to_dict()`` gives the JSON the run writes: :class:`RadiologyRun` the run file,
:class:`RadiologyFigures` the ``validation`` entry of the weights manifest and
:class:`RadiologyTrainingData` its ``training_data`` entry. No file paths or names are recorded
(they may identify patients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class FoldFigures:
    """One cross-fitting fold: its sizes, the epoch kept and Harrell's C on its held-out cases."""

    fold: int  # 1-based
    n_train: int
    n_test: int
    best_epoch: int
    test_cindex: float | None  # None when no pair of the fold is comparable

    def to_dict(self) -> dict[str, Any]:
        return {"fold": self.fold, "n_train": self.n_train, "n_test": self.n_test, "best_epoch": self.best_epoch,
                "test_cindex": self.test_cindex}


@dataclass(frozen=True)
class RadiologyFigures:
    """The radiology model's C-indices (None where undefined or not computed)."""

    early_stopping_cindex: float | None  # on the final model's early-stopping share, at the epoch kept
    best_epoch: int
    out_of_fold_cindex: float | None  # development cases, each scored by the model of its fold
    validation_split_cindex: float | None  # validation cases, scored by the final model
    folds: tuple[FoldFigures, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"early_stopping_cindex": self.early_stopping_cindex, "best_epoch": self.best_epoch,
                "out_of_fold_cindex": self.out_of_fold_cindex, "validation_split_cindex": self.validation_split_cindex,
                "folds": [f.to_dict() for f in self.folds]}


@dataclass(frozen=True)
class RadiologyTrainingData:
    """What the final model was trained on: a hash of the cases' ids, outcomes and inputs, and counts."""

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
    """How many cases each split gave, and the cases left out (failed reading, or without MRI)."""

    development: int
    validation: int
    failed: tuple[Mapping[str, str], ...]  # {"case_id", "error"}, file paths redacted
    without_mri: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"development": self.development, "validation": self.validation,
                "failed": [dict(f) for f in self.failed], "without_mri": list(self.without_mri)}


@dataclass(frozen=True)
class RadiologyRun:
    """A ``train radiology`` run (``radiology_training.json``)."""

    created_utc: str
    arguments: Mapping[str, Any]  # folds, sequences and the three configurations
    versions: Mapping[str, str]
    runtime: Mapping[str, Any]  # device, precision, processes, checkpoints (sarcoma_risk.runtime.TrainRuntime)
    weights_sha256: str
    model_version: str
    training_data: RadiologyTrainingData
    validation: RadiologyFigures
    cases: CohortCases
    scores_file: str

    def to_dict(self) -> dict[str, Any]:
        return {"created_utc": self.created_utc, "command": "train radiology", "arguments": dict(self.arguments),
                "versions": dict(self.versions), "runtime": dict(self.runtime), "weights_sha256": self.weights_sha256,
                "model_version": self.model_version, "training_data": self.training_data.to_dict(),
                "validation": self.validation.to_dict(), "cases": self.cases.to_dict(), "scores_file": self.scores_file}
