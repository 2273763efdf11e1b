"""Training the radiology model on a cohort manifest, with cross-fitted scores for fusion.

:func:`train_from_manifest` reads every case with MRI (a case that fails is reported with its id and
left out), trains on the development split only, and writes into the output folder:

- ``radiology.pt`` registered in ``manifest.json`` (:mod:`~sarcoma_risk.radiology.checkpoint`);
- ``radiology_scores.csv`` (case_id, split, radiology_score, source): with ``folds >= 2``, each
  development case scored by a model that did not see it (source ``out_of_fold``); validation cases
  scored by the final model (source ``final_model``). Fusion fits on these, so its weights are not
  inflated by in-sample imaging scores;
- ``radiology_training.json``: versions, arguments, data hash, per-fold and validation figures and
  the per-case failures (:class:`~sarcoma_risk.radiology.summary.RadiologyRun`). No file paths or
  names are recorded (they may identify patients).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk
import torch

from sarcoma_risk import __version__
from sarcoma_risk.cohort import CohortCase, Split, read_manifest
from sarcoma_risk.errors import InvalidInput, InvalidManifest, SarcomaRiskError
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.provenance import sha256_file, utc_now
from sarcoma_risk.radiology.checkpoint import save_model
from sarcoma_risk.radiology.config import ModelConfig, PreprocessConfig, TrainConfig
from sarcoma_risk.radiology.io import read_case
from sarcoma_risk.radiology.preprocess import prepare_case
from sarcoma_risk.radiology.summary import (
    CohortCases,
    FoldFigures,
    RadiologyFigures,
    RadiologyRun,
    RadiologyTrainingData,
)
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.runtime import TrainRuntime
from sarcoma_risk.survival.concordance import harrell_c, undefined_as_none
from sarcoma_risk.survival.crossfit import Fold, cross_fit
from sarcoma_risk.survival.folds import event_strata, stratified_folds
from sarcoma_risk.survival.scores import ScoreEntry, ScoreSource, ScoreTable, write_score_table

log = logging.getLogger(__name__)

SCORES_FILE = "radiology_scores.csv"
RUN_FILE = "radiology_training.json"
#: Fewer usable development cases than this cannot train (or early-stop) a model meaningfully.
MIN_DEVELOPMENT_CASES = 8


@dataclass
class CohortPatches:
    """Prepared patches of the usable cases of a manifest, in manifest order."""

    case_ids: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    event: list[bool] = field(default_factory=list)
    arrays: list[np.ndarray] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    without_mri: list[str] = field(default_factory=list)

    def select(self, split: Split) -> np.ndarray:
        return np.array([s == split.value for s in self.splits], dtype=bool)


def choose_sequences(cases: Sequence[CohortCase]) -> tuple[str, ...]:
    """Both sequences when every development case with MRI has a T1CE, else the T2 alone."""
    development = [c for c in cases if c.split is Split.DEVELOPMENT and c.has_mri]
    return ("t2fs", "t1ce") if development and all(c.mri_t1ce is not None for c in development) else ("t2fs",)


def _redact(message: str, case: CohortCase) -> str:
    """``message`` with the case's file paths replaced by their manifest column (paths may hold names)."""
    for column in ("mri_t2fs", "mri_t1ce", "tumor_seg"):
        path = getattr(case, column)
        if path is not None:
            message = message.replace(str(path), f"<{column}>")
    return message


def prepare_cohort(cases: Sequence[CohortCase], config: PreprocessConfig) -> CohortPatches:
    """Read and prepare every case with MRI; failures are collected per case, never fatal."""

    out = CohortPatches()
    for case in cases:
        if not case.has_mri:
            out.without_mri.append(case.case_id)
            continue
        try:
            t1 = case.mri_t1ce if "t1ce" in config.sequences else None
            mri = read_case(case.mri_t2fs, case.tumor_seg, t1, segment=case.tumor_segment)
            prepared = prepare_case(mri, config)
        except SarcomaRiskError as exc:
            log.warning("case %s: left out (%s)", case.case_id, exc)
            out.failures.append({"case_id": case.case_id, "error": _redact(str(exc), case)})
            continue
        out.case_ids.append(case.case_id)
        out.splits.append(case.split.value)
        out.time.append(case.time_months)
        out.event.append(case.event)
        out.arrays.append(prepared.array)
        out.inputs.append({role: fp["sha256"] for role, fp in sorted(mri.fingerprints.items())}
                          | {"segment": case.tumor_segment})
    return out


