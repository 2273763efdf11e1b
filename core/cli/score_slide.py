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
from typing import Any

from sarcoma_risk.cli.common import add_json_option, add_store_option, print_json

POOLING = "patch-level: tile counts of all slides scored by the same models are summed, then scored"


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "score-slide", help="score an H&E whole-slide image and write the case's pathology section",
        description="Score a whole-slide image (SVS, NDPI, MRXS, tiled TIFF, DICOM WSI) with the pathology "
                    "models, write tile outputs (CSV, QuPath GeoJSON tiles, heatmap PNG) and merge the slide into "
                    "the pathology section of the case record.")
    p.add_argument("--case", dest="case_id", required=True, help="pseudonymous case id, e.g. STS-0001")
    p.add_argument("--slide", type=Path, required=True, help="the slide file (or DICOM WSI folder)")
    p.add_argument("--annotations", type=Path, default=None, metavar="GEOJSON",
                   help="QuPath GeoJSON with the tumor annotation (class 'Tumor'); default: the whole tissue")
    p.add_argument("--mpp", type=float, default=None,
                   help="microns per level-0 pixel, for slides that do not record it (0.25 at 40x, 0.5 at 20x)")
    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--out", type=Path, default=Path("sarcoma-risk-output"), metavar="DIR",
                   help="folder for the tile table, QuPath tiles and heatmap (default: %(default)s)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="tile cache folder (default: OUT/tile-cache); a slide scored before is not read again")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16 is faster on CPUs with AVX-512 BF16; check it against fp32 first (default: fp32)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="patch reader threads (default: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_store_option(p)
    add_json_option(p)
    p.set_defaults(handler=cmd_score_slide)


def _slide_entry(result: Any, models: Any, outputs: dict[str, str]) -> dict[str, Any]:
    from sarcoma_risk.provenance import utc_now

    tiles = result.tiles
    return {
        "slide_sha256": result.run.slide_fingerprint["sha256"],
        "score": result.score,
        "n_tiles": len(tiles),
        "tissue_area_mm2": round(tiles.tissue_area_mm2, 4),
        "restricted_to_annotation": result.run.restricted_to_annotation,
        "annotation_sha256": result.run.annotation_sha256,
        "mpp": tiles.mpp,
        "mpp_source": result.run.mpp_source,
        "mean_probability": result.mean_probability,
        "patch_model_sha256": models.model_sha256,
        "signature_sha256": models.signature_sha256,
        "counts": result.counts,
        "outputs": outputs,
        "scored_utc": utc_now(),
    }


def merge_slide(current: dict[str, Any] | None, entry: dict[str, Any], models: Any,
                provenance: dict[str, Any]) -> dict[str, Any]:
    """The new pathology section: ``entry`` added (replacing the same slide) and the case score pooled.

    Only slides scored with the current patch model and signature are pooled; others stay listed
    (with their own scores) and are named in ``not_pooled`` so nobody mixes models unknowingly.
    """
    from sarcoma_risk.pathology.signature import pool_counts

    slides = [s for s in (current or {}).get("slides", []) if s.get("slide_sha256") != entry["slide_sha256"]]
    slides.append(entry)
    same = [s for s in slides if s.get("patch_model_sha256") == models.model_sha256
            and s.get("signature_sha256") == models.signature_sha256 and s.get("counts")]
    score = float(models.signature.predict([pool_counts([s["counts"] for s in same])])[0])
    return {
        "slides": slides,
        "score": score,
        "pooled_slides": [s["slide_sha256"] for s in same],
        "not_pooled": [s["slide_sha256"] for s in slides if s not in same],
        "pooling": POOLING,
        "provenance": provenance,
    }


def cmd_score_slide(args: argparse.Namespace) -> int:
    from sarcoma_risk.pathology.outputs import write_heatmap, write_tile_csv, write_tile_geojson
    from sarcoma_risk.pathology.pipeline import load_models, score_slide
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.provenance import Provenance, fingerprint, sha256_file
    from sarcoma_risk.records import open_store, validate_case_id
    from sarcoma_risk.settings import default_weights_dir

    case_id = validate_case_id(args.case_id)
    models = load_models(args.weights or default_weights_dir(), precision=args.precision)
    out = args.out
    result = score_slide(args.slide, models, annotation=args.annotations, mpp=args.mpp,
                         cache_dir=args.cache_dir or out / "tile-cache", batch_size=args.batch_size,
                         workers=args.workers, progress=not args.no_progress)
    slide_sha = result.run.slide_fingerprint["sha256"]
    stem = f"{case_id}-{slide_sha[:12]}"
    files = {"tiles_csv": write_tile_csv(out / f"{stem}.tiles.csv", result.tiles),
             "tiles_geojson": write_tile_geojson(out / f"{stem}.tiles.geojson", result.tiles)}
    with open_slide(args.slide, args.mpp) as slide:
        thumbnail, downsample = slide.thumbnail(1024)
    files["heatmap_png"] = write_heatmap(out / f"{stem}.heatmap.png", thumbnail, downsample, result.tiles)
    outputs = {f"{key}_sha256": sha256_file(path) for key, path in files.items()}
    entry = _slide_entry(result, models, outputs)
    inputs = {"slide": result.run.slide_fingerprint}
    if args.annotations is not None:
        inputs["annotation"] = fingerprint(args.annotations)
    provenance = Provenance(
        model_name="pathology", model_version=models.model_version, weights_sha256=models.model_sha256,
        inputs=inputs,
        parameters={"architecture": models.architecture, "patch_px": models.patch_px,
                    "spacing_um": models.spacing_um, "precision": models.precision,
                    "signature_sha256": models.signature_sha256, "signature_version": models.signature_version,
                    "mpp": result.tiles.mpp, "mpp_source": result.run.mpp_source,
                    "restricted_to_annotation": result.run.restricted_to_annotation}).to_dict()
    with open_store(args.store, mode="a") as store:
        revision = store.update_section(case_id, "pathology",
                                        lambda current: merge_slide(current, entry, models, provenance))
        section = store.get(case_id).pathology
    report = {"case_id": case_id, "revision": revision, "slide": entry, "case_score": section["score"],
              "n_slides": len(section["slides"]), "outputs": {k: str(v) for k, v in files.items()}}
    if args.json:
        print_json(report)
    else:
        scope = "tumor annotation" if entry["restricted_to_annotation"] else "whole tissue (no annotation)"
        print(f"case {case_id}: slide {slide_sha[:12]} scored on {entry['n_tiles']} tiles ({scope}); "
              f"slide score {entry['score']:+.3f}, case pathology score {section['score']:+.3f} "
              f"from {len(section['pooled_slides'])} slide(s); pathology section revision {revision}")
        for key, path in files.items():
            print(f"  {key}: {path}")
        if section["not_pooled"]:
            print(f"note: {len(section['not_pooled'])} earlier slide(s) were scored with other models and are not "
                  "pooled; score them again to include them", file=sys.stderr)
    return 0
