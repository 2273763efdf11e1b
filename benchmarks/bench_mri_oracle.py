"""Can the radiology CNN read the MRI phenotype at all? Trained on the phenotype itself, not on outcomes.

The radiology counterpart of ``bench_patch_oracle.py``: a phantom cohort's MRIs (centre A develops,
centre B validates, as ``train all`` splits them) are prepared as a radiology preset prepares them
(patch size, spacing, margin, normalisation, mask channel), and the preset's CBAM 3D CNN regresses the
latent MRI phenotype z_r (``truth.json``) with mean squared error, using the preset's optimiser
settings, batch size and augmentation. ``train radiology`` fits the same network to outcomes with
the Cox partial likelihood; ``bench_cohort.py`` reports how well that score follows z_r
(``radiology_score_vs_mri_phenotype_pearson``). What this one reaches with z_r as its label bounds
what outcomes can teach the preset on that many cases, and ``--ceiling-only --reader-pearson`` of
``bench_cohort.py`` turns either r into the best C-index and gap share it allows.

Figures: ``validation_r_radiology`` (Pearson r with z_r of the validation cases, last epoch, with the
best epoch's), ``train_loss_radiology`` (MSE; z_r has variance 1), ``seconds_prepare`` and
``seconds_train``; ``seconds_render`` when the cohort is generated here (MRI only); each epoch's loss
and r go to stderr. ``--cohort DIR``
reads a generated cohort instead (``manifest.csv`` and ``truth.json``, e.g. the ``cohort`` folder of
``bench_cohort.py --work``). Run:
``.venv/bin/python benchmarks/bench_mri_oracle.py [--difficulty hard] [--cases 800] [--preset tiny] [--epochs 40]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import emit, machine

BENCH = "mri_oracle"
#: bench_cohort's seed, so that the default cohort's MRIs are those of its runs.
SEED = 7
SEQUENCES = ("t2fs", "t1ce")
VALIDATION_BATCH = 32


def _inputs(cohort: Path, preset_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(development inputs, their z_r, validation inputs, their z_r) of the cases with both sequences."""
    from sarcoma_risk.cohort import Split, read_manifest
    from sarcoma_risk.errors import InvalidManifest
    from sarcoma_risk.radiology.cohort import prepare_cohort
    from sarcoma_risk.radiology.config import preset

    manifest = read_manifest(cohort / "manifest.csv")
    truth_path = cohort / "truth.json"
    try:  # JSONDecodeError is a ValueError
        phenotype = {case["case_id"]: float(case["z_r"])
                     for case in json.loads(truth_path.read_text(encoding="utf-8"))["cases"]}
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidManifest(f"{truth_path}: expected a phantom truth file whose cases each have a "
                              f"case_id and a numeric z_r ({error!r})") from None
    unknown = [case.case_id for case in manifest.cases if case.case_id not in phenotype]
    if unknown:
        raise InvalidManifest(f"{truth_path}: no z_r for {len(unknown)} case(s) of {manifest.path}, e.g. "
                              f"{', '.join(unknown[:5])}; the manifest and truth.json must come from one cohort")
    config = preset(preset_name)[0]
    patches = prepare_cohort(manifest.cases, config)
    out = []
    for split in (Split.DEVELOPMENT, Split.VALIDATION):
        positions = patches.select(split, SEQUENCES)
        out += [patches.stack(positions, SEQUENCES, config.mask_channel),
                np.array([phenotype[patches.case_ids[i]] for i in positions], dtype=np.float32)]
    return tuple(out)


