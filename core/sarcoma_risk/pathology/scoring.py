"""One slide of a case scored for its record: tile outputs written, record entry and provenance built.

``sarcoma-risk score-slide`` and ``score-cohort`` both go through :func:`score_case_slide`, so a
slide scored by either leaves the same files and the same pathology entry. The files are named by
case id and slide sha256 (never by the input file name) and written atomically, so several workers
sharing one output folder never see each other's half-written files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES
from sarcoma_risk.pathology.outputs import write_heatmap, write_tile_csv, write_tile_geojson
from sarcoma_risk.pathology.pipeline import score_slide
from sarcoma_risk.pathology.record import section_provenance, slide_entry
from sarcoma_risk.pathology.slide import open_slide
from sarcoma_risk.provenance import fingerprint, sha256_file
from sarcoma_risk.stopwatch import Stopwatch, timed


@dataclass(frozen=True)
class ScoredSlide:
    """A scored slide: the pipeline's result, its record entry, the section provenance and the files written."""

    result: Any  # sarcoma_risk.pathology.pipeline.SlideResult
    entry: dict[str, Any]
    provenance: dict[str, Any]
    files: dict[str, Path]


def score_case_slide(case_id: str, slide: str | Path, models: Any, *, out_dir: str | Path,
                     annotation: str | Path | None = None,
                     annotation_classes: Sequence[str] = DEFAULT_TUMOR_CLASSES, mpp: float | None = None,
                     cache_dir: str | Path | None = None, batch_size: int = 64, workers: int = 2,
                     progress: bool = True, written_by: str = "sarcoma-risk score-slide",
                     slide_fingerprint: dict[str, Any] | None = None,
                     stopwatch: Stopwatch | None = None) -> ScoredSlide:
    """Score ``slide`` with ``models`` (:class:`~.pipeline.PathologyModels`) and write its tile outputs.

    Writes ``<case_id>-<sha256[:12]>.tiles.csv``, ``.tiles.geojson`` and ``.heatmap.png`` into
    ``out_dir``; the tile cache defaults to ``out_dir/tile-cache``. Nothing touches the case store:
    merge ``entry`` into the pathology section with :func:`~.record.merge_slide`. ``stopwatch`` times
    the stages of :func:`~.pipeline.score_slide`, then ``tile_csv``, ``tile_geojson``, ``heatmap`` and
    ``case_record`` (the outputs' sha256, the entry and the provenance).
    """

    out = Path(out_dir)
    result = score_slide(slide, models, annotation=annotation, annotation_classes=annotation_classes, mpp=mpp,
                         cache_dir=cache_dir if cache_dir is not None else out / "tile-cache",
                         batch_size=batch_size, workers=workers, progress=progress, stopwatch=stopwatch,
                         slide_fingerprint=slide_fingerprint)
    stem = f"{case_id}-{result.run.slide_fingerprint['sha256'][:12]}"
    with timed(stopwatch, "tile_csv"):
        files = {"tiles_csv": write_tile_csv(out / f"{stem}.tiles.csv", result.tiles)}
    with timed(stopwatch, "tile_geojson"):
        files["tiles_geojson"] = write_tile_geojson(out / f"{stem}.tiles.geojson", result.tiles)
    with timed(stopwatch, "heatmap"):
        with open_slide(slide, mpp) as opened:
            thumbnail, downsample = opened.thumbnail(1024)
        files["heatmap_png"] = write_heatmap(out / f"{stem}.heatmap.png", thumbnail, downsample, result.tiles)
    with timed(stopwatch, "case_record"):
        outputs = {f"{key}_sha256": sha256_file(path) for key, path in files.items()}
        entry = slide_entry(result, models, outputs)
        provenance = section_provenance(
            result, models, annotation_fingerprint=fingerprint(annotation) if annotation is not None else None,
            written_by=written_by)
    return ScoredSlide(result, entry, provenance, files)
