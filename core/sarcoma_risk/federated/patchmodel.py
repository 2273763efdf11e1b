"""What one centre does for the federated patch model (ShuffleNetV2): local epochs from the server's weights.

A round at a centre is the ordinary patch training (:class:`sarcoma_risk.pathology.train.PatchTrainer`)
of ``local_epochs`` epochs on the centre's own development slides, started from the server's weights
(and FedProx's proximal term): its inner validation share, balanced patch sampling, augmentation and
BatchNorm recalibration are those of ``train pathology``, and it returns its best epoch of the round.
The reply is the trained state dict and the number of cases it trained on.

For the slide signature (:mod:`sarcoma_risk.federated.signature`) the centre tiles its slides with
the final patch model (:meth:`PathologyCentre.signature_cases`, as ``train pathology`` scores them)
and answers with sums over its cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from sarcoma_risk.cohort import Split, read_manifest
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.federated.centre import harrell_pairs
from sarcoma_risk.federated.imaging import TORCH_LOCK, CentreRefused, outgoing_state, start_from, state_arrays
from sarcoma_risk.federated.signature import SignatureCases, signature_cases
from sarcoma_risk.pathology.crossfit import score_cases
from sarcoma_risk.pathology.signature import SlideSignature
from sarcoma_risk.pathology.model import make_patch_model
from sarcoma_risk.pathology.slide import slide_fingerprint
from sarcoma_risk.pathology.loader import PatchReader
from sarcoma_risk.pathology.train import (PAPER_PRESET, PatchTrainer, SlidePool, SlideRef, TrainConfig, TrainingCase,
                                          inner_validation, prepare_slides, validation_items, validation_outputs)

#: Patch-model configurations by preset: "paper" as ``train pathology --preset paper``, "standard" the
#: defaults, "tiny" the tests' (seconds per round on tiny phantom slides).
PRESETS: dict[str, TrainConfig] = {
    "standard": TrainConfig(),
    "paper": TrainConfig(**PAPER_PRESET),
    "tiny": TrainConfig(architecture="shufflenet_v2_x0_5", init="random", patch_px=64, spacing_um=2.0,
                        patches_per_epoch=96, batch_size=32, learning_rate=0.002, val_fraction=0.25,
                        val_patches_per_slide=12, workers=1),
}


def initial_patch_model(config: TrainConfig) -> torch.nn.Module:
    """The model a pooled ``train pathology`` would start from with the same seed."""
    torch.manual_seed(config.seed)
    return make_patch_model(config.architecture, config.init)


@dataclass
class PathologyCentre:
    """A centre's development cases with slides (never sent anywhere) and its open slides."""

    name: str
    cases: list[TrainingCase]
    pool: SlidePool = field(default_factory=SlidePool)
    scored: dict[str, SignatureCases] = field(default_factory=dict)  # by patch-model sha256 and word counts

    def check(self, min_events: int) -> None:
        events = sum(bool(c.event) for c in self.cases)
        if events < min_events:
            raise CentreRefused(f"centre {self.name}: {len(self.cases)} development case(s) with slides and {events} "
                                f"event(s); at least {min_events} events are needed (--min-centre-events)")

    def train_round(self, state: Mapping[str, np.ndarray], train: TrainConfig, *, local_epochs: int,
                    proximal_mu: float = 0.0, dp_clip: float | None = None, dp_noise: float = 0.0,
                    validation_seed: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Train ``local_epochs`` epochs from ``state``; returns the new state and metrics (``num-examples``).

        With ``validation_seed`` the round keeps the inner validation share of that seed (the run's, the
        same every round, so that :meth:`evaluate_round` scores cases no round trained on); without it
        each round draws its own share with its own seed, as before round selection existed."""
        config = replace(train, epochs=local_epochs, patience=local_epochs)
        validation = None if validation_seed is None else self.validation_share(train, validation_seed)
        with TORCH_LOCK:
            result = PatchTrainer(config).fit(self.cases, self.pool, validation=validation,
                                              prepare=lambda model: start_from(model, state, proximal_mu))
        new = outgoing_state(state, state_arrays(result.model), dp_clip, dp_noise)
        return new, {"num-examples": float(result.n_train_cases),
                     "train-loss": float(result.history[result.best_epoch - 1]["train_loss"])}

    def validation_share(self, train: TrainConfig, seed: int) -> list[bool]:
        """The centre's inner validation share for round selection: ``train pathology``'s split with ``seed``."""
        return inner_validation(self.cases, replace(train, seed=seed))

    def evaluate_round(self, state: Mapping[str, np.ndarray], train: TrainConfig, seed: int) -> dict[str, float]:
        """Sums that let the server rank the averaged model ``state`` on every centre's validation share:
        Harrell's concordant and comparable pairs of the case score (mean patch probability, as
        ``train pathology`` validates an epoch) within this centre, the summed patch log-loss and its
        patch count, and the number of validation cases. No case's score leaves the centre."""
        share = self.validation_share(train, seed)
        val = [c for c, v in zip(self.cases, share) if v]
        labels = [c.label(train.horizon_months) for c in val]
        items = validation_items(val, train.val_patches_per_slide)
        with TORCH_LOCK:
            prepare_slides(self.cases, train, self.pool)
            reader = PatchReader(self.pool, [ref for case in val for ref in case.slides], threads=train.workers)
            try:
                score, losses = validation_outputs(final_patch_model(train, state), len(val), labels, items, reader,
                                                   torch.device("cpu"))  # federated training runs on the CPU
            finally:
                reader.close()
        concordant, comparable = harrell_pairs(np.array([c.time for c in val], dtype=float),
                                               np.array([c.event for c in val], dtype=bool), score)
        return {"num-examples": float(len(val)), "concordant": concordant, "comparable": comparable,
                "loss-sum": float(losses.sum()), "loss-patches": float(losses.size)}

    def signature_cases(self, state: Mapping[str, np.ndarray] | None, model_sha256: str, config: TrainConfig,
                        n_bins: int, n_words: int) -> SignatureCases:
        """Each development case's pooled tile counts under the patch model ``state`` (computed once)."""
        key = f"{model_sha256}/{n_bins}/{n_words}"
        if key not in self.scored:
            if state is None:
                raise InvalidInput(f"centre {self.name}: asked about the slide signature of patch model "
                                   f"{model_sha256[:12]} before receiving it")
            with TORCH_LOCK:
                scored = score_cases(self.cases, final_patch_model(config, state), model_sha256, config,
                                     SlideSignature(n_bins, n_words), None, False)
            self.scored[key] = signature_cases([scored[c.case_id]["counts"] for c in self.cases],
                                               [c.time for c in self.cases], [c.event for c in self.cases])
        return self.scored[key]


def load_pathology_centre(manifest_path: Path, name: str) -> PathologyCentre:
    """The development cases with slides of centre ``name`` in a manifest."""
    manifest = read_manifest(manifest_path)
    cases = [TrainingCase(c.case_id, c.time_months, c.event,
                          [SlideRef(p, a, slide_fingerprint(p)["sha256"]) for p, a in zip(c.slides, c.annotations)])
             for c in manifest.cases if c.centre == name and c.split is Split.DEVELOPMENT and c.has_slides]
    if not cases:
        raise CentreRefused(f"centre {name}: no development case with slides in its manifest")
    return PathologyCentre(name, cases)


def final_patch_model(config: TrainConfig, state: Mapping[str, Any]) -> torch.nn.Module:
    """The patch model with the averaged weights (eval mode)."""
    model = initial_patch_model(replace(config, init="random"))
    start_from(model, state, 0.0)
    return model.eval()
