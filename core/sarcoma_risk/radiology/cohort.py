"""Training the radiology models on a cohort manifest, one per sequence set, with cross-fitted scores.

:func:`train_from_manifest` reads every case with MRI once (a case that fails is reported with its
id and left out), then, for each sequence set (:mod:`sarcoma_risk.sequences`: T2FS + T1CE, T2FS
alone, T1CE alone), trains on the development cases that have the set's sequences and writes into
the output folder:

- ``radiology-<set>.pt`` registered in ``manifest.json`` (:mod:`~sarcoma_risk.radiology.checkpoint`):
  with ``folds >= 2`` the K fold models, whose mean is the deployed model
  (:mod:`~sarcoma_risk.radiology.ensemble` says why); with ``folds = 0`` one model fitted on every
  development case;
- ``radiology_scores.csv`` (case_id, split, sequences, radiology_score, source): with ``folds >= 2``
  each development case scored by the fold model that did not see it (source ``out_of_fold``),
  validation cases by the deployed model (source ``final_model``), one row per case and set. Fusion
  fits on these, so its weights are not inflated by in-sample imaging scores;
- ``radiology_training.json``: versions, arguments, and per set the data hash, per-fold and
  validation figures and the per-case failures (:class:`~sarcoma_risk.radiology.summary.RadiologyRun`).
  No file paths or names are recorded (they may identify patients).

Each case is read and prepared once with every sequence it has; a set's input is that patch's
channels of the set's sequences plus the mask, which is exactly what preparing the set alone gives
(each sequence is normalised on its own, and the patch grid depends on the mask only) when the
sequences share one grid. When a case's T1CE lies on another grid it is resampled onto the T2's
first, as at scoring time for a case with both.
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
from sarcoma_risk.radiology.ensemble import RadiologyEnsemble, ReferenceSource
from sarcoma_risk.radiology.io import read_case
from sarcoma_risk.radiology.preprocess import prepare_case
from sarcoma_risk.radiology.summary import (
    CohortCases,
    MemberFigures,
    RadiologyFigures,
    RadiologyRun,
    RadiologyTrainingData,
    SequenceSetRun,
)
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.runtime import TrainRuntime
from sarcoma_risk.sequences import SEQUENCE_ORDER, SEQUENCE_SETS, set_sequences
from sarcoma_risk.survival.concordance import harrell_c, undefined_as_none
from sarcoma_risk.survival.crossfit import Fold, cross_fit
from sarcoma_risk.survival.folds import event_strata, stratified_folds
from sarcoma_risk.survival.scores import ScoreEntry, ScoreSource, ScoreTable, write_score_file

log = logging.getLogger(__name__)

SCORES_FILE = "radiology_scores.csv"
RUN_FILE = "radiology_training.json"
#: Fewer usable development cases than this cannot train (or early-stop) a model meaningfully.
MIN_DEVELOPMENT_CASES = 8
MASK = "mask"


@dataclass
class CohortPatches:
    """Prepared channels of the usable cases of a manifest, in manifest order.

    ``channels[i]`` maps each sequence case i has (and ``"mask"`` when the configuration adds the
    mask channel) to its (z, y, x) patch channel.
    """

    case_ids: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    time: list[float] = field(default_factory=list)
    event: list[bool] = field(default_factory=list)
    channels: list[dict[str, np.ndarray]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)  # {"case_id", "error", "sequences"}
    without_mri: list[str] = field(default_factory=list)

    def select(self, split: Split, sequences: Sequence[str]) -> np.ndarray:
        """Positions of the cases of ``split`` that have every one of ``sequences``."""
        return np.array([i for i, (s, ch) in enumerate(zip(self.splits, self.channels))
                         if s == split.value and all(q in ch for q in sequences)], dtype=int)

    def stack(self, positions: np.ndarray, sequences: Sequence[str], mask_channel: bool) -> np.ndarray:
        """The network input of the cases at ``positions`` for a set: its sequences' channels, then the mask."""
        names = [*sequences, *([MASK] if mask_channel else [])]
        return np.stack([np.stack([self.channels[i][n] for n in names]) for i in positions]).astype(np.float32)


def _redact(message: str, case: CohortCase) -> str:
    """``message`` with the case's file paths replaced by their manifest column (paths may hold names)."""
    for column in ("mri_t2fs", "mri_t1ce", "tumor_seg"):
        path = getattr(case, column)
        if path is not None:
            message = message.replace(str(path), f"<{column}>")
    return message


