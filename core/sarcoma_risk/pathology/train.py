"""Training the patch model on the development split, and cross-fitting it.

Labels: a case is positive when recurrence was observed within ``horizon_months``, negative when
it was followed beyond the horizon (recurrence or not), and left out of patch training when it was
censored before the horizon (its label is unknown). Patches inherit their slide's label.

Each epoch draws ``patches_per_epoch`` patches with balanced sampling: half from positive cases,
half from negative ones, a case uniformly within its class, a slide of the case and a kept patch of
that slide uniformly. Patches get stain (HED) jitter, brightness/contrast, flips and rotations.
After each epoch the model scores a fixed subset of patches of every validation case (a stratified
``val_fraction`` of the development cases, never trained on); the case score is the mean patch
probability, and training stops when Harrell's C-index of that score against the outcome has not
improved for ``patience`` epochs. The best epoch's weights are kept. Seeds fix the sampling, the
augmentation and the initial weights, so a run repeats exactly on the same machine.

Cross-fitting (:func:`cross_fit`) splits the development cases into K stratified folds; fold k's
cases are scored by a model trained on the other folds (out-of-fold scores, honest inputs for
the signature and for fusion).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from sarcoma_risk.device import autocast, grad_scaler, pin_memory, to_device
from sarcoma_risk.errors import InvalidInput, InvalidOutcome, SarcomaRiskError
from sarcoma_risk.pathology.augment import AugmentConfig, augment_batch
from sarcoma_risk.pathology.loader import PatchReader
from sarcoma_risk.pathology.model import PatchRunner, make_patch_model
from sarcoma_risk.pathology.regions import read_tumor_region
from sarcoma_risk.pathology.slide import PatchGeometry, Slide, open_slide, shared_cache
from sarcoma_risk.pathology.tiling import plan_patches
from sarcoma_risk.pathology.tissue import tissue_mask
from sarcoma_risk.resume import TrainingCheckpoint, restore_rng, rng_state
from sarcoma_risk.runtime import TrainRuntime
from sarcoma_risk.survival.concordance import harrell_c, undefined_as_none
from sarcoma_risk.survival.folds import stratified_split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of patch-model training (see the module docstring)."""

    architecture: str = "shufflenet_v2_x1_0"
    init: str = "imagenet"
    patch_px: int = 224
    spacing_um: float = 0.5
    horizon_months: float = 36.0
    epochs: int = 20
    patches_per_epoch: int = 2048
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    patience: int = 4
    val_patches_per_slide: int = 64
    seed: int = 0
    workers: int = 2
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def check(self) -> None:
        problems = []
        if self.patch_px < 32:
            problems.append(f"patch_px {self.patch_px} (>= 32)")
        if not self.spacing_um > 0:
            problems.append(f"spacing_um {self.spacing_um} (> 0)")
        if not self.horizon_months > 0:
            problems.append(f"horizon_months {self.horizon_months} (> 0)")
        for name in ("epochs", "patches_per_epoch", "batch_size", "val_patches_per_slide", "workers"):
            if getattr(self, name) < 1:
                problems.append(f"{name} {getattr(self, name)} (>= 1)")
        if not 0 < self.val_fraction < 1:
            problems.append(f"val_fraction {self.val_fraction} (between 0 and 1)")
        if self.patience < 1:
            problems.append(f"patience {self.patience} (>= 1)")
        if problems:
            raise InvalidInput("training configuration: expected " + "; ".join(problems))


#: ``train pathology --preset paper``: the published method's patch model and patch scale (20x). "auto"
#: starts from torchvision's ImageNet weights where they are already on the machine, else from random
#: weights (:func:`~sarcoma_risk.pathology.model.resolve_init`; the run's metadata says which).
PAPER_PRESET = {"architecture": "shufflenet_v2_x1_0", "init": "auto", "patch_px": 224, "spacing_um": 0.5}


@dataclass
class SlideRef:
    """A slide of a training case with its kept patches."""

    path: Path
    annotation: Path | None
    sha256: str
    coords: np.ndarray = field(default_factory=lambda: np.empty((0, 2), np.int64))
    geometry: PatchGeometry | None = None


