"""Can a patch network read the slide phenotype at all? Trained on the phenotype itself, not on outcomes.

The gate before a ``bench_cohort`` run (minutes, not half an hour): phantom slides are rendered
with known pathology phenotypes z_p, tumor patches are read as the shipped patch model reads them
(:class:`~sarcoma_risk.release.config.TrainAllConfig`: patch size, spacing, architecture, random
initialisation, augmentation, AdamW at the trainer's default rate and decay, patches per epoch,
batch size), and two networks regress z_p from single patches:

- ``patch_model``: the patch network (ShuffleNetV2 of the release configuration, random weights; or the
  one ``--architecture/--init/--patch-px/--spacing`` name, e.g. the paper's x1.0 at 224 px, 0.5 µm);
- ``control``: a plain CNN of six 3x3 convolutions, the first two at full resolution (no strided
  stem), the positive control that tells "the images do not show z_p at this spacing" apart from
  "this network does not learn it".

``--label outcome`` trains on what the product trains on instead: a binary label per slide, as weak a
hint of z_p as recurrence within the horizon is (drawn from a logistic model of z_p with slope
``OUTCOME_SLOPE``; about 21% positive and r(label, z_p) about 0.19, where the hard cohort's development
cases give 0.18), with binary cross-entropy and class-balanced sampling as ``train pathology`` uses.
It tells "the labels are too weak for this many slides" apart from "this network learns too slowly".

Figures: ``validation_r_<network>`` (Pearson r of the slide's mean patch output with z_p on
held-out slides, last epoch, and the best epoch's), ``train_loss_<network>`` (MSE, z_p has variance 1;
or binary cross-entropy) and ``seconds_<network>``; with ``--label outcome`` also
``label_phenotype_r`` (the drawn training labels' r with z_p). A network that cannot read z_p with z_p
itself as its label will hardly read it behind recurrence labels, so one whose r stays near 0 here
will not beat the colour baseline in ``bench_cohort``.
``--device`` (auto, cpu, cuda, mps) runs both networks there.
Run: ``.venv/bin/python benchmarks/bench_patch_oracle.py [--difficulty hard] [--slides 120] [--label outcome] [--device auto]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from common import emit, machine
from sarcoma_risk.release.config import TrainAllConfig

BENCH = "patch_oracle"
SEED = 123
VAL_PATCHES_PER_SLIDE = 24
#: ``--label outcome``: P(label 1) = sigmoid(OUTCOME_INTERCEPT + OUTCOME_SLOPE * z_p).
OUTCOME_INTERCEPT, OUTCOME_SLOPE = -1.4, 0.5


def _render(folder: Path, phenotypes: np.ndarray, difficulty: str, spacing_um: float, patch_px: int,
            seed: int) -> list[tuple[np.ndarray, float]]:
    """(tumor patches (n, px, px, 3) uint8, z_p) per rendered slide, one slide per phenotype."""
    from sarcoma_risk.pathology.regions import read_tumor_region
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.pathology.tiling import plan_patches
    from sarcoma_risk.pathology.tissue import tissue_mask
    from sarcoma_risk.synthetic.difficulty import render_difficulty
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    out = []
    for i, z in enumerate(map(float, phenotypes)):
        phantom = write_phantom_slide(folder / f"slide{i}.svs", phenotype=z, centre="A", size="tiny",
                                      seed=seed * 1000 + i, difficulty=render_difficulty(difficulty))
        with open_slide(phantom.slide) as slide:
            region = read_tumor_region(phantom.annotation, slide.dimensions)
            grid = plan_patches(slide, tissue_mask(slide), spacing_um=spacing_um, patch_px=patch_px, region=region)
            patches = np.stack([slide.read_patch(int(x), int(y), grid.geometry) for x, y in grid.coords])
        out.append((patches, z))
        phantom.slide.unlink()
    return out


def _control_network():
    """Six 3x3 convolutions (two at full resolution, two at half, one at a quarter, one at an eighth), then
    a global average and a linear read-out."""
    from torch import nn

    def block(inp: int, out: int) -> list:
        return [nn.Conv2d(inp, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]

    return nn.Sequential(*block(3, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32),
                         nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def outcome_labels(phenotypes: np.ndarray, seed: int) -> np.ndarray:
    """Binary slide labels that hint at z_p as weakly as recurrence does (see the module docstring)."""
    chance = 1.0 / (1.0 + np.exp(-(OUTCOME_INTERCEPT + OUTCOME_SLOPE * phenotypes)))
    return (np.random.default_rng([seed, 1]).random(len(phenotypes)) < chance).astype(np.float32)


def _epoch_order(slide_of: np.ndarray, targets: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    """Patch indices of one epoch: uniform over patches, or (binary ``targets`` per slide) half from
    positive slides and half from negative ones, a slide uniformly within its class and a patch
    uniformly within its slide, as ``train pathology`` samples."""
    if targets is None:
        return rng.choice(len(slide_of), n)
    by_slide = [np.flatnonzero(slide_of == k) for k in range(len(targets))]
    by_class = [np.flatnonzero(targets == c) for c in (0, 1)]
    order = np.empty(n, dtype=np.int64)
    for i, cls in enumerate(rng.integers(0, 2, n)):
        patches = by_slide[by_class[cls][rng.integers(len(by_class[cls]))]]
        order[i] = patches[rng.integers(len(patches))]
    return order


def _train(build, train: list, val: list, *, targets: np.ndarray | None, epochs: int, config, seed: int,
           device) -> tuple[list, list]:
    """Per-epoch training loss and validation r of the network ``build()`` makes, from single patches:
    regressing z_p (MSE) when ``targets`` is None, else predicting each training slide's binary
    ``targets`` (binary cross-entropy)."""
    import torch

    from sarcoma_risk.device import to_device
    from sarcoma_risk.pathology.augment import augment_batch
    from sarcoma_risk.pathology.train import TrainConfig

    torch.manual_seed(seed)  # before building: the initial weights are drawn from it too
    network = build().to(device)
    generator = torch.Generator().manual_seed(seed)
    patches = np.concatenate([p for p, _ in train])
    slide_of = np.concatenate([np.full(len(p), k) for k, (p, _) in enumerate(train)])
    per_slide = np.array([z for _, z in train], dtype=np.float32) if targets is None else targets
    labels = per_slide[slide_of]
    loss_of = (torch.nn.functional.mse_loss if targets is None
               else torch.nn.functional.binary_cross_entropy_with_logits)
    trainer = TrainConfig()
    optimiser = torch.optim.AdamW(network.parameters(), lr=trainer.learning_rate, weight_decay=trainer.weight_decay)
    as_tensor = lambda a: to_device(torch.from_numpy(a), device).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    losses, rs = [], []
    for epoch in range(epochs):
        network.train()
        order = _epoch_order(slide_of, targets, config.pathology_patches_per_epoch, np.random.default_rng([seed, epoch]))
        total = []
        for start in range(0, len(order), config.pathology_batch_size):
            chosen = order[start:start + config.pathology_batch_size]
            x = augment_batch(as_tensor(patches[chosen]), trainer.augment, generator)
            loss = loss_of(network(x).reshape(-1), to_device(torch.from_numpy(labels[chosen]), device))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total.append(loss.item())
        network.eval()
        with torch.no_grad():
            predicted = [network(as_tensor(p[:VAL_PATCHES_PER_SLIDE])).mean().item() for p, _ in val]
        losses.append(float(np.mean(total)))
        rs.append(float(np.corrcoef(predicted, [z for _, z in val])[0, 1]))
        print(f"# epoch {epoch + 1}: training loss {losses[-1]:.3f}, validation r {rs[-1]:+.3f}", flush=True)
    return losses, rs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", choices=("standard", "hard"), default="hard")
    parser.add_argument("--slides", type=int, default=120, help="rendered slides; 60%% train, 40%% validate")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the patch network (its release setting)")
    parser.add_argument("--control-epochs", type=int, default=4, help="epochs of the control CNN")
    parser.add_argument("--seed", type=int, default=SEED)
    release = TrainAllConfig()
    parser.add_argument("--architecture", default=release.pathology_architecture)
    parser.add_argument("--init", default=release.pathology_init, help="random, imagenet, auto or a state-dict file")
    parser.add_argument("--patch-px", type=int, default=release.pathology_patch_px)
    parser.add_argument("--spacing", type=float, default=release.pathology_spacing_um, help="um per pixel")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    parser.add_argument("--patches-per-epoch", type=int, default=release.pathology_patches_per_epoch,
                        help="patches drawn per epoch (default: as make weights)")
    parser.add_argument("--label", choices=("phenotype", "outcome"), default="phenotype",
                        help="train on z_p itself (MSE) or on outcome-strength binary slide labels (cross-entropy)")
    args = parser.parse_args()
    if args.slides < 10 or args.epochs < 1 or args.control_epochs < 1 or args.patches_per_epoch < 1:
        parser.error(f"--slides {args.slides}, --epochs {args.epochs}, --control-epochs {args.control_epochs}, "
                     f"--patches-per-epoch {args.patches_per_epoch}: need at least 10 slides (4 to validate on), "
                     "one epoch each and one patch an epoch")
    release = dataclasses.replace(release, pathology_patches_per_epoch=args.patches_per_epoch)

    import torch

    from sarcoma_risk.device import resolve_device
    from sarcoma_risk.pathology.model import make_patch_model, resolve_init

    init, init_note = resolve_init(args.init, args.architecture)
    device = resolve_device(args.device)
    context = {"difficulty": args.difficulty, "slides": args.slides, "architecture": args.architecture,
               "init": str(init), "patch_px": args.patch_px, "spacing_um": args.spacing, "device": str(device),
               "label": args.label, "patches_per_epoch": args.patches_per_epoch,
               "threads": torch.get_num_threads(), **machine()}
    if init_note:
        context["init_note"] = init_note
    phenotypes = np.random.default_rng(args.seed).standard_normal(args.slides)
    cut = int(0.6 * args.slides)
    targets = None
    if args.label == "outcome":  # drawn before rendering, so a draw that cannot train stops at once
        targets = outcome_labels(phenotypes[:cut], args.seed)
        if targets.min() == targets.max():
            parser.error(f"--slides {args.slides} --seed {args.seed}: every training slide drew the same label; "
                         "render more slides or take another seed")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        slides = _render(Path(tmp), phenotypes, args.difficulty, args.spacing, args.patch_px, args.seed)
    emit(BENCH, "seconds_render", round(time.perf_counter() - started, 1), "s", **context)
    if targets is not None:
        emit(BENCH, "label_phenotype_r", round(float(np.corrcoef(targets, phenotypes[:cut])[0, 1]), 3), "pearson",
             positives=int(targets.sum()), **context)
    networks = {
        "patch_model": (lambda: make_patch_model(args.architecture, init), args.epochs),
        "control": (_control_network, args.control_epochs),
    }
    for name, (build, epochs) in networks.items():
        started = time.perf_counter()
        losses, rs = _train(build, slides[:cut], slides[cut:], targets=targets, epochs=epochs, config=release,
                            seed=args.seed, device=device)
        extra = {**context, "epochs": epochs, "train_slides": cut, "validation_slides": len(slides) - cut}
        emit(BENCH, f"validation_r_{name}", round(rs[-1], 3), "pearson", best=round(max(rs), 3), **extra)
        emit(BENCH, f"train_loss_{name}", round(losses[-1], 3), "mse" if targets is None else "bce",
             first=round(losses[0], 3), **extra)
        emit(BENCH, f"seconds_{name}", round(time.perf_counter() - started, 1), "s", **extra)


if __name__ == "__main__":
    main()
