"""Every setting of ``sarcoma-risk train all``, in one dataclass saved with the weights.

The defaults are what ``make weights`` uses: a fixed-seed phantom cohort of tiny-preset images
(centre A development, centre B validation) and training configurations sized so that the whole
run takes about a quarter of an hour on 2 CPU cores. They verify the software; they are not a
recipe for real data (see ``weights/MODEL_CARD.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.synthetic.difficulty import Difficulty

#: The seed of the shipped weights' cohort; the demo and the benchmark use other seeds.
WEIGHTS_SEED = 2026


@dataclass(frozen=True)
class TrainAllConfig:
    """Settings of one end-to-end training run.

    Parameters
    ----------
    cases : int
        Phantom cases, spread evenly over the two centres (A: development, B: validation).
    seed : int
        Seed of the phantom cohort (the training seeds are fixed in the configurations).
    size : str
        Image size preset of the phantom renderers ("tiny", "small" or "medium").
    difficulty : str
        Phantom difficulty ("standard" or "hard", see :mod:`sarcoma_risk.synthetic.difficulty`).
    workers : int
        Processes rendering the cohort.
    radiology_preset, radiology_folds : str, int
        ``train radiology --preset`` and its cross-fitting folds.
    radiology_threads : int or None
        Torch threads while training the radiology model (None: torch's choice).
    pathology_architecture, pathology_init, pathology_patch_px, pathology_spacing_um : str, str, int, float
        The patch model and what it sees (``train pathology --architecture/--init/--patch-px/--spacing``).
    pathology_epochs, pathology_patches_per_epoch, pathology_batch_size, pathology_val_patches_per_slide : int
        Patch training length (``--epochs/--patches-per-epoch/--batch-size/--val-patches-per-slide``).
    pathology_patience : int
        Epochs without improvement before the patch training stops (``--patience``).
    pathology_folds : int
        Cross-fitting folds of the patch model and slide signature.
    signature_bins, signature_words : int
        Slide signature features (``--bins/--words``).
    fusion_cutoff : str
        Risk-group cutoff of the fusion model ("median" or "maxstat").
    fusion_folds : int
        Cross-validation folds choosing each fusion sub-model's ridge penalizer (``train fusion --folds``, >= 2).
    bootstrap : int
        Bootstrap resamples of the validation figures' 95% CIs.
    """

    cases: int = 800
    seed: int = WEIGHTS_SEED
    size: str = "tiny"
    difficulty: str = "standard"
    workers: int = 2
    radiology_preset: str = "tiny"
    radiology_folds: int = 5
    radiology_threads: int | None = None
    pathology_architecture: str = "shufflenet_v2_x0_5"
    pathology_init: str = "random"
    pathology_patch_px: int = 112
    pathology_spacing_um: float = 1.0
    pathology_epochs: int = 10
    pathology_patches_per_epoch: int = 2048
    pathology_batch_size: int = 64
    pathology_val_patches_per_slide: int = 32
    pathology_patience: int = 4
    pathology_folds: int = 3
    signature_bins: int = 8
    signature_words: int = 8
    fusion_cutoff: str = "median"
    fusion_folds: int = 5
    bootstrap: int = 1000

    def __post_init__(self) -> None:
        if isinstance(self.cases, bool) or not isinstance(self.cases, int) or self.cases < 40:
            raise InvalidInput(f"cases: {self.cases!r}; at least 40 phantom cases are needed (20 per centre) to "
                               "cross-fit the imaging models and fit the fusion sub-models")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInput(f"seed: {self.seed!r} must be an integer >= 0")
        check_choice(self.difficulty, Difficulty, "difficulty")
        for name in ("workers", "bootstrap", "pathology_epochs", "pathology_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name}: {value!r} must be an integer >= 1")
        if isinstance(self.fusion_folds, bool) or not isinstance(self.fusion_folds, int) or self.fusion_folds < 2:
            raise InvalidInput(f"fusion_folds: {self.fusion_folds!r} must be an integer >= 2 (cross-validation of the "
                               "fusion penalizer)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_paper_pathology(self) -> TrainAllConfig:
        """These settings with the published patch model and scale (``train pathology --preset paper``):
        ShuffleNetV2 x1.0 on 224-px patches at 0.5 um/px, ImageNet weights when they are on the machine."""
        from sarcoma_risk.pathology.train import PAPER_PRESET  # lazy: it imports torch

        return dataclasses.replace(self, **{f"pathology_{name}": value for name, value in PAPER_PRESET.items()})

    def radiology_arguments(self) -> list[str]:
        """The options of ``sarcoma-risk train radiology`` for this run (besides --manifest/--out)."""
        args = ["--preset", self.radiology_preset, "--folds", str(self.radiology_folds)]
        if self.radiology_threads is not None:
            args += ["--threads", str(self.radiology_threads)]
        return args

    def pathology_arguments(self) -> list[str]:
        """The options of ``sarcoma-risk train pathology`` for this run (besides --manifest/--out/--cache-dir)."""
        return ["--folds", str(self.pathology_folds), "--architecture", self.pathology_architecture,
                "--init", self.pathology_init, "--patch-px", str(self.pathology_patch_px),
                "--spacing", f"{self.pathology_spacing_um:g}", "--epochs", str(self.pathology_epochs),
                "--patches-per-epoch", str(self.pathology_patches_per_epoch),
                "--batch-size", str(self.pathology_batch_size),
                "--val-patches-per-slide", str(self.pathology_val_patches_per_slide),
                "--patience", str(self.pathology_patience),
                "--bins", str(self.signature_bins), "--words", str(self.signature_words), "--no-progress"]
