"""What ``train pathology`` and ``train pathology-signature`` did, as typed data.

``to_dict()`` gives the JSON of the run: :class:`PathologyRun` is ``train_pathology_run.json`` (and
what ``train pathology --json`` prints), :class:`SignatureRun` what ``train pathology-signature
--json`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from sarcoma_risk.pathology.train import TrainingResult


@dataclass(frozen=True)
class PatchModelRun:
    """One patch model the run trained: its weights' sha256 and how its training went."""

    sha256: str
    history: tuple[Mapping[str, Any], ...]  # per epoch: epoch, train_loss, val_cindex, val_loss
    best_epoch: int
    best_val_cindex: float | None
    n_train_cases: int
    n_val_cases: int
    labels: Mapping[str, int]  # positive, negative, censored_before_horizon, validation
    fold: int | None = None  # 0-based cross-fitting fold; None for the final model

    @classmethod
    def of(cls, result: TrainingResult, sha256: str, fold: int | None = None) -> "PatchModelRun":
        return cls(sha256, tuple(result.history), result.best_epoch, result.best_val_cindex, result.n_train_cases,
                   result.n_val_cases, result.label_counts, fold)

    def to_dict(self) -> dict[str, Any]:
        return {**({} if self.fold is None else {"fold": self.fold}), "sha256": self.sha256,
                "history": [dict(h) for h in self.history], "best_epoch": self.best_epoch,
                "best_val_cindex": self.best_val_cindex, "n_train_cases": self.n_train_cases,
                "n_val_cases": self.n_val_cases, "labels": dict(self.labels)}


@dataclass(frozen=True)
class PathologyRun:
    """A ``train pathology`` run.

    The cross-fitting figures (``fold_models`` and the two out-of-fold C-indices) are written only
    when the run cross-fitted (``folds`` >= 2), the validation C-index only when the manifest has
    validation cases (``validated``). A C-index is None when no pair of its cases is comparable.
    """

    started_utc: str
    finished_utc: str
    config: Mapping[str, Any]  # the patch training configuration
    folds: int
    signature: Mapping[str, Any]  # the slide signature configuration
    data_sha256: str
    versions: Mapping[str, str]
    final_model: PatchModelRun
    scores_file: str
    fold_models: tuple[PatchModelRun, ...] = ()
    oof_signature_cindex: float | None = None
    oof_mean_probability_cindex: float | None = None
    validated: bool = False
    validation_signature_cindex: float | None = None
    runtime: Mapping[str, Any] | None = None  # device, precision, processes, checkpoints (TrainRuntime.to_dict)
    initialisation: Mapping[str, Any] | None = None  # with --init auto: requested, used and why

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"started_utc": self.started_utc, "config": dict(self.config), "folds": self.folds,
                               "signature": dict(self.signature), "data_sha256": self.data_sha256,
                               "versions": dict(self.versions)}
        if self.runtime is not None:
            out["runtime"] = dict(self.runtime)
        if self.initialisation is not None:
            out["initialisation"] = dict(self.initialisation)
        if self.folds:
            out["fold_models"] = [m.to_dict() for m in self.fold_models]
        out["final_model"] = self.final_model.to_dict()
        if self.folds:
            out["oof_signature_cindex"] = self.oof_signature_cindex
            out["oof_mean_probability_cindex"] = self.oof_mean_probability_cindex
        if self.validated:
            out["validation_signature_cindex"] = self.validation_signature_cindex
        out["finished_utc"] = self.finished_utc
        out["scores_file"] = self.scores_file
        return out


@dataclass(frozen=True)
class SignatureRun:
    """A ``train pathology-signature`` run: the signature fit for an existing patch model."""

    n_development_cases: int
    data_sha256: str
    training_concordance: float | None
    validated: bool = False  # the manifest has validation cases; only then is the C-index written
    validation_cindex: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_development_cases": self.n_development_cases, "data_sha256": self.data_sha256,
                               "training_concordance": self.training_concordance}
        if self.validated:
            out["validation_cindex"] = self.validation_cindex
        return out
