"""`train pathology`: patch model, slide signature and honest out-of-fold pathology scores.

With ``folds = K >= 2`` the development cases are split into K stratified folds. For each fold a
patch model is trained on the other folds and scores the fold's slides (out-of-fold tile scores).
The slide signature is then fit on those out-of-fold tile scores, and cross-fitted itself: fold
k's pathology score comes from a signature fit on the other folds' cases. So neither the patch
model nor the Cox model behind a development case's score has seen that case's outcome directly.
(A weaker, second-order dependence remains, as in any stacking: the fold-j patch model that scored
the cases a fold-k signature is fit on was trained with fold k's labels.)

The final patch model is trained on all development cases; the final signature is fit on all
out-of-fold tile scores (the distribution the signature will see on new slides is that of a model
which has not seen them). Validation-split cases are scored by the final models.

The fusion's pathology weight is fitted on the out-of-fold scores, but a new slide is scored by
the final patch model, whose probabilities spread differently from the fold models' (each stops
training at its own epoch). So the final pipeline's score is mapped onto the out-of-fold scale,
``offset + slope * score``, with the mean and standard deviation of both scores matched on the
development cases the final patch model never trained on (its early-stopping share and the cases
censored before the horizon, which have no label): on those cases both pipelines score slides they
did not learn from. Averaging the fold models instead, as the radiology model does, would multiply
the time to score a slide by K. (Matching the spread assumes the final pipeline is no noisier than a
fold pipeline; if it is less noisy, the fused risk is, if anything, slightly under-spread.) The map
is saved with the signature (:class:`~sarcoma_risk.pathology.signature.ScaleMap`) and applied by
every scorer; with fewer than :data:`MIN_SCALE_CASES` such cases it is left out, with a warning.

Without folds (``folds = 0``) the signature is fit on the final model's scores of its own training
slides, which flatters it; development cases then get no score in ``pathology_scores.csv``.

Outputs in ``out_dir``: ``pathology-patch.pt`` and ``pathology-signature.json`` registered in its
``manifest.json``; ``pathology_scores.csv`` (case_id, split, pathology_score, source);
``train_pathology_run.json`` (arguments, versions, histories, figures).
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sarcoma_risk.cohort import Split, read_manifest
from sarcoma_risk.errors import InvalidManifest, InvalidOutcome
from sarcoma_risk.fileio import atomic_write_bytes, atomic_write_json
from sarcoma_risk.pathology.model import PatchRunner, make_patch_model, resolve_init, state_bytes
from sarcoma_risk.pathology.pipeline import PATCH_KIND, PATCH_MODEL, SIGNATURE_KIND, SIGNATURE_MODEL, compute_tile_scores
from sarcoma_risk.pathology.signature import ScaleMap, SlideSignature, pool_counts
from sarcoma_risk.pathology.slide import slide_fingerprint
from sarcoma_risk.pathology.summary import PathologyRun, PatchModelRun, SignatureRun
from sarcoma_risk.pathology.train import (
    PatchTrainer,
    SlidePool,
    SlideRef,
    TrainConfig,
    TrainingCase,
    case_strata,
    naming_case,
    slide_c_index,
)
from sarcoma_risk.provenance import sha256_bytes, software_version, utc_now
from sarcoma_risk.runtime import TrainRuntime
from sarcoma_risk.survival.crossfit import Fold, cross_fit
from sarcoma_risk.survival.folds import stratified_folds
from sarcoma_risk.survival.scores import ScoreEntry, ScoreSource, ScoreTable, write_score_file
from sarcoma_risk.weights import WeightRegistry

log = logging.getLogger(__name__)

SCORES_FILE = "pathology_scores.csv"
RUN_FILE = "train_pathology_run.json"
PATCH_FILE = "pathology-patch.pt"
SIGNATURE_FILE = "pathology-signature.json"
#: Fewest development cases unseen by the final patch model to fit the map onto the out-of-fold scale.
MIN_SCALE_CASES = 10


@dataclass(frozen=True)
class SignatureConfig:
    """Slide-signature hyperparameters (see :class:`~sarcoma_risk.pathology.signature.SlideSignature`)."""

    n_bins: int = 10
    n_words: int = 20
    penalizer: float = 0.5
    l1_ratio: float = 0.0

    def make(self) -> SlideSignature:
        return SlideSignature(self.n_bins, self.n_words, self.penalizer, self.l1_ratio)


@dataclass
class Cohort:
    development: list[TrainingCase]
    validation: list[TrainingCase]
    data_sha256: str
    centres: dict[str, str]


def load_cohort(manifest_path: str | Path) -> Cohort:
    """The cases of a manifest that have slides, with slide fingerprints and a hash of the rows used."""

    manifest = read_manifest(manifest_path)
    missing = [f"{c.case_id}: {p}" for c in manifest.cases for p in c.slides if not p.exists()]
    if missing:
        raise InvalidManifest(f"{manifest.path}: {len(missing)} slide file(s) not found:\n  " + "\n  ".join(missing[:20]))
    groups: dict[Split, list[TrainingCase]] = {Split.DEVELOPMENT: [], Split.VALIDATION: []}
    rows, centres = [], {}
    for case in manifest.cases:
        if not case.has_slides:
            continue
        refs = [SlideRef(path, annotation, slide_fingerprint(path)["sha256"])
                for path, annotation in zip(case.slides, case.annotations)]
        groups[case.split].append(TrainingCase(case.case_id, case.time_months, case.event, refs))
        centres[case.case_id] = case.centre
        rows.append({"case_id": case.case_id, "centre": case.centre, "split": case.split.value,
                     "time_months": case.time_months, "event": case.event, "slides": [r.sha256 for r in refs],
                     "annotations": [a is not None for a in case.annotations]})
    if not groups[Split.DEVELOPMENT]:
        raise InvalidManifest(f"{manifest.path}: no development case has a slide; nothing to train on")
    data_sha = sha256_bytes(json.dumps(rows, sort_keys=True).encode())
    return Cohort(groups[Split.DEVELOPMENT], groups[Split.VALIDATION], data_sha, centres)


def score_cases(cases: Sequence[TrainingCase], model: Any, model_sha256: str, config: TrainConfig,
                signature: SlideSignature, cache_dir: Path | None, progress: bool,
                runtime: TrainRuntime | None = None) -> dict[str, dict[str, Any]]:
    """Tile-score every slide of ``cases`` with ``model``; per case the pooled counts and mean probability.

    In a distributed run (``runtime``) each rank scores its share of the cases (writing their tile
    caches) and every rank gets all the results, in the order of ``cases``.
    """

    runtime = runtime if runtime is not None else TrainRuntime()
    group = runtime.distributed
    runner = PatchRunner(model, device=runtime.torch_device)
    out = {}
    for case in group.shard(cases):
        counts, probs = [], []
        for ref in case.slides:
            with naming_case(case.case_id):
                tiles, _ = compute_tile_scores(ref.path, runner, model_sha256, spacing_um=config.spacing_um,
                                               patch_px=config.patch_px, annotation=ref.annotation,
                                               cache_dir=cache_dir, slide_fingerprint={"sha256": ref.sha256},
                                               workers=config.workers, progress=progress)
            counts.append(signature.counts(tiles.probabilities))
            probs.append(tiles.probabilities)
        out[case.case_id] = {"counts": pool_counts(counts), "mean_probability": float(np.concatenate(probs).mean())}
    if group.active:
        shares = group.gather(out)
        out = {case.case_id: next(share[case.case_id] for share in shares if case.case_id in share) for case in cases}
    return out


def match_scale(deployed: Sequence[float], out_of_fold: Sequence[float], method: str) -> ScaleMap | None:
    """The linear map that gives ``deployed`` the mean and standard deviation of ``out_of_fold`` (same
    cases); None when there are fewer than :data:`MIN_SCALE_CASES` cases or either score is constant."""
    x, y = np.asarray(deployed, dtype=float), np.asarray(out_of_fold, dtype=float)
    if x.size < MIN_SCALE_CASES or not (x.std(ddof=1) > 0 and y.std(ddof=1) > 0):
        return None
    slope = float(y.std(ddof=1) / x.std(ddof=1))
    return ScaleMap(float(y.mean() - slope * x.mean()), slope, int(x.size), method)


def fit_identity(cases: Sequence[TrainingCase], config: TrainConfig) -> dict[str, Any]:
    """What a patch-model fit is, for its checkpoint: the cases (outcome and slides) and the configuration.

    The reader thread count is left out: it does not change the weights.
    """
    rows = [[c.case_id, c.time, c.event, [r.sha256 for r in c.slides]] for c in cases]
    training = {k: v for k, v in config.to_dict().items() if k != "workers"}
    return {"data_sha256": sha256_bytes(json.dumps(rows, sort_keys=True).encode()), "config": training}


def _outcomes(cases: Sequence[TrainingCase]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([c.time for c in cases], dtype=float), np.array([c.event for c in cases], dtype=bool)


def train_pathology(manifest_path: str | Path, out_dir: str | Path, config: TrainConfig, *, folds: int = 5,
                    signature_config: SignatureConfig = SignatureConfig(), cache_dir: str | Path | None = None,
                    progress: bool = False, runtime: TrainRuntime | None = None) -> PathologyRun | None:
    """Train and register the pathology models; write out-of-fold scores. Returns what the run did.

    ``runtime`` gives the device, precision, process group, patch-reading processes and checkpoints
    (default: one process on the CPU, fp32, reader threads, no checkpoints). Each patch-model fit
    (``pathology-fold-K``, ``pathology-final``) checkpoints after every epoch and, with ``resume``,
    continues where its checkpoint stopped. In a distributed run every rank trains and scores its
    share of the slides; rank 0 alone fits the signature and writes the outputs, and the other ranks
    return None.
    """

    config.check()
    if folds == 1 or folds < 0:
        raise InvalidManifest(f"folds: {folds}; use 0 (no cross-fitting) or K >= 2")
    init, init_reason = resolve_init(config.init, config.architecture)
    if init_reason is not None:
        log.info("--init auto: %s", init_reason)
        config = replace(config, init=str(init))
    runtime = runtime if runtime is not None else TrainRuntime()
    main_rank = runtime.distributed.is_main
    out_dir = Path(out_dir)
    if main_rank:
        out_dir.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "tile-cache"
    cohort = load_cohort(manifest_path)
    dev = cohort.development
    if folds and len(dev) < 2 * folds:
        raise InvalidOutcome(f"{len(dev)} development cases with slides are too few for {folds} folds "
                             f"(need at least {2 * folds}); use fewer --folds")
    pool = SlidePool()
    trainer = PatchTrainer(config, progress=progress and main_rank, runtime=runtime)
    signature = signature_config.make()

    def fit(name: str, cases: Sequence[TrainingCase]) -> Any:
        return trainer.fit(cases, pool, checkpoint=runtime.checkpoint(name, fit_identity(cases, config)))

    def score(cases: Sequence[TrainingCase], model: Any, sha: str) -> dict[str, dict[str, Any]]:
        return score_cases(cases, model, sha, config, signature, cache, progress and main_rank, runtime)

    started = utc_now()
    fold_models: tuple[PatchModelRun, ...] = ()
    try:
        oof: dict[str, dict[str, Any]] = {}
        if folds:
            def fit_patch_model(fold: Fold) -> tuple[Any, str]:
                result = fit(f"pathology-fold-{fold.number + 1}", [dev[i] for i in fold.train])
                return result, sha256_bytes(state_bytes(result.model))

            def score_held_out(fitted: tuple[Any, str], fold: Fold) -> list[dict[str, Any]]:
                result, sha = fitted
                return list(score([dev[i] for i in fold.test], result.model, sha).values())

            fold_of = stratified_folds(case_strata(dev, config.horizon_months), folds, [config.seed, 21])
            patch_models = cross_fit(fold_of, folds, fit_patch_model, score_held_out, log=log)
            oof = {case.case_id: features for case, features in zip(dev, patch_models.scores)}
            fold_models = tuple(PatchModelRun.of(result, sha, fold=k) for k, (result, sha) in enumerate(patch_models.models))
        log.info("final model: training on all %d development cases", len(dev))
        final = fit("pathology-final", dev)
        patch_bytes = state_bytes(final.model)
        final_sha = sha256_bytes(patch_bytes)
        val_scores = score(cohort.validation, final.model, final_sha)
        in_sample = {} if folds else score(dev, final.model, final_sha)
        not_trained = set(final.not_trained_on)
        unseen_scores = score([c for c in dev if c.case_id in not_trained], final.model, final_sha) if folds else {}
        unseen = list(unseen_scores)
    finally:
        pool.close()
    if not main_rank:  # the other ranks of a distributed run write nothing
        return None

    dev_features = oof if folds else in_sample
    time, event = _outcomes(dev)
    final_signature = signature_config.make().fit([dev_features[c.case_id]["counts"] for c in dev], time, event)
    entries: dict[str, ScoreEntry] = {}
    oof_signature_c = oof_probability_c = validation_c = None
    if folds:
        counts = [oof[c.case_id]["counts"] for c in dev]
        signatures = cross_fit(
            fold_of, folds,
            lambda fold: signature_config.make().fit([counts[i] for i in fold.train], time[fold.train], event[fold.train]),
            lambda fold_signature, fold: fold_signature.predict([counts[i] for i in fold.test]))
        oof_scores = np.asarray(signatures.scores, dtype=float)
        entries |= {c.case_id: ScoreEntry("development", s, ScoreSource.OUT_OF_FOLD.value)
                    for c, s in zip(dev, oof_scores)}
        oof_signature_c = slide_c_index(time, event, oof_scores)
        oof_probability_c = slide_c_index(time, event, [oof[c.case_id]["mean_probability"] for c in dev])
        final_signature.to_out_of_fold_ = match_scale(
            final_signature.predict([unseen_scores[c]["counts"] for c in unseen]) if unseen else [],
            [oof_scores[k] for k, c in enumerate(dev) if c.case_id in unseen_scores],
            f"mean and SD matched to the out-of-fold scores on the {len(unseen)} development cases the final patch "
            "model did not train on")
        if final_signature.to_out_of_fold_ is None:
            log.warning("%d development case(s) unseen by the final patch model: too few to map its scores onto the "
                        "out-of-fold scale; the pathology score is used unmapped", len(unseen))
    else:
        log.warning("no cross-fitting (--folds 0): the signature is fit on the patch model's scores of its own "
                    "training slides and development cases get no out-of-fold score")
    if cohort.validation:
        val_risk = final_signature.predict([val_scores[c.case_id]["counts"] for c in cohort.validation])
        entries |= {c.case_id: ScoreEntry("validation", s, ScoreSource.FINAL_MODEL.value)
                    for c, s in zip(cohort.validation, val_risk)}
        vt, ve = _outcomes(cohort.validation)
        validation_c = slide_c_index(vt, ve, val_risk)

    runtime_figures = runtime.to_dict()
    if runtime.distributed.active:
        runtime_figures["distributed"]["final_model_rank_sha256"] = final.replica_sha256
    registry = WeightRegistry(out_dir)
    atomic_write_bytes(out_dir / PATCH_FILE, patch_bytes)
    training_data = {"data_sha256": cohort.data_sha256, "n_development_cases": len(dev),
                     "n_development_slides": sum(len(c.slides) for c in dev), "labels": final.label_counts,
                     "horizon_months": config.horizon_months}
    registry.register(PATCH_MODEL, PATCH_FILE, kind=PATCH_KIND, version=software_version(),
                      config={"architecture": config.architecture, "patch_px": config.patch_px,
                              "spacing_um": config.spacing_um, "horizon_months": config.horizon_months,
                              "label": f"recurrence within {config.horizon_months:g} months",
                              "normalisation": "imagenet", "training": config.to_dict()},
                      training_data=training_data,
                      validation={"inner_val_cindex": final.best_val_cindex, "best_epoch": final.best_epoch,
                                  "oof_mean_probability_cindex": oof_probability_c})
    atomic_write_json(out_dir / SIGNATURE_FILE, final_signature.to_dict())
    scale = final_signature.to_out_of_fold_
    registry.register(SIGNATURE_MODEL, SIGNATURE_FILE, kind=SIGNATURE_KIND, version=software_version(),
                      config={**asdict(signature_config), "patch_model_sha256": final_sha,
                              "fitted_on": "out_of_fold tile scores" if folds else "in-sample tile scores",
                              "to_out_of_fold": scale.to_dict() if scale is not None else None},
                      training_data=training_data,
                      validation={"oof_cindex": oof_signature_c, "validation_cindex": validation_c,
                                  "training_concordance": final_signature.concordance_})
    write_score_file(out_dir / SCORES_FILE, [ScoreTable("pathology", entries)])
    run = PathologyRun(
        started_utc=started, finished_utc=utc_now(), config=config.to_dict(), folds=folds,
        signature=asdict(signature_config), data_sha256=cohort.data_sha256,
        versions={"sarcoma_risk": software_version(), "torch": torch.__version__, "python": platform.python_version()},
        final_model=PatchModelRun.of(final, final_sha), scores_file=SCORES_FILE, fold_models=fold_models,
        oof_signature_cindex=oof_signature_c, oof_mean_probability_cindex=oof_probability_c,
        validated=bool(cohort.validation), validation_signature_cindex=validation_c, runtime=runtime_figures,
        initialisation=None if init_reason is None else {"requested": "auto", "used": config.init,
                                                          "reason": init_reason})
    atomic_write_json(out_dir / RUN_FILE, run.to_dict())
    return run


def fit_signature(manifest_path: str | Path, weights_dir: str | Path, out_dir: str | Path,
                  signature_config: SignatureConfig = SignatureConfig(), *, cache_dir: str | Path | None = None,
                  workers: int = 2, progress: bool = False) -> SignatureRun:
    """`train pathology-signature`: fit the slide signature for an existing patch model.

    The development slides are scored by the patch model of ``weights_dir`` (tile caches reused) and
    the signature is fit on those scores. When that patch model was trained on the same slides the
    scores are in-sample and the signature's weights are optimistic; `train pathology --folds K`
    fits it on out-of-fold scores instead. The signature, and a copy of the patch model when
    ``out_dir`` is another folder, are registered in ``out_dir``.
    """

    source = WeightRegistry(weights_dir)
    state, entry = source.load_torch(PATCH_MODEL)
    model_config = entry.get("config") or {}
    config = TrainConfig(architecture=model_config.get("architecture", TrainConfig.architecture),
                         patch_px=int(model_config.get("patch_px", TrainConfig.patch_px)),
                         spacing_um=float(model_config.get("spacing_um", TrainConfig.spacing_um)), workers=workers)
    model = make_patch_model(config.architecture, state=state)
    cohort = load_cohort(manifest_path)
    out_dir = Path(out_dir)
    cache = Path(cache_dir) if cache_dir is not None else out_dir / "tile-cache"
    signature = signature_config.make()
    dev_scores = score_cases(cohort.development, model, entry["sha256"], config, signature, cache, progress)
    time, event = _outcomes(cohort.development)
    signature.fit([dev_scores[c.case_id]["counts"] for c in cohort.development], time, event)
    validation_c = None
    if cohort.validation:
        val_scores = score_cases(cohort.validation, model, entry["sha256"], config, signature, cache, progress)
        vt, ve = _outcomes(cohort.validation)
        validation_c = slide_c_index(vt, ve, signature.predict(
            [val_scores[c.case_id]["counts"] for c in cohort.validation]))
    registry = WeightRegistry(out_dir)
    if registry.directory.resolve() != source.directory.resolve():
        out_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.directory / entry["file"], out_dir / PATCH_FILE)
        registry.register(PATCH_MODEL, PATCH_FILE, kind=entry["kind"], version=entry["version"],
                          config=entry.get("config"), training_data=entry.get("training_data"),
                          validation=entry.get("validation"))
    atomic_write_json(out_dir / SIGNATURE_FILE, signature.to_dict())
    registry.register(SIGNATURE_MODEL, SIGNATURE_FILE, kind=SIGNATURE_KIND, version=software_version(),
                      config={**asdict(signature_config), "patch_model_sha256": entry["sha256"],
                              "fitted_on": "patch-model scores of the development slides (in-sample when the "
                                           "patch model was trained on them)"},
                      training_data={"data_sha256": cohort.data_sha256,
                                     "n_development_cases": len(cohort.development)},
                      validation={"training_concordance": signature.concordance_, "validation_cindex": validation_c})
    return SignatureRun(len(cohort.development), cohort.data_sha256, signature.concordance_,
                        validated=bool(cohort.validation), validation_cindex=validation_c)
