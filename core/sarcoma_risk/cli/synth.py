"""``sarcoma-risk synth``: generate a phantom cohort with known ground truth."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sarcoma_risk.cli.common import add_json_option, print_json


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "synth", help="generate a phantom multi-centre cohort (MRI, slides, manifest, truth)",
        description="Generate a phantom cohort whose ground truth is known: MRI volumes with tumor "
                    "segmentations, H&E-like whole-slide images with tumor annotations, a cohort manifest "
                    "(manifest.csv, see docs/manifest.md) and truth.json (latent phenotypes, true linear "
                    "predictor, Cox coefficients, oracle C-index). Same seed, same bytes.")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="output folder: new or empty (or a previous cohort, with --overwrite)")
    p.add_argument("--cases", type=int, required=True, metavar="N", help="number of cases, spread over the centres")
    p.add_argument("--centres", default="A,B", metavar="A,B",
                   help="centre codes (letters/digits) separated by commas; with --split centre the first is "
                        "the development cohort and the others are validation (default: A,B)")
    p.add_argument("--seed", type=int, default=0, help="random seed, >= 0 (default: 0)")
    p.add_argument("--size", default="tiny", metavar="tiny|small|medium",
                   help="image size preset: tiny (tests), small (benchmarks), medium (realistic) (default: tiny)")
    p.add_argument("--split", default="centre", metavar="centre|random",
                   help="centre: first centre development, others validation; random: within every centre a "
                        "fraction --validation-fraction is validation (default: centre)")
    p.add_argument("--validation-fraction", type=float, default=0.3, metavar="F",
                   help="share of validation cases with --split random (default: 0.3)")
    p.add_argument("--missing-rate", type=float, default=0.0, metavar="P",
                   help="share of cases lacking one imaging modality (MRI or slides), to exercise "
                        "missing-modality fusion (default: 0)")
    p.add_argument("--dicom-rate", type=float, default=None, metavar="P",
                   help="share of MRI written as DICOM series (default: 0 for tiny, 0.15 otherwise)")
    p.add_argument("--difficulty", default="standard", metavar="standard|hard",
                   help="standard: the original phantom (same bytes by seed); hard: weak (0.35 per SD of log "
                        "hazard), noisy and intratumorally heterogeneous imaging phenotypes tied to the FNCLCC "
                        "necrosis and mitotic scores, shown in texture and nuclear structure rather than in "
                        "intensity or colour, and centres that differ in case mix and baseline hazard "
                        "(default: standard)")
    p.add_argument("--modalities", default="mri,slides", metavar="mri|slides|mri,slides",
                   help="images to render: an MRI-only or slides-only cohort has the same cases and outcomes, with "
                        "the other images left out (default: mri,slides)")
    p.add_argument("--table-only", action="store_true",
                   help="write only manifest.csv (no image paths) and truth.json, without images")
    p.add_argument("--workers", type=int, default=1, metavar="W", help="processes rendering cases (default: 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace manifest.csv, truth.json and cases/ of an existing cohort in DIR")
    add_json_option(p)
    p.set_defaults(handler=cmd_synth)


class _Progress:
    """Progress lines on stderr: the first case, then at most one a second, and the last."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.last = -1.0

    def __call__(self, done: int, total: int, case_id: str) -> None:
        now = time.monotonic()
        if done in (1, total) or now - self.last >= 1.0:
            self.last = now
            print(f"synth: {done}/{total} cases ({case_id}, {now - self.start:.1f} s)", file=sys.stderr, flush=True)


def cmd_synth(args: argparse.Namespace) -> int:
    from sarcoma_risk.synthetic import generate_cohort

    cohort = generate_cohort(
        args.out, args.cases, args.centres, args.seed, args.size, images=not args.table_only,
        overwrite=args.overwrite, workers=args.workers, split=args.split,
        validation_fraction=args.validation_fraction, missing_rate=args.missing_rate,
        dicom_rate=args.dicom_rate, progress=_Progress(), difficulty=args.difficulty, modalities=args.modalities)
    truth = cohort.load_truth()
    groups = truth["c_index"]["groups"]
    summary = {"out": str(cohort.root), "manifest": str(cohort.manifest), "truth": str(cohort.truth),
               "cases": cohort.n_cases,
               "groups": {name: {"n": g["n"], "events": g["events"], "oracle_c_index": g["oracle"]}
                          for name, g in groups.items()}}
    if args.json:
        print_json(summary)
        return 0
    print(f"wrote {cohort.n_cases} phantom cases to {cohort.root}")
    for name, g in groups.items():
        oracle = "n/a" if g["oracle"] is None else f"{g['oracle']:.3f}"
        print(f"  {name:24s} n={g['n']:<5d} events={g['events']:<5d} oracle C-index {oracle}")
    print(f"manifest: {cohort.manifest}\ntruth:    {cohort.truth}  (keep it away from the models)")
    return 0
