"""The ``sarcoma-qupath`` command: QuPath projects and GeoJSON in and out of SarcomaRisk.

Commands:

- ``score PROJECT_DIR``: score the images of a QuPath project (QuPath closed), writing tiles with
  ``recurrence_probability``, the slide score in the image metadata, and the case records;
- ``score-image --slide S --case ID --out DIR``: score one slide given as files (what the QuPath
  script ``score_current_image.groovy`` runs from inside QuPath), writing ``DIR/tiles.geojson`` and
  ``DIR/metadata.json`` and the case record;
- ``export (--case ID | --slide S) --out F.geojson``: the tiles and tumor annotations of a scored
  slide as GeoJSON for QuPath's File > Import objects (no project needed);
- ``import F.geojson --slide S``: check QuPath-exported annotations for ``sarcoma-risk score-slide``
  (and write them in the current QuPath spelling with ``--out``);
- ``settings PROJECT_DIR [--annotation-class NAME ...]``: show or set the project's defaults (the
  QuPath class of its tumor annotations, see :mod:`qupath_bridge.projectsettings`).

The tumor annotations are those of ``--annotation-class`` (repeatable), else of the project's
default, else of class "Tumor", matched as QuPath names classes (exactly, letter case included; a
class also takes the classes derived from it, see :mod:`sarcoma_risk.pathology.classes`).

Exit status: 0 when everything asked for was done, 1 on an error or when some image was not scored
(failed, or without a case id), 2 for a usage error, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def _add_annotation_class_option(p: argparse.ArgumentParser, default: str = "Tumor") -> None:
    p.add_argument("--annotation-class", dest="annotation_classes", action="append", default=None, metavar="NAME",
                   help="QuPath class of the tumor annotations, exactly as QuPath shows it (repeatable; a class also "
                        f"takes the classes derived from it, 'Tumor' takes 'Tumor: Positive'; default: {default})")


def _add_scoring_options(p: argparse.ArgumentParser) -> None:
    from sarcoma_risk.cli.common import (
        SCORING_PRECISION_HELP,
        add_device_options,
        add_json_option,
        add_store_option,
        positive_int,
    )

    p.add_argument("--weights", type=Path, default=None, metavar="DIR",
                   help="weights folder (default: $SARCOMA_RISK_WEIGHTS or the shipped weights/)")
    p.add_argument("--mpp", type=float, default=None,
                   help="microns per pixel of level 0, for slides that do not record it")
    p.add_argument("--batch-size", type=positive_int, default=64, help="patches per model batch (default 64)")
    p.add_argument("--workers", type=positive_int, default=2, help="patch reader threads (default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_options(p, SCORING_PRECISION_HELP)
    add_store_option(p)
    add_json_option(p)


def build_parser() -> argparse.ArgumentParser:
    from sarcoma_risk import __version__

    parser = argparse.ArgumentParser(prog="sarcoma-qupath",
                                     description="SarcomaRisk for QuPath: score slides of a QuPath project and "
                                                 "exchange tiles and annotations as QuPath GeoJSON.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "score", help="score the images of a QuPath project (close the project in QuPath first)",
        description="Score each image of a QuPath project: its case id comes from the image metadata key "
                    "'case_id' (or --case-map); its annotations of the tumor's class (--annotation-class, else the "
                    "project's default, else Tumor) restrict the scoring (whole tissue when it has no classified "
                    "annotation; an image whose classified annotations are all of other classes fails, naming "
                    "them). Writes tiles with the measurement recurrence_probability (Measure > Show "
                    "measurement maps), the slide score, model and date into the image metadata, and the "
                    "pathology section of each case record. Earlier SarcomaRisk tiles are replaced; the "
                    "pathologist's objects are left alone. The project's data files are backed up first, into "
                    "PROJECT_DIR/sarcoma-risk/backups/. Images already scored with the same inputs are skipped.")
    p.add_argument("project", type=Path, metavar="PROJECT_DIR", help="the QuPath project folder")
    p.add_argument("--images", nargs="+", default=None, metavar="IMAGE",
                   help="only these images (names as QuPath shows them, or entry ids)")
    p.add_argument("--case-map", type=Path, default=None, metavar="CSV",
                   help="CSV with columns image (or entry_id) and case_id, for images without case_id metadata")
    p.add_argument("--rescore", action="store_true", help="score images again even when nothing changed")
    _add_annotation_class_option(p, default="the project's default (sarcoma-qupath settings), else Tumor")
    _add_scoring_options(p)
    p.set_defaults(handler=cmd_score)

    p = commands.add_parser(
        "score-image", help="score one slide given as files (used by the QuPath script)",
        description="Score one slide, restricted to the tumor annotations of --annotations when given, and write "
                    "OUT/tiles.geojson (tiles with recurrence_probability) and OUT/metadata.json (slide score, "
                    "model, date) and the pathology section of the case record.")
    p.add_argument("--slide", type=Path, required=True, help="the slide file")
    p.add_argument("--case", dest="case_id", required=True, help="pseudonymous case id, e.g. STS-0001")
    p.add_argument("--annotations", type=Path, default=None, metavar="GEOJSON",
                   help="QuPath GeoJSON with the tumor annotation(s) (default: the whole tissue)")
    _add_annotation_class_option(p, default="the --project's default, else Tumor")
    p.add_argument("--project", type=Path, default=None, metavar="PROJECT_DIR",
                   help="the QuPath project the slide belongs to: its default annotation classes apply")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for tiles.geojson and metadata.json")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR",
                   help="tile cache folder, so scoring again reads it instead of running the model")
    _add_scoring_options(p)
    p.set_defaults(handler=cmd_score_image)

    p = commands.add_parser(
        "export", help="tiles and tumor annotations of a scored slide as GeoJSON for QuPath",
        description="Write the tiles (with recurrence_probability) and the tumor annotations a slide was scored "
                    "with as one GeoJSON file for QuPath's File > Import objects. The tiles come from the tile "
                    "cache of the scoring run.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--case", dest="case_id", default=None, help="the case whose (single) slide to export")
    which.add_argument("--slide", type=Path, default=None, help="the slide file to export")
    p.add_argument("--cache", type=Path, action="append", required=True, metavar="DIR",
                   help="tile cache folder of the scoring run (repeatable): PROJECT_DIR/sarcoma-risk/cache for "
                        "sarcoma-qupath score, OUT/tile-cache for sarcoma-risk score-slide")
    p.add_argument("--annotations", type=Path, default=None, metavar="GEOJSON",
                   help="for a slide scored by sarcoma-risk score-slide: the annotation file it was scored with")
    _add_annotation_class_option(p)
    p.add_argument("--out", type=Path, required=True, metavar="GEOJSON", help="the GeoJSON file to write")
    from sarcoma_risk.cli.common import add_store_option

    add_store_option(p)
    p.set_defaults(handler=cmd_export)

    p = commands.add_parser(
        "import", help="check QuPath-exported annotations for sarcoma-risk score-slide",
        description="Read annotations exported from QuPath (File > Export objects as GeoJSON; any QuPath "
                    "version) and check them against the slide as score-slide will use them: which annotations "
                    "make the tumor region, its area, whether it lies on the slide. With --out, write that "
                    "region's annotations in the current QuPath GeoJSON spelling.")
    p.add_argument("geojson", type=Path, metavar="F.geojson", help="the QuPath GeoJSON export")
    p.add_argument("--slide", type=Path, required=True, help="the slide the annotations were drawn on")
    p.add_argument("--mpp", type=float, default=None, help="microns per pixel, for slides that do not record it")
    p.add_argument("--out", type=Path, default=None, metavar="GEOJSON", help="write the checked annotations here")
    _add_annotation_class_option(p)
    from sarcoma_risk.cli.common import add_json_option

    add_json_option(p)
    p.set_defaults(handler=cmd_import)

    p = commands.add_parser(
        "settings", help="show or set a QuPath project's SarcomaRisk defaults (the tumor's annotation class)",
        description="Show the project's SarcomaRisk settings, kept in PROJECT_DIR/sarcoma-risk/settings.json, or "
                    "set them: --annotation-class NAME (repeatable) is the QuPath class of the tumor annotations in "
                    "this project, used by 'score' and the QuPath script when they get no --annotation-class; "
                    "--reset goes back to the default (Tumor). QuPath may stay open.")
    p.add_argument("project", type=Path, metavar="PROJECT_DIR", help="the QuPath project folder")
    change = p.add_mutually_exclusive_group()
    change.add_argument("--annotation-class", dest="annotation_classes", action="append", default=None,
                        metavar="NAME", help="the tumor's QuPath class in this project, exactly as QuPath shows it "
                                             "(repeatable; replaces the classes set before)")
    change.add_argument("--reset", action="store_true", help="forget the project's classes (back to Tumor)")
    from sarcoma_risk.cli.common import add_json_option

    add_json_option(p)
    p.set_defaults(handler=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 error or incomplete, 2 usage, 130 interrupted)."""
    from sarcoma_risk.cli.common import run_cli

    return run_cli(build_parser(), argv)