def _read_prepared(case: CohortCase, sequences: tuple[str, ...], config: PreprocessConfig):
    mri = read_case(case.mri_t2fs if "t2fs" in sequences else None, case.tumor_seg,
                    case.mri_t1ce if "t1ce" in sequences else None, segment=case.tumor_segment)
    return mri, prepare_case(mri, replace(config, sequences=sequences))


def prepare_cohort(cases: Sequence[CohortCase], config: PreprocessConfig,
                   wanted: Sequence[str] = SEQUENCE_ORDER) -> CohortPatches:
    """Read and prepare every case with MRI once, with each of the ``wanted`` sequences it has.

    Failures are collected per case, never fatal. When a case with two sequences fails, each
    sequence is tried alone, so that a T1CE that cannot be used does not cost the case its T2.
    """
    out = CohortPatches()
    for case in cases:
        sequences = tuple(s for s in case.mri_sequences if s in wanted)
        if not sequences:
            out.without_mri.append(case.case_id)
            continue
        attempts = [sequences] + ([(s,) for s in sequences] if len(sequences) > 1 else [])
        prepared = mri = None
        for attempt in attempts:
            try:
                mri, prepared = _read_prepared(case, attempt, config)
                break
            except SarcomaRiskError as exc:
                log.warning("case %s (%s): left out (%s)", case.case_id, "+".join(attempt), exc)
                out.failures.append({"case_id": case.case_id, "error": _redact(str(exc), case),
                                     "sequences": "+".join(attempt)})
        if prepared is None:
            continue
        names = [*prepared.sequences, *([MASK] if config.mask_channel else [])]
        out.case_ids.append(case.case_id)
        out.splits.append(case.split.value)
        out.time.append(case.time_months)
        out.event.append(case.event)
        out.channels.append(dict(zip(names, prepared.array)))
        out.inputs.append({role: fp["sha256"] for role, fp in sorted(mri.fingerprints.items())}
                          | {"segment": case.tumor_segment})
    return out