def data_sha256(patches: CohortPatches, mask: np.ndarray) -> str:
    """Hash of what a model was trained on: case ids, outcomes and input content hashes."""
    rows = [{"case_id": patches.case_ids[i], "time": patches.time[i], "event": patches.event[i],
             "inputs": patches.inputs[i]} for i in np.flatnonzero(mask)]
    text = json.dumps(sorted(rows, key=lambda r: r["case_id"]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TrainingReport:
    """What :func:`train_from_manifest` did (``summary`` is also saved as ``radiology_training.json``).

    ``summary`` is None on the ranks other than 0 of a distributed run, which write nothing.
    """

    summary: RadiologyRun | None
    model: RadiologyCoxModel


def _versions() -> dict[str, str]:
    return {"sarcoma_risk": __version__, "torch": torch.__version__, "SimpleITK": sitk.Version_VersionString(),
            "numpy": np.__version__}


def train_from_manifest(manifest_path: str | Path, out_dir: str | Path, *, preprocess: PreprocessConfig,
                        model: ModelConfig, train: TrainConfig, folds: int = 5,
                        sequences: Sequence[str] | None = None, runtime: TrainRuntime | None = None) -> TrainingReport:
    """Train the radiology model on a manifest's development cases and write the outputs (module docstring).

    Parameters
    ----------
    folds : int
        Cross-fitting folds for out-of-fold development scores (>= 2), or 0 for none (then the
        scores file holds only the validation cases).
    sequences : sequence of str, optional
        Input sequences; default: both when every development case has a T1CE, else "t2fs".
    runtime : TrainRuntime, optional
        Device, precision, process group and checkpoints (default: one process on the CPU, fp32,
        no checkpoints). Each fit (``radiology-fold-K``, ``radiology-final``) checkpoints after
        every epoch and, with ``resume``, continues where its checkpoint stopped. In a distributed
        run every rank trains and scores; rank 0 alone writes the outputs.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds == 1 or folds < 0:
        raise InvalidInput(f"folds: {folds!r} must be 0 (no cross-fitting) or at least 2")
    runtime = runtime if runtime is not None else TrainRuntime()
    main_rank = runtime.distributed.is_main
    manifest = read_manifest(manifest_path)
    chosen = tuple(sequences) if sequences else choose_sequences(manifest.cases)
    preprocess = replace(preprocess, sequences=chosen)
    out_dir = Path(out_dir)
    if main_rank:
        out_dir.mkdir(parents=True, exist_ok=True)

    patches = prepare_cohort(manifest.cases, preprocess)
    development = patches.select(Split.DEVELOPMENT)
    validation = patches.select(Split.VALIDATION)
    n_dev = int(development.sum())
    if n_dev < max(MIN_DEVELOPMENT_CASES, 2 * folds):
        raise InvalidManifest(
            f"{manifest.path}: {n_dev} usable development case(s) with MRI; at least "
            f"{max(MIN_DEVELOPMENT_CASES, 2 * folds)} needed (failed: {len(patches.failures)}, without MRI: "
            f"{len(patches.without_mri)})" + "".join(f"\n  {f['case_id']}: {f['error']}" for f in patches.failures[:10]))
    X = np.stack(patches.arrays).astype(np.float32)
    time, event = np.asarray(patches.time, dtype=float), np.asarray(patches.event, dtype=bool)
    dev_idx = np.flatnonzero(development)
    if not event[dev_idx].any():
        raise InvalidManifest(f"{manifest.path}: no recurrence among the development cases with MRI; "
                              "a Cox model needs events")

    def fit_on(name: str, config: TrainConfig, idx: np.ndarray) -> RadiologyCoxModel:
        """A model fitted on the cases ``idx``, checkpointed as ``name``."""
        mask = np.zeros(len(X), dtype=bool)
        mask[idx] = True
        estimator = RadiologyCoxModel(preprocess, model, config)
        identity = {"data_sha256": data_sha256(patches, mask), **estimator.config_dict()}
        return estimator.fit(X[idx], time[idx], event[idx], runtime=runtime,
                             checkpoint=runtime.checkpoint(name, identity))

    entries: dict[str, ScoreEntry] = {}
    fold_figures: list[FoldFigures] = []
    oof = np.full(len(X), np.nan)
    if folds:
        def fit(fold: Fold) -> RadiologyCoxModel:
            return fit_on(f"radiology-fold-{fold.number + 1}", replace(train, seed=train.seed + 1 + fold.number),
                          dev_idx[fold.train])

        assignment = stratified_folds(event_strata(event[dev_idx]), folds, train.seed)
        crossfit = cross_fit(assignment, folds, fit, lambda fold_model, fold: fold_model.predict(X[dev_idx[fold.test]]),
                             log=log)
        oof[dev_idx] = crossfit.scores
        for number, fold_model in enumerate(crossfit.models):
            test = dev_idx[assignment == number]
            fold_figures.append(FoldFigures(number + 1, len(dev_idx) - len(test), len(test), fold_model.best_epoch_,
                                            undefined_as_none(harrell_c(time[test], event[test], oof[test]))))
        entries |= {patches.case_ids[i]: ScoreEntry(Split.DEVELOPMENT.value, float(oof[i]), ScoreSource.OUT_OF_FOLD.value)
                    for i in dev_idx}

    log.info("final model: training on all %d development cases", n_dev)
    final = fit_on("radiology-final", train, dev_idx)
    val_idx = np.flatnonzero(validation)
    val_scores = final.predict(X[val_idx]) if len(val_idx) else np.array([])
    entries |= {patches.case_ids[i]: ScoreEntry(Split.VALIDATION.value, float(s), ScoreSource.FINAL_MODEL.value)
                for i, s in zip(val_idx, val_scores)}

    digest = data_sha256(patches, development)

    figures = RadiologyFigures(
        final.validation_cindex_, final.best_epoch_,
        undefined_as_none(harrell_c(time[dev_idx], event[dev_idx], oof[dev_idx])) if folds else None,
        undefined_as_none(harrell_c(time[val_idx], event[val_idx], val_scores)) if len(val_idx) else None,
        tuple(fold_figures))
    training_data = RadiologyTrainingData(digest, sha256_file(manifest.path), n_dev, int(event[dev_idx].sum()),
                                          chosen, Split.DEVELOPMENT.value)

    if not main_rank:  # the other ranks of a distributed run write nothing
        return TrainingReport(None, final)
    runtime_figures = runtime.to_dict()
    if runtime.distributed.active:
        runtime_figures["distributed"]["final_model_rank_sha256"] = final.replica_sha256_
    entry = save_model(final, out_dir, version=f"{__version__}+{digest[:8]}", training_data=training_data.to_dict(),
                       validation=figures.to_dict())
    # CRLF row ends, as radiology's score tables have always had (the reader takes both).
    write_score_table(out_dir / SCORES_FILE, ScoreTable("radiology", entries), line_end="\r\n")
    summary = RadiologyRun(
        created_utc=utc_now(),
        arguments={"folds": folds, "sequences": list(chosen), "preprocess": preprocess.to_dict(),
                   "model": model.to_dict(), "train": train.to_dict()},
        versions=_versions(), runtime=runtime_figures, weights_sha256=entry["sha256"], model_version=entry["version"],
        training_data=training_data, validation=figures,
        cases=CohortCases(n_dev, len(val_idx), tuple(patches.failures), tuple(patches.without_mri)),
        scores_file=SCORES_FILE)
    atomic_write_json(out_dir / RUN_FILE, summary.to_dict())
    return TrainingReport(summary, final)