# ---- handlers (heavy imports inside) -----------------------------------------------------------

def _options(args: argparse.Namespace, project: Path | None):
    """Scoring options; the tumor classes from --annotation-class, else ``project``'s default, else Tumor."""
    from qupath_bridge.projectsettings import annotation_classes
    from qupath_bridge.scoring import ScoringOptions
    from sarcoma_risk.settings import default_weights_dir

    return ScoringOptions(args.weights if args.weights is not None else default_weights_dir(), mpp=args.mpp,
                          batch_size=args.batch_size, workers=args.workers, precision=args.precision,
                          device=args.device, progress=not args.quiet,
                          annotation_classes=annotation_classes(args.annotation_classes, project))


def _arguments(args: argparse.Namespace) -> dict:
    """The command's arguments as JSON values, for the run metadata."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "handler"}


def cmd_score(args: argparse.Namespace) -> int:
    from qupath_bridge.casemap import read_case_map
    from qupath_bridge.project import QuPathProject, find_qupath
    from qupath_bridge.projectfiles import bridge_folder, project_file
    from qupath_bridge.scoring import SlideScorer, score_project, select_images
    from sarcoma_risk.cli.common import print_json
    from sarcoma_risk.records import open_store

    project_file(args.project)  # a wrong folder fails before anything starts
    options = _options(args, args.project)
    case_map = read_case_map(args.case_map) if args.case_map is not None else None
    find_qupath()  # says how to install QuPath before the models are loaded
    scorer = SlideScorer(options, cache_dir=bridge_folder(args.project) / "cache")
    scorer.weights()  # verifies the weights' sha256 before anything is written
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    with QuPathProject(args.project, mode="r+") as project, open_store(args.store, mode="a") as store:
        images = project.images()
        if case_map is not None:
            for row in case_map.unused(i.ref for i in images):
                say(f"note: case map row {row!r} names no image of this project")
        report, run = score_project(args.project, select_images(images, args.images), scorer, store,
                                    case_map=case_map,
                                    arguments={**_arguments(args), "annotation_classes": list(options.annotation_classes)},
                                    qupath_version=project.qupath_version(), rescore=args.rescore, say=say)
    if args.json:
        print_json({"project": str(args.project), "run_metadata": str(run.path), "backup": run.backup,
                    "counts": {s: report.count(s) for s in ("scored", "skipped", "failed", "unmapped")},
                    "images": [{"image": i.ref.name, "entry_id": i.ref.entry_id, "case_id": i.case_id,
                                "status": i.status, "message": i.message, "score": i.score} for i in report.items]})
    else:
        print(f"{report.count('scored')} scored, {report.count('skipped')} already done, {report.count('failed')} "
              f"failed, {report.count('unmapped')} without a case id; run metadata: {run.path}")
        if report.count("scored"):
            print("Reopen the project in QuPath and choose Measure > Show measurement maps > recurrence_probability.")
    return 0 if report.complete else 1


def cmd_score_image(args: argparse.Namespace) -> int:
    from qupath_bridge.scoring import FileImage, RecordWriter, SlideScorer, run_batch
    from sarcoma_risk.cli.common import print_json
    from sarcoma_risk.records import open_store, validate_case_id

    validate_case_id(args.case_id)
    options = _options(args, args.project)
    source = FileImage(args.slide, args.out, annotations=args.annotations, case_id=args.case_id)
    source.slide_path()  # a missing slide or unreadable annotations fail before the store is opened
    source.tumor_annotations(options.annotation_classes)
    scorer = SlideScorer(options, cache_dir=args.cache)
    scorer.weights()
    with open_store(args.store, mode="a") as store:
        report = run_batch([(source, args.case_id)], scorer, RecordWriter(store, scorer))
    (item,) = report.items
    if item.status != "scored":
        print(f"error: {item.message}", file=sys.stderr)
        return 1
    if args.json:
        print_json({"case_id": args.case_id, "score": item.score, "n_tiles": item.n_tiles, "region": item.region,
                    "tiles": str(args.out / "tiles.geojson"), "metadata": str(args.out / "metadata.json")})
    else:
        print(f"case {args.case_id}: slide score {item.score:+.3f} (log relative hazard), {item.n_tiles} tiles, "
              f"{item.region}; wrote {args.out / 'tiles.geojson'} and {args.out / 'metadata.json'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from qupath_bridge.exporting import export_slide

    from sarcoma_risk.pathology.classes import check_class_names

    written = export_slide(args.out, caches=args.cache, case_id=args.case_id, slide=args.slide, store=args.store,
                           annotations=args.annotations, classes=check_class_names(args.annotation_classes))
    print(f"wrote {written.n_tiles} tiles and {written.n_annotations} tumor annotation(s) to {args.out}; in QuPath "
          "open the slide, then File > Import objects, and Measure > Show measurement maps")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from qupath_bridge.exporting import check_annotations
    from sarcoma_risk.cli.common import print_json

    from sarcoma_risk.pathology.classes import check_class_names

    checked = check_annotations(args.geojson, args.slide, mpp=args.mpp, out=args.out,
                                classes=check_class_names(args.annotation_classes))
    if args.json:
        print_json(checked.to_dict())
    else:
        print(checked.summary())
        if args.out is not None:
            classes = "".join(f" --annotation-class '{name}'" for name in check_class_names(args.annotation_classes)
                              if args.annotation_classes)
            print(f"wrote {args.out}; score with: sarcoma-risk score-slide --case ID --slide {args.slide} "
                  f"--annotations {args.out}{classes}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from qupath_bridge.projectsettings import ProjectSettings, read_settings, settings_path, write_settings
    from sarcoma_risk.cli.common import print_json
    from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES, check_class_names

    settings = read_settings(args.project)  # also checks that PROJECT_DIR is a QuPath project
    if args.annotation_classes or args.reset:
        settings = ProjectSettings(check_class_names(args.annotation_classes) if args.annotation_classes else None)
        write_settings(args.project, settings)
    if args.json:
        print_json({"project": str(args.project), "settings_file": str(settings_path(args.project)),
                    **settings.to_dict()})
    else:
        classes = settings.annotation_classes
        shown = ", ".join(classes) if classes else f"{DEFAULT_TUMOR_CLASSES[0]} (the default)"
        print(f"{args.project}: tumor annotation class(es): {shown} ({settings_path(args.project)})")
    return 0
