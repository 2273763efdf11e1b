"""``sarcoma-risk score-cohort``: every MRI and slide of a cohort manifest into the case records.

Without ``--cluster`` the cases are scored one after another in this process; with ``--cluster
tcp://host:port`` they go to the workers of that Dask scheduler, and this process writes the
results into the case store as they come back. A line per case and section tells what happened;
the exit status is 1 when any failed (the others are written all the same), and a rerun skips
what the records already hold.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sarcoma_risk.cli.common import (
    SCORING_PRECISION_HELP,
    add_annotation_class_option,
    add_device_options,
    add_json_option,
    add_store_option,
    positive_int,
    print_json,
)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "score-cohort", help="score every MRI and slide of a cohort manifest into the case records",
        description="Score the MRI (radiology section) and the slides (pathology section) of every case of a cohort "
                    "manifest, as score-mri and score-slide do for one case, in this process or on a Dask cluster. "
                    "A failing case is reported and the others go on (exit status 1 if any failed); a rerun skips "
                    "what the case records already hold (same input files by content, same weights), so an "
                    "interrupted run resumes. Writes the slides' tile outputs and OUT/runs/score-cohort-*.json "
                    "(versions, arguments, weights sha256, each case's outcome).")
    p.add_argument("manifest", type=Path, metavar="MANIFEST", help="cohort manifest CSV (docs/manifest.md)")
    p.add_argument("--cluster", default=None, metavar="ADDRESS",
                   help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (default: score in this process). Workers "
                        "need SarcomaRisk with the cluster extra and the same paths to the manifest's files, "
                        "--weights and --out")
    p.add_argument("--modality", choices=("all", "radiology", "pathology"), default="all",
                   help="score only the MRI (radiology) or only the slides (pathology) (default: %(default)s)")
    add_annotation_class_option(p, "the manifest's annotation files")
    p.add_argument("--rescore", action="store_true", help="score again what the case records already hold")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--out", type=Path, default=Path("sarcoma-risk-output"), metavar="DIR",
                   help="folder for the slides' tile outputs, the tile cache and runs/ (default: %(default)s)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="patches per model batch (default: 64)")
    add_device_options(p, SCORING_PRECISION_HELP + "; both are resolved on each worker, so auto takes the GPU of a "
                          "worker that has one")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_score_cohort)


def cmd_score_cohort(args: argparse.Namespace) -> int:
    import json

    from sarcoma_risk.cohortscore.jobs import Status
    from sarcoma_risk.cohortscore.run import ALL_MODALITIES, score_cohort
    from sarcoma_risk.records.location import StoreLocation
    from sarcoma_risk.settings import default_weights_dir

    modalities = ALL_MODALITIES if args.modality == "all" else (args.modality,)
    arguments = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "handler"}
    if args.store is not None:  # the run metadata never hold a database password
        arguments["store"] = StoreLocation.parse(args.store).display
    # With --json, stdout holds the run metadata alone; the lines go to stderr.
    lines = sys.stderr if args.json else sys.stdout
    run = score_cohort(args.manifest, weights_dir=args.weights or default_weights_dir(), out_dir=args.out,
                       store=args.store, cluster=args.cluster, modalities=modalities, rescore=args.rescore,
                       annotation_classes=args.annotation_classes,
                       batch_size=args.batch_size, device=args.device, precision=args.precision, arguments=arguments,
                       on_unit=lambda unit: print(unit.line(), file=lines, flush=True))
    summary = (f"{len(run.units)} case section(s): {run.count(Status.SCORED)} scored, {run.count(Status.SKIPPED)} "
               f"skipped (already in the record), {run.count(Status.FAILED)} failed; run metadata: {run.metadata}")
    if args.json:
        print_json(json.loads(run.metadata.read_text(encoding="utf-8")))
    print(summary, file=lines)
    if run.failed:
        print(f"error: {len(run.failed)} case section(s) failed: "
              + ", ".join(f"{u.case_id} {u.modality.value}" for u in run.failed)
              + "; fix them and run the same command again (what was written is skipped)", file=sys.stderr)
        return 1
    return 0
