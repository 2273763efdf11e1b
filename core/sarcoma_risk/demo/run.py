"""The demo's steps in order, with ``[k/N]`` progress lines (``sarcoma-risk demo``, ``make demo``).

Output folder layout (a second run overwrites it in place; the case store keeps its records and
adds revisions, which ``sarcoma-risk cases history`` shows)::

    demo-store.sqlite     the case store: the demo clinical table's cases and the phantom case
    phantom-case/         the phantom case's MRI, segmentation, slide, annotation and clinical.csv
    qupath/               what the QuPath bridge writes for QuPath (tiles.geojson, metadata.json)
    tile-cache/           the bridge's tile cache (a rerun reads it instead of running the model)
    slide-heatmap.png     the tile heatmap over the slide thumbnail
    report.html           the self-contained report
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarcoma_risk.cli import main
from sarcoma_risk.demo.case import DEMO_SEED, make_demo_case
from sarcoma_risk.demo.figures import km_figure, mri_figure, nomogram_figure
from sarcoma_risk.demo.pathology import score_slide_with_bridge
from sarcoma_risk.demo.radiology import score_mri_in_slicer
from sarcoma_risk.demo.report import ReportContent, write_report
from sarcoma_risk.demo.summary import fusion_notes, summary_rows, summary_text
from sarcoma_risk.errors import SarcomaRiskError
from sarcoma_risk.fusion.loading import load_fusion
from sarcoma_risk.fusion.table import row_from_record
from sarcoma_risk.provenance import software_version
from sarcoma_risk.records import open_store
from sarcoma_risk.release.validation_cohort import load_validation_cohort
from sarcoma_risk.settings import default_weights_dir
from sarcoma_risk.weights import WeightRegistry

STEPS = 7
#: Clinical data of a few demo cases, imported first so that the store has cases to browse.
DEMO_TABLE = Path(__file__).resolve().parents[1] / "data" / "demo_clinical.csv"
STORE_NAME = "demo-store.sqlite"
REPORT_NAME = "report.html"


@dataclass(frozen=True)
class DemoResult:
    """Where the demo left its outputs, and the case's record and summary."""

    out_dir: Path
    store: Path
    report: Path
    case_id: str
    record: Any
    summary: str


def _say(step: int, text: str) -> None:
    print(f"[{step}/{STEPS}] {text}", flush=True)


def _cli(argv: list[str]) -> None:
    """A ``sarcoma-risk`` command in this process; its error (already printed) stops the demo."""

    status = main(argv)
    if status:
        raise SarcomaRiskError(f"`sarcoma-risk {' '.join(argv[:2])}` failed (exit status {status}); see its error above")


def run_demo(out_dir: str | Path, *, weights: str | Path | None = None, seed: int | None = None) -> DemoResult:
    """Run the demo into ``out_dir`` with the weights of ``weights`` (default: the shipped weights).

    Parameters
    ----------
    seed : int, optional
        Seed of the phantom case (default :data:`sarcoma_risk.demo.case.DEMO_SEED`).
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = Path(weights) if weights is not None else default_weights_dir()
    store = out / STORE_NAME
    model, _ = load_fusion(weights=weights)  # checks the shipped weights before anything is written
    cohort, _ = load_validation_cohort(weights)

    seed = DEMO_SEED if seed is None else seed
    _say(1, f"importing the demo clinical table {DEMO_TABLE.name} into {store} (cases to browse)")
    _cli(["clinical", "import", str(DEMO_TABLE), "--store", str(store)])
    _say(2, f"rendering a new phantom case (seed {seed}): MRI, tumor segmentation, slide, annotation, clinical table")
    case = make_demo_case(out / "phantom-case", seed)
    _say(3, f"importing its clinical data ({case.clinical_csv.name})")
    _cli(["clinical", "import", str(case.clinical_csv), "--store", str(store)])
    _say(4, "scoring its MRI through the 3D Slicer module's logic (score-mri runs in a separate process)")
    mri = score_mri_in_slicer(case, store=store, weights=weights, log=lambda line: print(f"      {line}", flush=True))
    print(f"      radiology score {mri.result.score:+.3f} from the {mri.result.model_label} model ({mri.result.model}); "
          "Grad-CAM loaded over the T2 as volume node "
          f"'{mri.result.gradcam_node.GetName()}'", flush=True)
    _say(5, "scoring its slide through the QuPath bridge (no QuPath needed)")
    slide = score_slide_with_bridge(case, store=store, weights=weights, out_dir=out)
    print(f"      slide score {slide.result.score:+.3f} from {len(slide.result.tiles)} tiles ({slide.region}); QuPath "
          f"tiles in {slide.tiles_geojson}", flush=True)
    _say(6, "fusing clinical data, radiology and pathology scores (sarcoma-risk fuse)")
    _cli(["fuse", "--case", case.case_id, "--store", str(store), "--weights", str(weights)])
    _say(7, "writing the report")
    with open_store(store, mode="r") as cases:
        record = cases.get(case.case_id)
    fusion = record.fusion
    nomogram_png, points = nomogram_figure(model, fusion["model"], row_from_record(record))
    rows = summary_rows(record, slide_region=slide.region)
    entries = WeightRegistry(weights).manifest()["models"]
    provenance = [(f"weights: {name}", f"{e['kind']} v{e['version']}, sha256 {e['sha256']}")
                  for name, e in sorted(entries.items())]
    provenance.append(("validation cohort (Kaplan-Meier)", f"{cohort.time_months.size} phantom cases of centre B, "
                                                           f"{int(cohort.event.sum())} recurrences"))
    provenance.append(("software", f"sarcoma-risk {software_version()}"))
    content = ReportContent(
        case_id=case.case_id, summary=rows, notes=fusion_notes(fusion), mri_png=mri_figure(mri),
        slide_png=slide.heatmap_png.read_bytes(), nomogram_png=nomogram_png, nomogram_points=points,
        km_png=km_figure(cohort, fusion["survival"], fusion["group"]), provenance=provenance)
    report = write_report(out / REPORT_NAME, content)
    text = summary_text(rows, fusion_notes(fusion), report)
    print(text, flush=True)
    return DemoResult(out, store, report, case.case_id, record, text)
