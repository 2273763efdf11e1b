"""``sarcoma-risk train all``: the shipped weights, end to end on a fixed-seed phantom cohort (``make weights``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, positive_int, print_json


def register_train(train: argparse._SubParsersAction) -> None:
    from sarcoma_risk.release.config import WEIGHTS_SEED, TrainAllConfig

    defaults = TrainAllConfig()
    p = train.add_parser(
        "all", help="every model end to end on a phantom cohort, validated, into a weights folder (make weights)",
        description="Generate a fixed-seed phantom cohort (centre A development, centre B validation), train the "
                    "radiology model and the pathology patch model and slide signature with cross-fitting, fit the "
                    "fusion models on the out-of-fold scores, evaluate them on centre B, and write into --out the "
                    "weight files, manifest.json (sha256, configuration, training data, validation figures with "
                    "bootstrap CIs), the validation cohort's risk groups and MODEL_CARD.md. Each step is the "
                    "existing command (synth, train radiology, train pathology, train fusion, evaluate). The "
                    "cohort, caches, score tables and the HTML validation report stay in --work.")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="weights folder to write (new, empty, or written by an earlier `train all`)")
    p.add_argument("--work", type=Path, default=Path("build") / "train-all", metavar="DIR",
                   help="scratch folder for the cohort, caches and report (default: %(default)s)")
    p.add_argument("--cases", type=positive_int, default=defaults.cases, metavar="N",
                   help="phantom cases, half per centre (default: %(default)s)")
    p.add_argument("--seed", type=int, default=WEIGHTS_SEED, help="phantom cohort seed (default: %(default)s)")
    p.add_argument("--size", default=defaults.size, metavar="tiny|small|medium",
                   help="phantom image size preset (default: %(default)s)")
    p.add_argument("--difficulty", default=defaults.difficulty, metavar="standard|hard",
                   help="phantom difficulty, see `sarcoma-risk synth --help` (default: %(default)s)")
    p.add_argument("--workers", type=positive_int, default=defaults.workers,
                   help="processes rendering the cohort (default: %(default)s)")
    p.add_argument("--bootstrap", type=positive_int, default=defaults.bootstrap, metavar="B",
                   help="bootstrap resamples of the validation CIs (default: %(default)s)")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps",
                   help="where the radiology and patch models train: auto takes a CUDA GPU when there is one, else "
                        "Apple's MPS, else the CPU (default: auto)")
    add_json_option(p)
    p.set_defaults(handler=cmd_train_all)


def cmd_train_all(args: argparse.Namespace) -> int:
    from sarcoma_risk.device import resolve_device
    from sarcoma_risk.distributed import torchrun_world
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.release.config import TrainAllConfig
    from sarcoma_risk.release.train_all import train_all

    if torchrun_world() is not None:
        raise InvalidInput("train all runs in one process (it also renders the cohort and writes the release); "
                           "launch `train radiology` and `train pathology` with torchrun instead")
    resolve_device(args.device)  # an unknown or missing device is refused before the cohort is rendered
    config = TrainAllConfig(cases=args.cases, seed=args.seed, size=args.size, workers=args.workers,
                            bootstrap=args.bootstrap, difficulty=args.difficulty)
    import sys

    # With --json, stdout holds the summary alone; the steps' progress goes to stderr.
    result = train_all(args.out, args.work, config, stream=sys.stderr if args.json else None, device=args.device)
    oracle = result.figures.oracle or {}
    summary = {"weights": str(result.out_dir), "manifest": str(result.manifest), "report": str(result.report_html),
               "seconds": result.seconds,
               "harrell_c": {name: m["harrell_c"] for name, m in result.figures.comparison.metrics["models"].items()},
               "combined_to_oracle_ratio": oracle.get("combined_to_oracle_ratio")}
    if args.json:
        print_json(summary)
        return 0
    print("validation on centre B, Harrell's C (95% CI):")
    for name, iv in summary["harrell_c"].items():
        print(f"  {name:30s} {iv['estimate']:.3f} ({iv['low']:.3f}-{iv['high']:.3f})")
    ratio = summary["combined_to_oracle_ratio"]
    if ratio:
        print(f"  combined / oracle C-index      {ratio['estimate']:.3f} ({ratio['low']:.3f}-{ratio['high']:.3f})")
    print(f"weights: {result.out_dir}  (model card: {result.out_dir / 'MODEL_CARD.md'})")
    return 0