def data_sha256(patches: CohortPatches, positions: np.ndarray, sequences: Sequence[str]) -> str:
    """Hash of what a model was trained on: case ids, outcomes and the content hashes of its inputs."""
    roles = {*sequences, "mask", "segment"}
    rows = [{"case_id": patches.case_ids[i], "time": patches.time[i], "event": patches.event[i],
             "inputs": {k: v for k, v in patches.inputs[i].items() if k in roles}} for i in positions]
    text = json.dumps(sorted(rows, key=lambda r: r["case_id"]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TrainingReport:
    """What :func:`train_from_manifest` did (``summary`` is also saved as ``radiology_training.json``).

    ``summary`` is None on the ranks other than 0 of a distributed run, which write nothing.
    """

    summary: RadiologyRun | None
    models: dict[str, RadiologyEnsemble]  # by sequence set


def _versions() -> dict[str, str]:
    return {"sarcoma_risk": __version__, "torch": torch.__version__, "SimpleITK": sitk.Version_VersionString(),
            "numpy": np.__version__}


def check_sequence_sets(sequence_sets: Sequence[str] | None) -> tuple[str, ...]:
    """The sets to train, in order of preference: every set by default; :class:`InvalidInput` for an unknown one."""
    if not sequence_sets:
        return SEQUENCE_SETS
    for name in sequence_sets:
        set_sequences(name)
    if len(set(sequence_sets)) != len(sequence_sets):
        raise InvalidInput(f"sequence sets: {list(sequence_sets)} names a set twice")
    return tuple(s for s in SEQUENCE_SETS if s in sequence_sets)


@dataclass
class _SetFit:
    model: RadiologyEnsemble
    entries: dict[str, ScoreEntry]
    figures: RadiologyFigures
    n_development: int
    n_events: int
    n_validation: int


def _fit_set(patches: CohortPatches, sequences: tuple[str, ...], preprocess: PreprocessConfig,
             model: ModelConfig, train: TrainConfig, folds: int, runtime: TrainRuntime) -> _SetFit:
    """Cross-fit (or fit once) the models of one set; score its development and validation cases."""
    config = replace(preprocess, sequences=sequences)
    set_name = "+".join(sequences)

    def fit_on(name: str, train_config: TrainConfig, positions: np.ndarray) -> RadiologyCoxModel:
        """A model fitted on the development cases at ``positions``, checkpointed as ``name``."""
        estimator = RadiologyCoxModel(config, model, train_config)
        identity = {"data_sha256": data_sha256(patches, dev_idx[positions], sequences), **estimator.config_dict()}
        return estimator.fit(X_dev[positions], t_dev[positions], e_dev[positions], runtime=runtime,
                             checkpoint=runtime.checkpoint(name, identity))

    dev_idx = patches.select(Split.DEVELOPMENT, sequences)
    val_idx = patches.select(Split.VALIDATION, sequences)
    X_dev = patches.stack(dev_idx, sequences, config.mask_channel)
    time = np.asarray(patches.time, dtype=float)
    event = np.asarray(patches.event, dtype=bool)
    t_dev, e_dev = time[dev_idx], event[dev_idx]
    entries: dict[str, ScoreEntry] = {}
    if folds:
        def fit(fold: Fold) -> RadiologyCoxModel:
            return fit_on(f"radiology-{set_name}-fold-{fold.number + 1}",
                          replace(train, seed=train.seed + 1 + fold.number), fold.train)

        assignment = stratified_folds(event_strata(e_dev), folds, train.seed)
        crossfit = cross_fit(assignment, folds, fit, lambda fold_model, fold: fold_model.predict(X_dev[fold.test]),
                             log=log)
        oof = np.asarray(crossfit.scores, dtype=float)
        members = []
        for number, fold_model in enumerate(crossfit.models):
            test = assignment == number
            members.append(MemberFigures(number + 1, int((~test).sum()), int(test.sum()), fold_model.best_epoch_,
                                         fold_model.validation_cindex_,
                                         undefined_as_none(harrell_c(t_dev[test], e_dev[test], oof[test]))))
        ensemble = RadiologyEnsemble(crossfit.models, oof, ReferenceSource.OUT_OF_FOLD)
        entries |= {patches.case_ids[i]: ScoreEntry(Split.DEVELOPMENT.value, float(s), ScoreSource.OUT_OF_FOLD.value)
                    for i, s in zip(dev_idx, oof)}
        oof_c = undefined_as_none(harrell_c(t_dev, e_dev, oof))
    else:
        log.info("one model on all %d development cases (no cross-fitting)", len(dev_idx))
        single = fit_on(f"radiology-{set_name}", train, np.arange(len(dev_idx)))
        ensemble = RadiologyEnsemble([single], single.reference_scores_, ReferenceSource.IN_SAMPLE)
        members = [MemberFigures(None, len(dev_idx), 0, single.best_epoch_, single.validation_cindex_, None)]
        oof_c = None
    val_scores = ensemble.predict(patches.stack(val_idx, sequences, config.mask_channel)) if len(val_idx) \
        else np.array([])
    entries |= {patches.case_ids[i]: ScoreEntry(Split.VALIDATION.value, float(s), ScoreSource.FINAL_MODEL.value)
                for i, s in zip(val_idx, val_scores)}
    val_c = undefined_as_none(harrell_c(time[val_idx], event[val_idx], val_scores)) if len(val_idx) else None
    return _SetFit(ensemble, entries, RadiologyFigures(oof_c, val_c, tuple(members)), len(dev_idx), int(e_dev.sum()),
                   len(val_idx))


def train_from_manifest(manifest_path: str | Path, out_dir: str | Path, *, preprocess: PreprocessConfig,
                        model: ModelConfig, train: TrainConfig, folds: int = 5,
                        sequence_sets: Sequence[str] | None = None,
                        runtime: TrainRuntime | None = None) -> TrainingReport:
    """Train the radiology models on a manifest's development cases and write the outputs (module docstring).

    Parameters
    ----------
    folds : int
        Cross-fitting folds for out-of-fold development scores (>= 2), or 0 for none (then the
        scores file holds only the validation cases).
    sequence_sets : sequence of str, optional
        The sets to train (``t2fs+t1ce``, ``t2fs``, ``t1ce``). Default: every set, each when enough
        development cases have its sequences; a set named here that cannot be trained is an error.
    runtime : TrainRuntime, optional
        Device, precision, process group and checkpoints (default: one process on the CPU, fp32,
        no checkpoints). Each fit (``radiology-<set>-fold-K``, or ``radiology-<set>`` without folds)
        checkpoints after every epoch and, with ``resume``, continues where its checkpoint stopped.
        In a distributed run every rank trains and scores; rank 0 alone writes the outputs.
    """
    if isinstance(folds, bool) or not isinstance(folds, int) or folds == 1 or folds < 0:
        raise InvalidInput(f"folds: {folds!r} must be 0 (no cross-fitting) or at least 2")
    sets = check_sequence_sets(sequence_sets)
    runtime = runtime if runtime is not None else TrainRuntime()
    main_rank = runtime.distributed.is_main
    manifest = read_manifest(manifest_path)
    out_dir = Path(out_dir)
    if main_rank:
        out_dir.mkdir(parents=True, exist_ok=True)
    wanted = tuple(s for s in SEQUENCE_ORDER if any(s in set_sequences(name) for name in sets))
    patches = prepare_cohort(manifest.cases, preprocess, wanted)
    needed = max(MIN_DEVELOPMENT_CASES, 2 * folds)

    runs: dict[str, SequenceSetRun] = {}
    tables: list[ScoreTable] = []
    skipped: dict[str, str] = {}
    models: dict[str, RadiologyEnsemble] = {}
    usable = dict(zip(patches.case_ids, (set(ch) for ch in patches.channels)))
    for name in sets:
        sequences = set_sequences(name)
        dev_idx = patches.select(Split.DEVELOPMENT, sequences)
        # The cases this set lost to a failure (an attempt with one of its sequences failed and the case
        # did not end up with all of them), each with its first error.
        lost: dict[str, str] = {}
        for f in patches.failures:
            if set(f["sequences"].split("+")) & set(sequences) and not set(sequences) <= usable.get(f["case_id"], set()):
                lost.setdefault(f["case_id"], f["error"])
        failed = tuple({"case_id": case_id, "error": error} for case_id, error in lost.items())
        events = int(np.asarray(patches.event, dtype=bool)[dev_idx].sum()) if len(dev_idx) else 0
        if len(dev_idx) < needed or not events:
            why = (f"{len(dev_idx)} usable development case(s) with {name.replace('+', ' and ')}; at least {needed} "
                   "needed" if len(dev_idx) < needed else "no recurrence among its development cases")
            skipped[name] = why
            log.warning("sequence set %s: no model (%s)", name, why)
            continue
        log.info("sequence set %s: %d development cases", name, len(dev_idx))
        fitted = _fit_set(patches, sequences, preprocess, model, train, folds, runtime)
        models[name] = fitted.model
        if not main_rank:  # the other ranks of a distributed run write nothing
            continue
        digest = data_sha256(patches, dev_idx, sequences)
        training_data = RadiologyTrainingData(digest, sha256_file(manifest.path), fitted.n_development,
                                              fitted.n_events, sequences, Split.DEVELOPMENT.value)
        entry = save_model(fitted.model, out_dir, version=f"{__version__}+{digest[:8]}",
                           training_data=training_data.to_dict(), validation=fitted.figures.to_dict())
        without = tuple(c.case_id for c in manifest.cases if c.has_mri and not set(sequences) <= set(c.mri_sequences))
        runs[name] = SequenceSetRun(name, entry["sha256"], entry["version"], training_data, fitted.figures,
                                    CohortCases(fitted.n_development, fitted.n_validation, failed,
                                                tuple(patches.without_mri) + without))
        tables.append(ScoreTable("radiology", fitted.entries, sequences=name))
    if not models:
        raise InvalidManifest(
            f"{manifest.path}: no radiology model could be trained: " + "; ".join(f"{k}: {v}" for k, v in skipped.items())
            + f" (cases failed: {len(patches.failures)}, without MRI: {len(patches.without_mri)})"
            + "".join(f"\n  {f['case_id']}: {f['error']}" for f in patches.failures[:10]))
    if sequence_sets and skipped:
        raise InvalidManifest(f"{manifest.path}: " + "; ".join(f"sequence set {k}: {v}" for k, v in skipped.items()))
    if not main_rank:
        return TrainingReport(None, models)
    runtime_figures = runtime.to_dict()
    if runtime.distributed.active:  # every rank's weights of each member model, to show they are the same
        runtime_figures["distributed"]["member_rank_sha256"] = {
            name: [member.replica_sha256_ for member in ensemble.members] for name, ensemble in models.items()}
    # CRLF row ends, as radiology's score tables have always had (the reader takes both).
    write_score_file(out_dir / SCORES_FILE, tables, line_end="\r\n")
    summary = RadiologyRun(
        created_utc=utc_now(),
        arguments={"folds": folds, "sequence_sets": list(sets), "preprocess": preprocess.to_dict(),
                   "model": model.to_dict(), "train": train.to_dict()},
        versions=_versions(), runtime=runtime_figures, models=runs, skipped=skipped, scores_file=SCORES_FILE)
    atomic_write_json(out_dir / RUN_FILE, summary.to_dict())
    return TrainingReport(summary, models)
