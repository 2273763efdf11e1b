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
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from sarcoma_risk.errors import InvalidInput, InvalidOutcome, SarcomaRiskError
from sarcoma_risk.pathology.augment import AugmentConfig, augment_batch
from sarcoma_risk.pathology.infer import read_batches
from sarcoma_risk.pathology.model import PatchRunner, make_patch_model
from sarcoma_risk.pathology.regions import read_tumor_region
from sarcoma_risk.pathology.slide import PatchGeometry, Slide, open_slide, shared_cache
from sarcoma_risk.pathology.tiling import plan_patches
from sarcoma_risk.pathology.tissue import tissue_mask
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


def _read_items(items: Sequence[tuple[SlideRef, int, int]], pool: SlidePool, config: TrainConfig,
                batch_size: int):
    slides = {id(ref): pool.get(ref) for ref, _, _ in items}  # opened here, read from worker threads

    def read(item: tuple[SlideRef, int, int]) -> np.ndarray:
        ref, x, y = item
        return slides[id(ref)].read_patch(x, y, ref.geometry)

    return read_batches(list(items), read, config.patch_px, batch_size=batch_size, workers=config.workers)


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


# ---- the trainer ----------------------------------------------------------------------------

#: Patches used to re-estimate BatchNorm statistics after each epoch.
BN_PATCHES = 256


def recalibrate_batchnorm(model: Any, batches: Any) -> None:
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
    with torch.no_grad():
        for _, batch in batches:
            model(torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0))
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


class PatchTrainer:
    """Trains a patch model on development cases (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
    progress : bool
        Show a progress bar per epoch on stderr.
    """

    def __init__(self, config: TrainConfig, progress: bool = False) -> None:
        self.config = config
        self.progress = progress

    def fit(self, cases: Sequence[TrainingCase], pool: SlidePool) -> TrainingResult:
        cfg = self.config
        cfg.check()
        rng = np.random.default_rng([cfg.seed, 11])
        labels = [case.label(cfg.horizon_months) for case in cases]
        strata = [("censored" if lab is None else str(lab)) for lab in labels]  # dealt "0", "1", "censored"
        is_val = stratified_split(strata, cfg.val_fraction, rng, every_stratum=True)
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
        generator = torch.Generator().manual_seed(cfg.seed)
        model = make_patch_model(cfg.architecture, cfg.init).to(memory_format=torch.channels_last)
        optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        val_items = validation_items(val, cfg.val_patches_per_slide)
        val_labels = [c.label(cfg.horizon_months) for c in val]
        best_state, best_key, best_epoch, since_best = copy.deepcopy(model.state_dict()), None, 0, 0
        history = []
        for epoch in range(1, cfg.epochs + 1):
            sample = sample_epoch([c for c, _ in train], [lab for _, lab in train], cfg.patches_per_epoch,
                                  np.random.default_rng([cfg.seed, 100, epoch]))
            train_loss = self._train_epoch(model, optimiser, sample, pool, generator, epoch)
            recalibrate_batchnorm(model, _read_items([s[:3] for s in sample[:BN_PATCHES]], pool, cfg, cfg.batch_size))
            val_c, val_loss = self._validate(model, val, val_labels, val_items, pool)
            history.append({"epoch": epoch, "train_loss": train_loss, "val_cindex": val_c, "val_loss": val_loss})
            log.info("epoch %d: training loss %.4f, validation C-index %s, loss %s", epoch, train_loss,
                     "n/a" if val_c is None else f"{val_c:.3f}", "n/a" if val_loss is None else f"{val_loss:.4f}")
            # the C-index decides; among equal C-indices (common with few validation cases) the lower loss
            key = (-math.inf if val_c is None else val_c, -math.inf if val_loss is None else -val_loss)
            if best_key is None or key > best_key:
                best_state, best_key, best_epoch, since_best = copy.deepcopy(model.state_dict()), key, epoch, 0
            else:
                since_best += 1
                if since_best >= cfg.patience:
                    log.info("early stop: validation did not improve for %d epochs", cfg.patience)
                    break
        model.load_state_dict(best_state)
        model.eval()
        best_c = history[best_epoch - 1]["val_cindex"]
        return TrainingResult(model, history, best_epoch, best_c, len(train), len(val), counts)

    def _train_epoch(self, model: Any, optimiser: Any, sample: list, pool: SlidePool, generator: Any,
                     epoch: int) -> float:
        """One pass over the epoch's patch sample; returns the mean training loss."""

        cfg = self.config
        targets = torch.tensor([s[3] for s in sample], dtype=torch.float32)
        model.train()
        total, seen = 0.0, 0
        # disable=None: no bar when stderr is not a terminal (batch jobs, logs, the Slicer process)
        with tqdm(total=len(sample), unit="patch", desc=f"epoch {epoch}", file=sys.stderr,
                  disable=None if self.progress else True, leave=False) as bar:
            for start, batch in _read_items([s[:3] for s in sample], pool, cfg, cfg.batch_size):
                x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
                x = augment_batch(x, cfg.augment, generator).contiguous(memory_format=torch.channels_last)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(x), targets[start:start + len(batch)])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
                seen += len(batch)
                bar.update(len(batch))
        return total / seen

    def _validate(self, model: Any, val: Sequence[TrainingCase], labels: Sequence[int | None], items: list,
                  pool: SlidePool) -> tuple[float | None, float | None]:
        """Harrell's C of the mean patch probability per validation case, and the patch loss of labelled cases."""
        if not items:
            return None, None

        runner = PatchRunner(model)
        probs = np.empty(len(items), dtype=np.float64)
        for start, batch in _read_items([i[:3] for i in items], pool, self.config, 64):
            probs[start:start + len(batch)] = runner(batch)
        case_index = np.array([i[3] for i in items])
        score = np.array([probs[case_index == k].mean() for k in range(len(val))])
        c = slide_c_index(np.array([c.time for c in val]), np.array([c.event for c in val]), score)
        target = np.array([np.nan if labels[k] is None else labels[k] for k in case_index], dtype=float)
        known = ~np.isnan(target)
        if not known.any():
            return c, None
        p = np.clip(probs[known], 1e-6, 1 - 1e-6)
        loss = float(-np.mean(target[known] * np.log(p) + (1 - target[known]) * np.log(1 - p)))
        return c, loss


def case_strata(cases: Sequence[TrainingCase], horizon: float) -> list[str]:
    """Strata for folds: positive, negative or censored before the horizon."""
    return [{1: "positive", 0: "negative", None: "censored"}[c.label(horizon)] for c in cases]