def _train(preset_name: str, x: np.ndarray, z: np.ndarray, x_val: np.ndarray, z_val: np.ndarray, epochs: int,
           seed: int, device) -> tuple[list[float], list[float]]:
    """Per-epoch training MSE and validation r of the preset's network regressing z_r."""
    import torch

    from sarcoma_risk.device import to_device
    from sarcoma_risk.radiology.augment import augment_batch
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.radiology.model import CBAMNet3d

    _, model_config, train_config = preset(preset_name)
    torch.manual_seed(seed)  # before building: the initial weights are drawn from it too
    network = CBAMNet3d(x.shape[1], model_config).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=train_config.learning_rate,
                                  weight_decay=train_config.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    order_rng = np.random.default_rng(seed)
    losses, rs = [], []
    for epoch in range(epochs):
        network.train()
        total = []
        order = order_rng.permutation(len(x))
        for start in range(0, len(order), train_config.batch_size):
            chosen = order[start:start + train_config.batch_size]
            batch = augment_batch(torch.from_numpy(x[chosen]), train_config, len(SEQUENCES), generator)
            target = to_device(torch.from_numpy(z[chosen]), device)
            loss = torch.nn.functional.mse_loss(network(to_device(batch, device)).reshape(-1), target)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total.append(loss.item())
        network.eval()
        with torch.no_grad():
            predicted = np.concatenate([network(to_device(torch.from_numpy(x_val[s:s + VALIDATION_BATCH]), device))
                                        .reshape(-1).float().cpu().numpy()
                                        for s in range(0, len(x_val), VALIDATION_BATCH)])
        losses.append(float(np.mean(total)))
        rs.append(float(np.corrcoef(predicted, z_val)[0, 1]))
        print(f"epoch {epoch + 1}: training loss {losses[-1]:.3f}, validation r {rs[-1]:+.3f}", file=sys.stderr,
              flush=True)
    return losses, rs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--difficulty", choices=("standard", "hard"), default="hard")
    parser.add_argument("--cases", type=int, default=800, help="phantom cases, half per centre (default 800)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"cohort and training seed (default {SEED})")
    parser.add_argument("--cohort", type=Path, default=None,
                        help="a generated cohort folder to read instead (its manifest.csv and truth.json)")
    parser.add_argument("--preset", choices=("tiny", "standard", "paper"), default="tiny",
                        help="radiology preset: tiny (the release's, default) or standard/paper (the published size)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    args = parser.parse_args()
    if args.epochs < 1 or args.cases < 8:
        parser.error(f"--epochs {args.epochs}, --cases {args.cases}: need at least one epoch and 8 cases")
    if args.cohort is not None and not (args.cohort / "truth.json").is_file():
        parser.error(f"--cohort {args.cohort}: no truth.json there; give a folder that generate_cohort wrote")

    import torch

    from sarcoma_risk.device import resolve_device
    from sarcoma_risk.errors import SarcomaRiskError
    from sarcoma_risk.synthetic import generate_cohort

    try:  # an unknown or missing device is refused before anything is rendered
        device = resolve_device(args.device)
    except SarcomaRiskError as error:
        parser.error(str(error))
    context = {"difficulty": args.difficulty, "preset": args.preset, "device": str(device),
               "threads": torch.get_num_threads(), **machine()}
    with tempfile.TemporaryDirectory(prefix="bench_mri_oracle_") as tmp:
        cohort = args.cohort
        if cohort is None:
            started = time.perf_counter()
            cohort = generate_cohort(Path(tmp) / "cohort", args.cases, seed=args.seed, difficulty=args.difficulty,
                                     modalities="mri").root
            emit(BENCH, "seconds_render", round(time.perf_counter() - started, 1), "s", cases=args.cases,
                 seed=args.seed, **context)
            context.update(cases=args.cases, seed=args.seed)
        else:
            context["cohort"] = "given"
        started = time.perf_counter()
        try:
            x, z, x_val, z_val = _inputs(cohort, args.preset)
        except SarcomaRiskError as error:
            raise SystemExit(f"bench_mri_oracle: {error}") from None
    context.update(train_cases=len(z), validation_cases=len(z_val), input_shape=list(x.shape[1:]))
    emit(BENCH, "seconds_prepare", round(time.perf_counter() - started, 1), "s", **context)
    if len(z) < 2 or len(z_val) < 3:
        raise SystemExit(f"bench_mri_oracle: {len(z)} development and {len(z_val)} validation cases with both "
                         "sequences; need at least 2 and 3 (generate more cases)")
    started = time.perf_counter()
    losses, rs = _train(args.preset, x, z, x_val, z_val, args.epochs, args.seed, device)
    context["epochs"] = args.epochs
    emit(BENCH, "validation_r_radiology", round(rs[-1], 3), "pearson", best=round(max(rs), 3),
         best_epoch=int(np.argmax(rs)) + 1, **context)
    emit(BENCH, "train_loss_radiology", round(losses[-1], 3), "mse", first=round(losses[0], 3), **context)
    emit(BENCH, "seconds_train", round(time.perf_counter() - started, 1), "s", **context)


if __name__ == "__main__":
    main()
