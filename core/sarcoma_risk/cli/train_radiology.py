"""``sarcoma-risk train radiology``: train the MRI model on a cohort manifest (development split only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarcoma_risk.cli.common import (
    TRAINING_PRECISION_HELP,
    add_checkpoint_options,
    add_device_options,
    add_json_option,
    print_json,
    training_runtime,
)


def register_train(train: argparse._SubParsersAction) -> None:
    p = train.add_parser(
        "radiology", help="the CBAM 3D CNN on the MRI of a cohort manifest, one model per sequence set",
        description="Train the radiology models on the development cases of a cohort manifest, one per sequence set "
                    "(T2FS + T1CE, T2FS alone, T1CE alone) on the cases that have its sequences, and register them "
                    "in --out (radiology-<set>.pt + manifest.json). With --folds K (K >= 2) every development case "
                    "also gets an out-of-fold score and the deployed model is the mean of the K fold models (on the "
                    "scale of the out-of-fold scores the fusion is fitted on); validation cases get the deployed "
                    "model's score; all go to OUT/radiology_scores.csv for fusion. A case whose MRI cannot be read "
                    "is reported and left out. Under torchrun (e.g. `torchrun --nproc-per-node 2 -m sarcoma_risk.cli "
                    "train radiology ...`) the processes train each model together (DistributedDataParallel); rank 0 "
                    "writes the outputs.")
    p.add_argument("--manifest", type=Path, required=True, help="cohort manifest CSV")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="weights folder to write into")
    p.add_argument("--folds", type=int, default=5, metavar="K",
                   help="cross-fitting folds for out-of-fold development scores (default 5; 0 = none)")
    p.add_argument("--preset", default="standard", choices=("standard", "paper", "tiny"),
                   help="configuration: standard, also called paper (64^3 patches at 2 mm, the published network "
                        "size) or tiny (seconds on tiny phantoms)")
    p.add_argument("--sequence-sets", default=None, metavar="LIST",
                   help="comma-separated sequence sets to train: t2fs+t1ce, t2fs, t1ce (default: every set that "
                        "enough development cases have)")
    p.add_argument("--epochs", type=int, default=None, help="most epochs (default: from the preset)")
    p.add_argument("--batch-size", type=int, default=None, help="cases per step (default: from the preset)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the preset)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is often fastest on a busy machine)")
    add_device_options(p, TRAINING_PRECISION_HELP)
    add_checkpoint_options(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_train_radiology)


def cmd_train_radiology(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sarcoma_risk.distributed import start
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.radiology.cohort import train_from_manifest
    from sarcoma_risk.radiology.config import preset
    from sarcoma_risk.sequences import SET_LABELS

    preprocess, model, train = preset(args.preset)
    overrides = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size), ("seed", args.seed))
                 if v is not None}
    train = replace(train, **overrides)
    sets = [s.strip() for s in args.sequence_sets.split(",") if s.strip()] if args.sequence_sets else None
    if args.threads is not None:
        if args.threads < 1:
            raise InvalidInput(f"--threads: {args.threads} must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    with start(args.device) as (group, device):
        runtime = training_runtime(args, group, device)
        report = train_from_manifest(args.manifest, args.out, preprocess=preprocess, model=model, train=train,
                                     folds=args.folds, sequence_sets=sets, runtime=runtime)
    if not group.is_main:
        return 0
    summary = report.summary
    if args.json:
        print_json(summary.to_dict())
        return 0

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    print(f"radiology models registered in {args.out}:")
    for name, run in summary.models.items():
        figures, cases = run.validation, run.cases
        deployed = f"mean of {len(figures.members)} fold models" if args.folds else "one model"
        print(f"  {SET_LABELS[name]:12s} ({run.model_version}, {deployed}): {cases.development} development case(s), "
              f"C-index out-of-fold {fmt(figures.out_of_fold_cindex)}, validation split "
              f"{fmt(figures.validation_split_cindex)}")
    for name, why in summary.skipped.items():
        print(f"  {SET_LABELS[name]:12s} not trained: {why}")
    print(f"  scores for fusion: {args.out / summary.scores_file}")
    failures = {f["case_id"]: f["error"] for run in summary.models.values() for f in run.cases.failed}
    for case_id, error in failures.items():
        print(f"  left out {case_id}: {error}", file=sys.stderr)
    return 0