@dataclass
class TrainingCase:
    case_id: str
    time: float
    event: bool
    slides: list[SlideRef]

    def label(self, horizon: float) -> int | None:
        """1 recurrence within the horizon, 0 followed beyond it, None censored before it."""
        if self.event and self.time <= horizon:
            return 1
        if self.time > horizon:
            return 0
        return None


# ---- reading patches ------------------------------------------------------------------------

class SlidePool:
    """The training slides, opened once and kept open, sharing one OpenSlide tile cache.

    One shared cache (``cache_mb``) bounds memory however many slides a cohort has; each slide's
    own default cache would grow with the cohort.
    """

    def __init__(self, cache_mb: int = 256) -> None:
        self.cache_mb = cache_mb
        self._cache: Any = None
        self._open: dict[Path, Slide] = {}

    def get(self, ref: SlideRef) -> Slide:
        if ref.path not in self._open:
            if self._cache is None:
                self._cache = shared_cache(self.cache_mb)
            self._open[ref.path] = open_slide(ref.path, cache=self._cache)
        return self._open[ref.path]

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def prepare_slides(cases: Sequence[TrainingCase], config: TrainConfig, pool: SlidePool) -> None:
    """Find tissue and lay the patch grid of every slide (once per run)."""

    for case in cases:
        for ref in case.slides:
            if ref.geometry is not None:
                continue
            with naming_case(case.case_id):
                slide = pool.get(ref)
                region = read_tumor_region(ref.annotation, slide.dimensions) if ref.annotation else None
                grid = plan_patches(slide, tissue_mask(slide), spacing_um=config.spacing_um,
                                    patch_px=config.patch_px, region=region)
            ref.coords, ref.geometry = grid.coords, grid.geometry


@contextlib.contextmanager
def naming_case(case_id: str) -> Iterator[None]:
    """Re-raise a SarcomaRisk error with the case id in front, so a cohort-wide run says which case failed."""
    try:
        yield
    except SarcomaRiskError as exc:
        if str(exc).startswith(f"case {case_id}"):
            raise
        renamed = copy.copy(exc)
        renamed.args = (f"case {case_id}: {exc}", *exc.args[1:])
        raise renamed from None


# ---- sampling and validation ----------------------------------------------------------------

def sample_epoch(cases: Sequence[TrainingCase], labels: Sequence[int], n: int,
                 rng: np.random.Generator) -> list[tuple[SlideRef, int, int, int]]:
    """Balanced patch sample: (slide, x, y, label), half positive, half negative when both exist."""
    by_class = {c: [case for case, lab in zip(cases, labels) if lab == c] for c in (0, 1)}
    classes = [c for c in (0, 1) if by_class[c]]
    picked = []
    for cls in rng.choice(classes, size=n):
        group = by_class[int(cls)]
        case = group[int(rng.integers(len(group)))]
        ref = case.slides[int(rng.integers(len(case.slides)))]
        x, y = ref.coords[int(rng.integers(len(ref.coords)))]
        picked.append((ref, int(x), int(y), int(cls)))
    return picked


def slide_c_index(time: Any, event: Any, risk: Any) -> float | None:
    """Harrell's C of a case score (higher = riskier), None when no pair is comparable (null in JSON).

    Only exactly equal scores are ties (``tied_tol=0``, lifelines' rule, which pathology has always
    used): mean patch probabilities of a barely trained model can differ by less than the default
    1e-8, and this C-index picks the epoch whose weights are kept.
    """
    return undefined_as_none(harrell_c(time, event, risk, tied_tol=0.0))


def validation_items(cases: Sequence[TrainingCase], per_slide: int) -> list[tuple[SlideRef, int, int, int]]:
    """A fixed, evenly spread subset of each validation slide's patches: (slide, x, y, case index)."""
    items = []
    for i, case in enumerate(cases):
        for ref in case.slides:
            take = np.unique(np.linspace(0, len(ref.coords) - 1, min(per_slide, len(ref.coords))).round().astype(int))
            items.extend((ref, int(ref.coords[t][0]), int(ref.coords[t][1]), i) for t in take)
    return items


