"""The radiology estimator: the CBAM 3D CNN fitted with the Cox partial likelihood.

:class:`RadiologyCoxModel` follows the suite's estimator conventions: ``__init__`` stores the three
configurations, ``fit(X, time, event)`` returns self and sets attributes ending in ``_``,
``predict(X)`` returns log relative hazards (higher = riskier). Training is seeded end to end
(initialisation, validation split, batches, augmentation) and runs with torch's deterministic
algorithms, so a seed and the same data give the same weights on the same machine.

Early stopping: a stratified share of the training cases is held out; after ``min_epochs`` the
epoch with the best validation C-index (ties: lower validation loss) is kept, and training stops
``patience`` epochs after it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from sarcoma_risk.device import autocast, grad_scaler, to_device
from sarcoma_risk.distributed import Distributed
from sarcoma_risk.errors import InvalidInput, InvalidModel
from sarcoma_risk.radiology.augment import augment_batch
from sarcoma_risk.radiology.config import ModelConfig, PreprocessConfig, TrainConfig
from sarcoma_risk.radiology.losses import cox_partial_nll
from sarcoma_risk.radiology.model import CBAMNet3d
from sarcoma_risk.resume import TrainingCheckpoint, restore_rng, rng_state
from sarcoma_risk.runtime import TrainRuntime
from sarcoma_risk.survival.concordance import harrell_c, undefined_as_none
from sarcoma_risk.survival.folds import event_strata, stratified_split
from sarcoma_risk.survival.outcome import check_outcome

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "sarcoma-risk-radiology/1"


#: Rank r of a distributed run draws augmentation and dropout from seed + r * this (rank 0: the seed itself).
RANK_SEED_STRIDE = 1_000_003


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global generators and use deterministic algorithms; restore both afterwards."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cuda = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@dataclass
class _Progress:
    """The trainer's bookkeeping between epochs (saved in checkpoints)."""

    best_state: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)
    best: tuple[float, float] | None = None
    best_epoch: int = 0
    epoch: int = 0
    stopped: bool = False

    def keep(self, key: tuple[float, float] | None, network: CBAMNet3d, epoch: int) -> None:
        self.best, self.best_state, self.best_epoch = key, copy.deepcopy(network.state_dict()), epoch

    def to_state(self) -> dict[str, Any]:
        return {"history": self.history, "best": self.best, "best_state": self.best_state,
                "best_epoch": self.best_epoch, "stopped": self.stopped}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "_Progress":
        best = tuple(state["best"]) if state["best"] is not None else None
        return cls(state["best_state"], list(state["history"]), best, state["best_epoch"], state["epoch"],
                   state["stopped"])


