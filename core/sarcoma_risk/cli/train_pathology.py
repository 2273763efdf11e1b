"""``sarcoma-risk train pathology`` and ``train pathology-signature``."""

from __future__ import annotations

import argparse
from pathlib import Path

from sarcoma_risk.cli.common import (
    TRAINING_PRECISION_HELP,
    add_checkpoint_options,
    add_device_options,
    add_json_option,
    print_json,
    training_runtime,
)


def _signature_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bins", type=int, default=10, help="histogram bins of patch probabilities (default: 10)")
    p.add_argument("--words", type=int, default=20, help="bag-of-words quantisation levels (default: 20)")
    p.add_argument("--penalizer", type=float, default=0.5, help="Cox penalizer (default: 0.5)")
    p.add_argument("--l1-ratio", type=float, default=0.0, help="L1 share of the penalty (default: 0, ridge)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="tile cache folder (default: OUT/tile-cache)")
    p.add_argument("--workers", type=int, default=2, help="patch reader threads (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_option(p)


def register_train(train: argparse._SubParsersAction) -> None:
    p = train.add_parser(
        "pathology", help="train the patch model and slide signature on the development split",
        description="Train ShuffleNetV2 on H&E patches of the development cases (label: recurrence within "
                    "--horizon-months), fit the slide signature (penalized Cox) and write out-of-fold pathology "
                    "scores (--folds K cross-fitting) to OUT/pathology_scores.csv. Models are registered in OUT. "
                    "Under torchrun (e.g. `torchrun --nproc-per-node 2 -m sarcoma_risk.cli train pathology ...`) "
                    "the processes train one model together (DistributedDataParallel) and share the slides to "
                    "score; rank 0 writes the models, scores, checkpoints and run log.")
    p.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (weights, scores, run log)")
    p.add_argument("--folds", type=int, default=5,
                   help="cross-fitting folds for out-of-fold scores (default: 5; 0 = none, then no development scores)")
    p.add_argument("--preset", default=None, choices=("paper",),
                   help="paper: the published patch model and scale, ShuffleNetV2 x1.0 on 224-px patches at 0.5 um/px "
                        "(20x), from torchvision's ImageNet weights when they are already on this machine, else from "
                        "random weights (--init auto; the run log says which); options given beside it win")
    p.add_argument("--architecture", choices=("shufflenet_v2_x1_0", "shufflenet_v2_x0_5"), default=None,
                   help="default: shufflenet_v2_x1_0")
    p.add_argument("--init", default=None, metavar="imagenet|random|auto|FILE",
                   help="initial weights: torchvision ImageNet (downloaded once), random, auto (ImageNet when already "
                        "in the torch hub cache, else random) or a state-dict file (default: imagenet)")
    p.add_argument("--patch-px", type=int, default=None, help="patch size in pixels (default: 224)")
    p.add_argument("--spacing", type=float, default=None, help="microns per patch pixel (default: 0.5, i.e. 20x)")
    p.add_argument("--horizon-months", type=float, default=36.0,
                   help="label: recurrence within this many months (default: 36)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patches-per-epoch", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of development cases held out for early stopping (default: 0.2)")
    p.add_argument("--patience", type=int, default=4, help="epochs without improvement before stopping")
    p.add_argument("--val-patches-per-slide", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, default=0, metavar="N",
                   help="DataLoader worker processes reading training patches (default: 0, read by --workers threads "
                        "of this process; on a GPU machine several processes keep the GPU fed)")
    add_device_options(p, TRAINING_PRECISION_HELP)
    add_checkpoint_options(p)
    _signature_options(p)
    p.set_defaults(handler=cmd_train_pathology)

    p = train.add_parser(
        "pathology-signature", help="fit the slide signature for an existing patch model",
        description="Score the development slides with the patch model in --weights and fit the slide signature "
                    "(histogram + TF-IDF of patch probabilities, penalized Cox). The scores are in-sample when the "
                    "patch model was trained on these slides; `train pathology --folds K` avoids that.")
    p.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV")
    p.add_argument("--weights", type=Path, required=True, metavar="DIR", help="folder holding the pathology-patch model")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="folder to register the signature in (may be the same as --weights)")
    _signature_options(p)
    p.set_defaults(handler=cmd_train_signature)


def _signature_config(args: argparse.Namespace):
    from sarcoma_risk.pathology.crossfit import SignatureConfig

    return SignatureConfig(n_bins=args.bins, n_words=args.words, penalizer=args.penalizer, l1_ratio=args.l1_ratio)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_train_pathology(args: argparse.Namespace) -> int:
    from sarcoma_risk.distributed import start
    from sarcoma_risk.pathology.crossfit import SCORES_FILE, train_pathology
    from sarcoma_risk.pathology.train import PAPER_PRESET, TrainConfig

    # an option given on the command line, else the preset's value, else TrainConfig's default
    scale = {**(PAPER_PRESET if args.preset == "paper" else {}),
             **{k: v for k, v in (("architecture", args.architecture), ("init", args.init), ("patch_px", args.patch_px),
                                  ("spacing_um", args.spacing)) if v is not None}}
    config = TrainConfig(**scale, horizon_months=args.horizon_months, epochs=args.epochs,
                         patches_per_epoch=args.patches_per_epoch, batch_size=args.batch_size,
                         learning_rate=args.lr, val_fraction=args.val_fraction, patience=args.patience,
                         val_patches_per_slide=args.val_patches_per_slide, seed=args.seed, workers=args.workers)
    with start(args.device) as (group, device):
        runtime = training_runtime(args, group, device, num_workers=args.num_workers)
        run = train_pathology(args.manifest, args.out, config, folds=args.folds,
                              signature_config=_signature_config(args), cache_dir=args.cache_dir,
                              progress=not args.no_progress, runtime=runtime)
    if run is None:  # a rank other than 0 of a distributed run: rank 0 reports
        return 0
    if args.json:
        print_json(run.to_dict())
    else:
        final = run.final_model
        print(f"trained the patch model on {final.n_train_cases} development cases (best epoch "
              f"{final.best_epoch}, inner validation C-index {_fmt(final.best_val_cindex)})")
        if args.folds:
            print(f"out-of-fold C-index ({args.folds} folds): slide signature {_fmt(run.oof_signature_cindex)}, "
                  f"mean patch probability {_fmt(run.oof_mean_probability_cindex)}")
        if run.validated:
            print(f"validation split C-index: {_fmt(run.validation_signature_cindex)}")
        print(f"models registered in {args.out}; scores in {args.out / SCORES_FILE}")
    return 0


def cmd_train_signature(args: argparse.Namespace) -> int:
    from sarcoma_risk.pathology.crossfit import fit_signature

    summary = fit_signature(args.manifest, args.weights, args.out, _signature_config(args),
                            cache_dir=args.cache_dir, workers=args.workers, progress=not args.no_progress)
    if args.json:
        print_json(summary.to_dict())
    else:
        print(f"slide signature fit on {summary.n_development_cases} development cases (training "
              f"concordance {_fmt(summary.training_concordance)}, validation C-index "
              f"{_fmt(summary.validation_cindex)}); registered in {args.out}")
    return 0