def inner_validation(cases: Sequence[TrainingCase], config: TrainConfig) -> list[bool]:
    """Which cases form the inner validation share: ``val_fraction`` of each outcome stratum (recurrence
    within the horizon, followed beyond it, censored before it), drawn with ``config.seed``."""
    labels = [case.label(config.horizon_months) for case in cases]
    strata = [("censored" if lab is None else str(lab)) for lab in labels]  # dealt "0", "1", "censored"
    rng = np.random.default_rng([config.seed, 11])
    return [bool(v) for v in stratified_split(strata, config.val_fraction, rng, every_stratum=True)]


def validation_outputs(model: Any, n_cases: int, labels: Sequence[int | None], items: list, reader: Any,
                       device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each validation case's score (the mean probability of its ``items``' patches) and the log-loss of
    every patch of a labelled case (``labels`` per case, ``items`` from :func:`validation_items`)."""
    runner = PatchRunner(model, device=device)
    probs = np.empty(len(items), dtype=np.float64)
    for start, batch in reader.batches([i[:3] for i in items], 64):
        probs[start:start + len(batch)] = runner(batch.numpy())
    case_index = np.array([i[3] for i in items])
    score = np.array([probs[case_index == k].mean() for k in range(n_cases)])
    target = np.array([np.nan if labels[k] is None else labels[k] for k in case_index], dtype=float)
    known = ~np.isnan(target)
    p = np.clip(probs[known], 1e-6, 1 - 1e-6)
    return score, -(target[known] * np.log(p) + (1 - target[known]) * np.log(1 - p))


# ---- the trainer ----------------------------------------------------------------------------

#: Patches used to re-estimate BatchNorm statistics after each epoch.
BN_PATCHES = 256


def recalibrate_batchnorm(model: Any, batches: Iterable[tuple[int, Any]]) -> None:
    """Re-estimate BatchNorm running statistics as plain averages over un-augmented training patches.

    During training BatchNorm normalises with each augmented batch's own statistics and keeps an
    exponential average for inference. After a short training the average still remembers the early
    weights, and the model then scores every patch alike in eval mode; averaging the statistics of
    the final weights over real patches fixes that (as SWA's ``update_bn`` does).
    """

    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    device = next(model.parameters()).device
    with torch.no_grad():
        for _, batch in batches:  # uint8 tensors (b, px, px, 3)
            model(to_device(batch, device).permute(0, 3, 1, 2).float().div_(255.0))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()

@dataclass(frozen=True)
class TrainingResult:
    """The trained patch model (best epoch) and what happened."""

    model: Any
    history: list[dict[str, Any]]  # per epoch: epoch, train_loss, val_cindex, val_loss
    best_epoch: int
    best_val_cindex: float | None
    n_train_cases: int
    n_val_cases: int
    label_counts: dict[str, int]  # positive, negative, censored_before_horizon, validation
    replica_sha256: list[str] | None = None  # every rank's final weights, in a distributed run
    not_trained_on: tuple[str, ...] = ()  # case ids whose patches it never trained on (validation share, no label)


@dataclass
class _Progress:
    """The trainer's bookkeeping between epochs (saved in checkpoints)."""

    best_state: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_key: tuple[float, float] | None = None
    best_epoch: int = 0
    since_best: int = 0
    epoch: int = 0
    stopped: bool = False

    def to_state(self) -> dict[str, Any]:
        return {"history": self.history, "best_key": self.best_key, "best_state": self.best_state,
                "best_epoch": self.best_epoch, "since_best": self.since_best, "stopped": self.stopped}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "_Progress":
        key = tuple(state["best_key"]) if state["best_key"] is not None else None
        return cls(state["best_state"], list(state["history"]), key, state["best_epoch"], state["since_best"],
                   state["epoch"], state["stopped"])


#: Rank r of a distributed run draws augmentation from seed + r * this (rank 0: the seed itself).
RANK_SEED_STRIDE = 1_000_003


class PatchTrainer:
    """Trains a patch model on development cases (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
    progress : bool
        Show a progress bar per epoch on stderr.
    runtime : TrainRuntime, optional
        Device, precision, process group and patch-reading processes (default: one process on the
        CPU in fp32, patches read by ``config.workers`` threads). In a distributed run each rank
        trains on its share of every epoch's patch sample (``DistributedSampler``), so a batch is
        ``batch_size`` patches per rank; BatchNorm recalibration and validation are rank 0's,
        broadcast to the others.
    """

    def __init__(self, config: TrainConfig, progress: bool = False, runtime: TrainRuntime | None = None) -> None:
        self.config = config
        self.progress = progress
        self.runtime = runtime if runtime is not None else TrainRuntime()

    def fit(self, cases: Sequence[TrainingCase], pool: SlidePool, checkpoint: TrainingCheckpoint | None = None,
            prepare: Callable[[torch.nn.Module], None] | None = None,
            validation: Sequence[bool] | None = None) -> TrainingResult:
        """Train on ``cases`` (slides opened through ``pool``); with ``checkpoint``, save after every epoch
        and, when it says so, resume from it. ``prepare`` is called with the new model on its device
        before training: a federated round loads the server's weights into it and may add FedProx's
        proximal term (:mod:`sarcoma_risk.federated.imaging`). ``validation`` marks the inner validation
        share (default :func:`inner_validation` of this config's seed; a federated centre that picks the
        best round keeps one share for every round)."""

        cfg, runtime = self.config, self.runtime
        device, group = runtime.torch_device, runtime.distributed
        cfg.check()
        labels = [case.label(cfg.horizon_months) for case in cases]
        is_val = inner_validation(cases, cfg) if validation is None else list(validation)
        if len(is_val) != len(cases):
            raise InvalidInput(f"patch training: the validation mask has {len(is_val)} entries for {len(cases)} cases")
        train = [(c, lab) for c, lab, v in zip(cases, labels, is_val) if not v and lab is not None]
        val = [c for c, v in zip(cases, is_val) if v]
        counts = {"positive": sum(lab == 1 for _, lab in train), "negative": sum(lab == 0 for _, lab in train),
                  "censored_before_horizon": sum(lab is None for lab in labels), "validation": len(val)}
        if counts["positive"] == 0 or counts["negative"] == 0:
            raise InvalidOutcome(
                f"patch training: needs cases with recurrence within {cfg.horizon_months:g} months and cases "
                f"followed beyond it; the training part has {counts['positive']} and {counts['negative']} "
                "(change --horizon-months or add cases)")
        prepare_slides(cases, cfg, pool)
        torch.manual_seed(cfg.seed)
        model = make_patch_model(cfg.architecture, cfg.init).to(device, memory_format=torch.channels_last)
        if prepare is not None:
            prepare(model)
        generator = torch.Generator().manual_seed(cfg.seed + RANK_SEED_STRIDE * group.rank)
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        scaler = grad_scaler(device, runtime.precision)
        val_items = validation_items(val, cfg.val_patches_per_slide)
        val_labels = [c.label(cfg.horizon_months) for c in val]
        saved = checkpoint.load() if checkpoint is not None else None
        if saved is None:
            progress = _Progress(copy.deepcopy(model.state_dict()))
        else:
            model.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimizer"])
            scaler.load_state_dict(saved["scaler"])
            restore_rng(saved["rng"], [generator])
            progress = _Progress.from_state(saved)
            log.info("resuming after epoch %d from %s", progress.epoch, checkpoint.path)
        reader = PatchReader(pool, [ref for case in cases for ref in case.slides], threads=cfg.workers,
                             num_workers=runtime.num_workers, pin_memory=pin_memory(device))
        trained = group.wrap(model, device)
        try:
            for epoch in range(progress.epoch + 1, cfg.epochs + 1):
                if progress.stopped:
                    break
                sample = sample_epoch([c for c, _ in train], [lab for _, lab in train], cfg.patches_per_epoch,
                                      np.random.default_rng([cfg.seed, 100, epoch]))
                train_loss = self._train_epoch(trained, optimiser, scaler, self._share(sample, epoch), reader,
                                               generator, epoch)
                if group.is_main:
                    recalibrate_batchnorm(model, reader.batches([s[:3] for s in sample[:BN_PATCHES]], cfg.batch_size))
                group.sync_buffers(model)
                val_c, val_loss = group.broadcast(self._validate(model, val, val_labels, val_items, reader)
                                                  if group.is_main else None)
                progress.history.append({"epoch": epoch, "train_loss": train_loss, "val_cindex": val_c,
                                         "val_loss": val_loss})
                log.info("epoch %d: training loss %.4f, validation C-index %s, loss %s", epoch, train_loss,
                         "n/a" if val_c is None else f"{val_c:.3f}", "n/a" if val_loss is None else f"{val_loss:.4f}")
                # the C-index decides; among equal C-indices (common with few validation cases) the lower loss
                key = (-math.inf if val_c is None else val_c, -math.inf if val_loss is None else -val_loss)
                if progress.best_key is None or key > progress.best_key:
                    progress.best_state, progress.best_key = copy.deepcopy(model.state_dict()), key
                    progress.best_epoch, progress.since_best = epoch, 0
                else:
                    progress.since_best += 1
                    if progress.since_best >= cfg.patience:
                        log.info("early stop: validation did not improve for %d epochs", cfg.patience)
                        progress.stopped = True
                progress.epoch = epoch
                if checkpoint is not None:
                    checkpoint.save(epoch, {"model": model.state_dict(), "optimizer": optimiser.state_dict(),
                                            "scaler": scaler.state_dict(), "rng": rng_state([generator]),
                                            **progress.to_state()})
        finally:
            reader.close()
        model.load_state_dict(progress.best_state)
        model.eval()
        replicas = group.check_replicas(model, "patch model training") if group.active else None
        best_c = progress.history[progress.best_epoch - 1]["val_cindex"]
        trained_on = {c.case_id for c, _ in train}
        return TrainingResult(model, progress.history, progress.best_epoch, best_c, len(train), len(val), counts,
                              replicas, tuple(c.case_id for c in cases if c.case_id not in trained_on))

    def _share(self, sample: list, epoch: int) -> list:
        """This rank's part of the epoch's sample (all of it in one process)."""
        group = self.runtime.distributed
        if not group.active:
            return sample

        # the sample is drawn at random already: each rank takes every world_size-th patch
        sampler = DistributedSampler(range(len(sample)), num_replicas=group.world_size, rank=group.rank,
                                     shuffle=False)
        sampler.set_epoch(epoch)
        return [sample[i] for i in sampler]

    def _train_epoch(self, model: Any, optimiser: Any, scaler: Any, sample: list, reader: Any, generator: Any,
                     epoch: int) -> float:
        """One pass over this rank's patch sample; returns the mean training loss over every rank's patches."""

        cfg, runtime = self.config, self.runtime
        device = runtime.torch_device
        targets = torch.tensor([s[3] for s in sample], dtype=torch.float32)
        model.train()
        total, seen = 0.0, 0
        # disable=None: no bar when stderr is not a terminal (batch jobs, logs, the Slicer process)
        with tqdm(total=len(sample), unit="patch", desc=f"epoch {epoch}", file=sys.stderr,
                  disable=None if self.progress else True, leave=False) as bar:
            for start, batch in reader.batches([s[:3] for s in sample], cfg.batch_size):
                x = to_device(batch, device).permute(0, 3, 1, 2).float().div_(255.0)
                x = augment_batch(x, cfg.augment, generator).contiguous(memory_format=torch.channels_last)
                with autocast(device, runtime.precision):
                    logits = model(x)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits.float(), to_device(targets[start:start + len(batch)], device))
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                total += float(loss.detach()) * len(batch)
                seen += len(batch)
                bar.update(len(batch))
        parts = runtime.distributed.gather((total, seen))
        return sum(t for t, _ in parts) / sum(n for _, n in parts)

    def _validate(self, model: Any, val: Sequence[TrainingCase], labels: Sequence[int | None], items: list,
                  reader: Any) -> tuple[float | None, float | None]:
        """Harrell's C of the mean patch probability per validation case, and the patch loss of labelled cases."""
        if not items:
            return None, None

        score, losses = validation_outputs(model, len(val), labels, items, reader, self.runtime.torch_device)
        c = slide_c_index(np.array([c.time for c in val]), np.array([c.event for c in val]), score)
        return c, (float(np.mean(losses)) if losses.size else None)


def case_strata(cases: Sequence[TrainingCase], horizon: float) -> list[str]:
    """Strata for folds: positive, negative or censored before the horizon."""
    return [{1: "positive", 0: "negative", None: "censored"}[c.label(horizon)] for c in cases]
