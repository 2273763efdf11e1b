"""``sarcoma-risk score-slide``: score one whole-slide image into the case's pathology section.

The slide is scored by the pathology models of ``--weights`` (patch model + slide signature), the
tiles are written as a CSV table, QuPath GeoJSON tiles and a heatmap PNG into ``--out`` (named by
case id and slide sha256, never by the input file name), and the slide is merged into the pathology
section of the case record: a slide already there (same sha256) is replaced, and the case score is
recomputed from the tile counts of every slide scored by the same models (patch-level pooling).
All checks and all scoring happen before the store is opened for writing, so a bad slide,
annotation or weights file leaves the case record as it was.
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
    print_json,
)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "score-slide", help="score an H&E whole-slide image and write the case's pathology section",
        description="Score a whole-slide image (SVS, NDPI, MRXS, tiled TIFF, DICOM WSI) with the pathology "
                    "models, write tile outputs (CSV, QuPath GeoJSON tiles, heatmap PNG) and merge the slide into "
                    "the pathology section of the case record.")
    p.add_argument("--case", dest="case_id", required=True, help="pseudonymous case id, e.g. STS-0001")
    p.add_argument("--slide", type=Path, required=True, help="the slide file (or DICOM WSI folder)")
    p.add_argument("--annotations", type=Path, default=None, metavar="GEOJSON",
                   help="QuPath GeoJSON with the tumor annotation (class 'Tumor' unless --annotation-class says "
                        "otherwise); default: the whole tissue")
    add_annotation_class_option(p, "--annotations")
    p.add_argument("--mpp", type=float, default=None,
                   help="microns per level-0 pixel, for slides that do not record it (0.25 at 40x, 0.5 at 20x)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--out", type=Path, default=Path("sarcoma-risk-output"), metavar="DIR",
                   help="folder for the tile table, QuPath tiles and heatmap (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="tile cache folder (default: OUT/tile-cache); a slide scored before is not read again")
    add_device_options(p, SCORING_PRECISION_HELP)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="patch reader threads (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_score_slide)


def cmd_score_slide(args: argparse.Namespace) -> int:
    from sarcoma_risk.errors import InvalidInput
    from sarcoma_risk.pathology.classes import check_class_names, describe
    from sarcoma_risk.pathology.pipeline import load_models
    from sarcoma_risk.pathology.record import merge_slide
    from sarcoma_risk.pathology.scoring import score_case_slide
    from sarcoma_risk.records import open_store, validate_case_id
    from sarcoma_risk.settings import default_weights_dir
    from sarcoma_risk.stopwatch import Stopwatch

    watch = Stopwatch()
    case_id = validate_case_id(args.case_id)
    if args.annotation_classes and args.annotations is None:
        raise InvalidInput("--annotation-class names the tumor's class in --annotations; give the annotation file "
                           "too, or leave both out to score the whole tissue")
    classes = check_class_names(args.annotation_classes)
    with watch.stage("load_models"):  # includes importing torch
        models = load_models(args.weights or default_weights_dir(), precision=args.precision, device=args.device)
    scored = score_case_slide(case_id, args.slide, models, out_dir=args.out, annotation=args.annotations,
                              annotation_classes=classes, mpp=args.mpp, cache_dir=args.cache_dir,
                              batch_size=args.batch_size, workers=args.workers, progress=not args.no_progress,
                              stopwatch=watch)
    entry, files, slide_sha = scored.entry, scored.files, scored.entry["slide_sha256"]
    with watch.stage("case_record"):
        with open_store(args.store, mode="a") as store:
            revision = store.update_section(case_id, "pathology",
                                            lambda current: merge_slide(current, entry, models, scored.provenance))
            section = store.get(case_id).pathology
    # timings_s: where this command's time went (seconds per stage; Python's start-up is not in it)
    report = {"case_id": case_id, "revision": revision, "slide": entry, "case_score": section["score"],
              "n_slides": len(section["slides"]), "outputs": {k: str(v) for k, v in files.items()},
              "timings_s": watch.to_dict()}
    if args.json:
        print_json(report)
    else:
        scope = (f"annotations of class {describe(classes)}" if entry["restricted_to_annotation"]
                 else "whole tissue (no annotation)")
        print(f"case {case_id}: slide {slide_sha[:12]} scored on {entry['n_tiles']} tiles ({scope}); "
              f"slide score {entry['score']:+.3f}, case pathology score {section['score']:+.3f} "
              f"from {len(section['pooled_slides'])} slide(s); pathology section revision {revision}")
        for key, path in files.items():
            print(f"  {key}: {path}")
        if section["not_pooled"]:
            print(f"note: {len(section['not_pooled'])} earlier slide(s) were scored with other models and are not "
                  "pooled; score them again to include them", file=sys.stderr)
    return 0
