"""Can a patch network read the slide phenotype at all? Trained on the phenotype itself, not on outcomes.

The gate before a ``bench_cohort`` run (minutes, not half an hour): phantom slides are rendered
with known pathology phenotypes z_p, tumor patches are read as the shipped patch model reads them
(:class:`~sarcoma_risk.release.config.TrainAllConfig`: patch size, spacing, architecture, random
initialisation, augmentation, AdamW, patches per epoch, batch size), and two networks regress z_p
from single patches:

- ``shipped``: the shipped patch network (ShuffleNetV2 of the release configuration);
- ``control``: a plain seven-layer CNN at full resolution (no strided stem), the positive control
  that tells "the images do not show z_p at this spacing" apart from "this network does not learn it".

Figures: ``validation_r_<network>`` (Pearson r of the slide's mean patch prediction with z_p on
held-out slides, last epoch, and the best epoch's), ``train_loss_<network>`` (MSE, z_p has variance 1)
and ``seconds_<network>``. An outcome-trained model cannot read more than this check does, so a
network whose r stays near 0 here will not beat the colour baseline in ``bench_cohort``.
Run: ``.venv/bin/python benchmarks/bench_patch_oracle.py [--difficulty hard] [--slides 120]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import emit, machine

BENCH = "patch_oracle"
SEED = 123
VAL_PATCHES_PER_SLIDE = 24


def _render(folder: Path, slides: int, difficulty: str, spacing_um: float, patch_px: int,
            seed: int) -> list[tuple[np.ndarray, float]]:
    """(tumor patches (n, px, px, 3) uint8, z_p) per rendered slide."""
    from sarcoma_risk.pathology.regions import read_tumor_region
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.pathology.tiling import plan_patches
    from sarcoma_risk.pathology.tissue import tissue_mask
    from sarcoma_risk.synthetic.difficulty import render_difficulty
    from sarcoma_risk.synthetic.wsi import write_phantom_slide

    rng = np.random.default_rng(seed)
    out = []
    for i in range(slides):
        z = float(rng.standard_normal())
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
    """Seven 3x3 convolutions at full, half, quarter and eighth resolution, then a linear read-out."""
    from torch import nn

    def block(inp: int, out: int) -> list:
        return [nn.Conv2d(inp, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]

    return nn.Sequential(*block(3, 16), *block(16, 16), nn.MaxPool2d(2), *block(16, 32), *block(32, 32),
                         nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))


def _train(network, train: list, val: list, *, epochs: int, config, seed: int) -> tuple[list, list]:
    """Per-epoch training MSE and validation r of ``network`` regressing z_p from single patches."""
    import torch

    from sarcoma_risk.pathology.augment import AugmentConfig, augment_batch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    patches = np.concatenate([p for p, _ in train])
    labels = np.concatenate([np.full(len(p), z, dtype=np.float32) for p, z in train])
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=1e-4)
    as_tensor = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0  # noqa: E731
    losses, rs = [], []
    for epoch in range(epochs):
        network.train()
        order = np.random.default_rng([seed, epoch]).choice(len(patches), config.pathology_patches_per_epoch)
        total = []
        for start in range(0, len(order), config.pathology_batch_size):
            chosen = order[start:start + config.pathology_batch_size]
            x = augment_batch(as_tensor(patches[chosen]), AugmentConfig(), generator)
            loss = ((network(x).reshape(-1) - torch.from_numpy(labels[chosen])) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total.append(loss.item())
        network.eval()
        with torch.no_grad():
            predicted = [network(as_tensor(p[:VAL_PATCHES_PER_SLIDE])).mean().item() for p, _ in val]
        losses.append(float(np.mean(total)))
        rs.append(float(np.corrcoef(predicted, [z for _, z in val])[0, 1]))
        print(f"# epoch {epoch + 1}: training MSE {losses[-1]:.3f}, validation r {rs[-1]:+.3f}", flush=True)
    return losses, rs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", choices=("standard", "hard"), default="hard")
    parser.add_argument("--slides", type=int, default=120, help="rendered slides; 60%% train, 40%% validate")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the shipped network (its release setting)")
    parser.add_argument("--control-epochs", type=int, default=4, help="epochs of the control CNN")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()

    import torch

    from sarcoma_risk.pathology.model import make_patch_model
    from sarcoma_risk.release.config import TrainAllConfig

    config = TrainAllConfig()
    context = {"difficulty": args.difficulty, "slides": args.slides, "architecture": config.pathology_architecture,
               "patch_px": config.pathology_patch_px, "spacing_um": config.pathology_spacing_um,
               "threads": torch.get_num_threads(), **machine()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        slides = _render(Path(tmp), args.slides, args.difficulty, config.pathology_spacing_um,
                         config.pathology_patch_px, args.seed)
    emit(BENCH, "seconds_render", round(time.perf_counter() - started, 1), "s", **context)
    cut = int(0.6 * len(slides))
    networks = {
        "shipped": (lambda: make_patch_model(config.pathology_architecture, "random"), args.epochs),
        "control": (_control_network, args.control_epochs),
    }
    for name, (build, epochs) in networks.items():
        started = time.perf_counter()
        losses, rs = _train(build(), slides[:cut], slides[cut:], epochs=epochs, config=config, seed=args.seed)
        extra = {**context, "epochs": epochs, "train_slides": cut, "validation_slides": len(slides) - cut}
        emit(BENCH, f"validation_r_{name}", round(rs[-1], 3), "pearson", best=round(max(rs), 3), **extra)
        emit(BENCH, f"train_loss_{name}", round(losses[-1], 3), "mse", first=round(losses[0], 3), **extra)
        emit(BENCH, f"seconds_{name}", round(time.perf_counter() - started, 1), "s", **extra)


if __name__ == "__main__":
    main()