class RadiologyCoxModel:
    """CBAM 3D CNN giving a log relative hazard of recurrence from a prepared MRI patch.

    Parameters
    ----------
    preprocess : PreprocessConfig
        How patches are made (stored with the weights; ``fit`` checks the input's shape against it).
    model : ModelConfig
        Network shape.
    train : TrainConfig
        Optimisation, augmentation, early stopping and seed.

    Attributes
    ----------
    network_ : CBAMNet3d
        The fitted network (eval mode), its output centred on the development mean.
    reference_scores_ : ndarray
        Sorted scores of the cases ``fit`` saw: the development distribution for percentiles.
    history_ : list of dict
        Per epoch: ``train_loss``, ``validation_loss``, ``validation_cindex``.
    best_epoch_ : int
        1-based epoch whose weights were kept.
    validation_cindex_ : float or None
        Harrell's C on the held-out share at ``best_epoch_`` (None without a held-out share, or when
        no pair of it is comparable).
    initial_loss_, final_loss_ : float
        Partial-likelihood loss on all training cases before and after training (no augmentation).
    """

    def __init__(self, preprocess: PreprocessConfig | None = None, model: ModelConfig | None = None,
                 train: TrainConfig | None = None) -> None:
        self.preprocess = preprocess if preprocess is not None else PreprocessConfig()
        self.model = model if model is not None else ModelConfig()
        self.train = train if train is not None else TrainConfig()

    # ---- helpers -----------------------------------------------------------------------------

    def _check_x(self, X: np.ndarray) -> torch.Tensor:
        X = np.asarray(X, dtype=np.float32)
        p = self.preprocess.patch_size
        expected = (self.preprocess.in_channels, p, p, p)
        if X.ndim != 5 or X.shape[1:] != expected:
            raise InvalidInput(f"X: shape {X.shape} does not match the configuration (n, {', '.join(map(str, expected))})")
        if not np.all(np.isfinite(X)):
            raise InvalidInput("X: holds NaN or infinite values")
        return torch.from_numpy(np.ascontiguousarray(X))

    def _new_network(self) -> CBAMNet3d:
        return CBAMNet3d(self.preprocess.in_channels, self.model)

    @staticmethod
    def _raw_scores(network: CBAMNet3d, X: torch.Tensor, batch_size: int) -> torch.Tensor:
        """Scores on the CPU (float64) of CPU inputs ``X``, computed wherever the network lives."""
        network.eval()
        device = network.offset.device
        with torch.inference_mode():
            return torch.cat([network(to_device(X[i:i + batch_size], device)).float().cpu()
                              for i in range(0, len(X), batch_size)]).double()

    def _check_fitted(self) -> CBAMNet3d:
        network = getattr(self, "network_", None)
        if network is None:
            raise InvalidModel("this RadiologyCoxModel is not fitted; call fit() or load weights first")
        return network

    # ---- estimator API -----------------------------------------------------------------------

    def fit(self, X: np.ndarray, time: np.ndarray, event: np.ndarray, *, runtime: TrainRuntime | None = None,
            checkpoint: TrainingCheckpoint | None = None,
            prepare: Callable[[torch.nn.Module], None] | None = None) -> "RadiologyCoxModel":
        """Fit on prepared patches ``X`` (n, channels, p, p, p) and outcomes; returns self.

        Parameters
        ----------
        runtime : TrainRuntime, optional
            Device, precision and process group (default: one process on the CPU in fp32). In a
            distributed run each rank trains on its share of every epoch (``DistributedSampler``),
            so a batch is ``batch_size`` cases per rank and the partial likelihood compares the
            cases of one rank's batch; validation and early stopping are rank 0's, broadcast.
        checkpoint : TrainingCheckpoint, optional
            Written after every epoch; with ``resume`` the fit continues from it.
        prepare : callable, optional
            Called with the new network on its device before training: a federated round loads the
            server's weights into it and may add FedProx's proximal term
            (:mod:`sarcoma_risk.federated.imaging`).
        """
        outcome = check_outcome(time, event, name="radiology training outcome")
        Xt = self._check_x(X)
        if len(Xt) != len(outcome.time):
            raise InvalidInput(f"X has {len(Xt)} cases but the outcome has {len(outcome.time)}")
        cfg = self.train
        runtime = runtime if runtime is not None else TrainRuntime()
        device, group = runtime.torch_device, runtime.distributed
        rng = np.random.default_rng(cfg.seed)
        held = stratified_split(event_strata(outcome.event), cfg.validation_fraction, rng) \
            if cfg.validation_fraction else np.zeros(len(Xt), dtype=bool)
        if held.any() and (outcome.event[held].sum() == 0 or held.sum() < 3 or (~held).sum() < 2):
            log.warning("too few cases to hold %d out for early stopping; training %d epochs on all %d cases",
                        int(held.sum()), cfg.epochs, len(Xt))
            held[:] = False
        train_idx, val_idx = np.flatnonzero(~held), np.flatnonzero(held)
        time_t = torch.from_numpy(outcome.time)
        event_t = torch.from_numpy(outcome.event)
        n_sequences = len(self.preprocess.sequences)

        with seeded(cfg.seed, device):
            network = self._new_network().to(device)
            if prepare is not None:
                prepare(network)
            # every rank starts from the same weights; augmentation and dropout differ between ranks
            rank_seed = cfg.seed + RANK_SEED_STRIDE * group.rank
            if group.rank:
                torch.manual_seed(rank_seed)
            generator = torch.Generator().manual_seed(rank_seed)
            optimiser = torch.optim.AdamW(network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            scaler = grad_scaler(device, runtime.precision)
            train_x, train_t, train_e = Xt[train_idx], time_t[train_idx], event_t[train_idx]
            saved = checkpoint.load() if checkpoint is not None else None
            if saved is None:
                self.initial_loss_ = float(cox_partial_nll(self._raw_scores(network, train_x, cfg.batch_size),
                                                           train_t, train_e, cfg.ties))
                progress = _Progress(best_state=copy.deepcopy(network.state_dict()))
            else:
                network.load_state_dict(saved["model"])
                optimiser.load_state_dict(saved["optimizer"])
                scaler.load_state_dict(saved["scaler"])
                restore_rng(saved["rng"], [generator])
                self.initial_loss_ = saved["initial_loss"]
                progress = _Progress.from_state(saved)
                log.info("resuming after epoch %d from %s", progress.epoch, checkpoint.path)
            trained = group.wrap(network, device)
            for epoch in range(progress.epoch + 1, cfg.epochs + 1):
                if progress.stopped:
                    break
                network.train()
                losses = []
                for batch in self._batches(epoch, len(train_idx), generator, group):
                    has_events = bool(train_e[batch].any())
                    if not has_events and not group.active:
                        continue
                    inputs = augment_batch(to_device(train_x[batch], device), cfg, n_sequences, generator)
                    with autocast(device, runtime.precision):
                        risk = trained(inputs)
                    # the loss is computed on the CPU in float32 (a few numbers per batch)
                    risk = risk.float().cpu()
                    if has_events:
                        loss = cox_partial_nll(risk, train_t[batch], train_e[batch], cfg.ties)
                    else:  # this rank's share has no event: no gradient, but it must join the all-reduce
                        loss = risk.sum() * 0.0
                    optimiser.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimiser)
                    scaler.update()
                    if has_events:
                        losses.append(float(loss.detach()))
                record: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else None}
                if len(val_idx):
                    figures = None
                    if group.is_main:
                        val_scores = self._raw_scores(network, Xt[val_idx], cfg.batch_size)
                        figures = {"validation_loss": float(cox_partial_nll(val_scores, time_t[val_idx],
                                                                            event_t[val_idx], cfg.ties)),
                                   "validation_cindex": undefined_as_none(
                                       harrell_c(outcome.time[val_idx], outcome.event[val_idx], val_scores.numpy()))}
                    record.update(group.broadcast(figures))
                progress.history.append(record)
                log.debug("epoch %d: %s", epoch, record)
                if epoch >= cfg.min_epochs or epoch >= cfg.epochs:
                    if len(val_idx):
                        # A held-out share without a comparable pair (C undefined) ranks like chance, 0.5.
                        c = record["validation_cindex"]
                        key = (0.5 if c is None else c, -record["validation_loss"])
                        if progress.best is None or key > progress.best:
                            progress.keep(key, network, epoch)
                        elif epoch - progress.best_epoch >= cfg.patience:
                            progress.stopped = True
                    else:
                        progress.keep(None, network, epoch)
                progress.epoch = epoch
                if checkpoint is not None:
                    checkpoint.save(epoch, {"model": network.state_dict(), "optimizer": optimiser.state_dict(),
                                            "scaler": scaler.state_dict(), "rng": rng_state([generator]),
                                            "initial_loss": self.initial_loss_, **progress.to_state()})
            network.load_state_dict(progress.best_state)
            raw = self._raw_scores(network, Xt, cfg.batch_size)
            self.final_loss_ = float(cox_partial_nll(raw[train_idx], train_t, train_e, cfg.ties))
            network.offset.fill_(float(raw.mean()))
        network.eval()
        self.replica_sha256_ = group.check_replicas(network, "radiology training") if group.active else None
        self.network_ = network
        self.history_ = progress.history
        self.best_epoch_ = progress.best_epoch
        self.validation_cindex_ = progress.history[progress.best_epoch - 1]["validation_cindex"] \
            if progress.best is not None else None
        self.reference_scores_ = np.sort((raw - raw.mean()).numpy())
        self.n_cases_, self.n_events_ = len(Xt), int(outcome.event.sum())
        return self

    def _batches(self, epoch: int, n: int, generator: torch.Generator, group: Distributed) -> list[torch.Tensor]:
        """This epoch's batches of training-case indices (this rank's share in a distributed run)."""
        cfg = self.train
        if group.active:
            sampler = DistributedSampler(range(n), num_replicas=group.world_size, rank=group.rank, shuffle=True,
                                         seed=cfg.seed)
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), dtype=torch.long)
        else:
            order = torch.randperm(n, generator=generator)
        batches = list(torch.split(order, cfg.batch_size))
        if len(batches) > 1 and len(batches[-1]) < 2:  # a one-case batch has no partial likelihood
            last = batches.pop()
            batches[-1] = torch.cat([batches[-1], last])
        return batches

    def predict(self, X: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """Log relative hazard per case (higher = riskier), 0 = the development cohort's average.

        Runs on the device the network is on (:meth:`to`), in the precision of the caller's
        autocast context (:func:`sarcoma_risk.device.autocast`), if any.
        """
        network = self._check_fitted()
        return self._raw_scores(network, self._check_x(X), batch_size).numpy()

    def to(self, device: torch.device) -> "RadiologyCoxModel":
        """Move the fitted network to ``device``; returns self."""
        self._check_fitted().to(device)
        return self

    def percentile(self, scores: np.ndarray | float) -> np.ndarray:
        """Percentile (0-100) of each score in the development distribution (mid-rank for ties)."""
        self._check_fitted()
        reference = self.reference_scores_
        scores = np.atleast_1d(np.asarray(scores, dtype=float))
        below = np.searchsorted(reference, scores, side="left")
        at_or_below = np.searchsorted(reference, scores, side="right")
        return 100.0 * (below + at_or_below) / (2 * len(reference))

    # ---- saving ------------------------------------------------------------------------------

    def config_dict(self) -> dict[str, Any]:
        """The three configurations as JSON-ready dicts (what the weights manifest records)."""
        return {"preprocess": self.preprocess.to_dict(), "model": self.model.to_dict(), "train": self.train.to_dict()}

    def to_checkpoint(self) -> dict[str, Any]:
        """A ``torch.save``-able dict of tensors and strings only (loadable with ``weights_only=True``)."""
        network = self._check_fitted()
        return {
            "format": CHECKPOINT_FORMAT,
            "config": json.dumps(self.config_dict(), sort_keys=True),
            "state_dict": {k: v.detach().clone() for k, v in network.state_dict().items()},
            "reference_scores": torch.from_numpy(np.asarray(self.reference_scores_, dtype=np.float64)),
        }

    @classmethod
    def from_checkpoint(cls, checkpoint: Any, source: str = "checkpoint") -> "RadiologyCoxModel":
        """Rebuild a fitted model from :meth:`to_checkpoint`'s dict; :class:`InvalidModel` if it does not fit."""
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
            raise InvalidModel(f"{source}: not a radiology checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})")
        try:
            config = json.loads(checkpoint["config"])
            model = cls(PreprocessConfig.from_dict(config["preprocess"]), ModelConfig.from_dict(config["model"]),
                        TrainConfig.from_dict(config["train"]))
            network = model._new_network()
            network.load_state_dict(checkpoint["state_dict"])
            reference = checkpoint["reference_scores"].double().numpy()
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise InvalidModel(f"{source}: inconsistent radiology checkpoint ({exc})") from exc
        if reference.ndim != 1 or reference.size == 0 or not np.all(np.isfinite(reference)):
            raise InvalidModel(f"{source}: the development score distribution is empty or not finite")
        network.eval()
        model.network_ = network
        model.reference_scores_ = np.sort(reference)
        return model
