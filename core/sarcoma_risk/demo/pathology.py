"""The demo's slide, scored the way the pathologist's QuPath bridge scores it (no QuPath needed).

This is the path of ``sarcoma-qupath score-image`` (and of the QuPath script): the slide and its
Tumor annotation as a :class:`qupath_bridge.scoring.FileImage`, scored by a
:class:`~qupath_bridge.scoring.SlideScorer` in :func:`~qupath_bridge.scoring.run_batch`, written by
the bridge's :class:`~qupath_bridge.scoring.RecordWriter` (case record and QuPath tiles together).
The demo only keeps the scored tiles on the side, to draw the heatmap.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qupath_bridge.scoring import FileImage, RecordWriter, ScoringOptions, SlideScorer, run_batch
from sarcoma_risk.errors import SarcomaRiskError
from sarcoma_risk.pathology.outputs import write_heatmap
from sarcoma_risk.pathology.slide import open_slide
from sarcoma_risk.records import open_store


@dataclass(frozen=True)
class SlideView:
    """What the report shows of the slide: the heatmap PNG over the thumbnail, and the scoring result."""

    heatmap_png: Path
    result: Any  # sarcoma_risk.pathology.pipeline.SlideResult
    tiles_geojson: Path
    region: str


def score_slide_with_bridge(case: Any, *, store: str | Path, weights: Path, out_dir: Path) -> SlideView:
    """Score the slide of ``case`` (a :class:`~sarcoma_risk.demo.case.DemoCase`) through the QuPath bridge."""

    source = FileImage(case.slide, out_dir / "qupath", annotations=case.annotation, case_id=case.case_id)
    scorer = SlideScorer(ScoringOptions(weights, progress=False), cache_dir=out_dir / "tile-cache")
    scored: list[Any] = []
    with open_store(store, mode="a") as cases:
        writer = RecordWriter(cases, scorer)

        def write(result: Any, image: Any) -> None:
            writer(result, image)
            scored.append(result)

        report = run_batch([(source, case.case_id)], scorer, write)
    (item,) = report.items
    if item.status != "scored":
        raise SarcomaRiskError(f"the QuPath bridge did not score the demo slide: {item.message}")
    result = scored[0].result
    with open_slide(case.slide) as slide:
        thumbnail, downsample = slide.thumbnail(1024)
    heatmap = write_heatmap(out_dir / "slide-heatmap.png", thumbnail, downsample, result.tiles,
                            title="P(recurrence) per tile over the slide thumbnail")
    return SlideView(heatmap, result, out_dir / "qupath" / "tiles.geojson", item.region or "")
