"""`make demo`'s code path (`sarcoma-risk demo`) from a fresh folder, with the shipped weights.

The demo renders a phantom case, scores its MRI through the Slicer module's logic (a real
``score-mri`` process), its slide through the QuPath bridge, fuses, and writes the report; the
report is parsed here: every figure is an embedded PNG with its heading and alt text.
"""

from __future__ import annotations

import base64
import json
import math
from html.parser import HTMLParser

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.records import open_store

pytestmark = pytest.mark.slow

EXPECTED_FIGURES = {
    "mri-gradcam": "MRI slice with Grad-CAM overlay",
    "slide-heatmap": "Slide thumbnail with tile heatmap",
    "nomogram": "Nomogram with this case's points",
    "validation-km": "Kaplan-Meier curves of the validation cohort by risk group",
}


class ReportParser(HTMLParser):
    """Headings, images (alt, src) and whether anything is loaded from outside the page."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.images: list[dict[str, str]] = []
        self.figure_ids: list[str] = []
        self.external: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("h1", "h2", "h3"):
            self._heading = []
        if tag == "img":
            self.images.append(attrs)
        if tag == "figure":
            self.figure_ids.append(attrs.get("id", ""))
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag):
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading).strip())
            self._heading = None


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo run twice into one fresh folder (the second run must work too): outputs of each run."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "demo-output"
    runs = []
    for _ in range(2):
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            status = main(["demo", "--out", str(out)])
        runs.append((status, stdout.getvalue()))
    return out, runs


def test_the_demo_shows_progress_and_prints_the_summary_and_the_report_path(demo_run):
    out, runs = demo_run
    for status, printed in runs:
        assert status == 0, printed
        for k in range(1, 8):
            assert f"[{k}/7]" in printed
        for label in ("Radiology score", "Pathology score", "Fused risk", "Recurrence-free probability",
                      "Fusion sub-model"):
            assert label in printed
        assert "1 y: " in printed and "3 y: " in printed and "5 y: " in printed
        assert f"report: {out / 'report.html'}" in printed


def test_the_demo_writes_a_complete_case_record_and_a_second_run_adds_revisions(demo_run):
    out, _ = demo_run
    with open_store(out / "demo-store.sqlite", mode="r") as store:
        record = store.get("DEMO-PHANTOM")
        others = [r.case_id for r in store.records() if r.case_id.startswith("DEMO-0")]
    assert others, "the demo clinical table's cases are in the store for the coordinators' tour"
    assert math.isfinite(record.radiology["score"]) and record.radiology["gradcam_sha256"]
    assert record.pathology["slides"][0]["restricted_to_annotation"] is True
    fusion = record.fusion
    assert fusion["model"] == "clinical+radiology[t2fs+t1ce]+pathology" and fusion["radiology_sequences"] == "t2fs+t1ce"
    assert record.radiology["model"] == "radiology-t2fs+t1ce"
    assert fusion["modalities_used"] == ["clinical", "radiology", "pathology"]
    assert fusion["group"] in ("low", "high") and set(fusion["survival"]) == {"12", "36", "60"}
    assert record.revision("clinical") == 1  # the same clinical table imported again changes nothing
    assert record.revision("radiology") == 2 and record.revision("fusion") == 2
    stored = json.dumps(record.to_dict())
    assert str(out) not in stored and "phantom-case" not in stored and ".svs" not in stored  # no file names


def test_the_report_embeds_every_figure_with_its_heading_and_alt_text(demo_run):
    out, _ = demo_run
    page = (out / "report.html").read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(page)
    assert parser.external == [], "the report must be self-contained"
    assert "no clinical validity" in page
    assert set(EXPECTED_FIGURES.values()) <= set(parser.headings)
    assert "Summary" in parser.headings
    alts = {image["alt"]: image["src"] for image in parser.images}
    assert set(parser.figure_ids) >= set(EXPECTED_FIGURES)
    for fig_id, title in EXPECTED_FIGURES.items():
        src = alts[title]
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, title


def test_the_case_sits_on_the_nomogram_where_its_fused_risk_says(demo_run):
    from sarcoma_risk.fusion.loading import load_fusion
    from sarcoma_risk.fusion.nomogram import case_points, nomogram
    from sarcoma_risk.fusion.table import row_from_record

    out, _ = demo_run
    with open_store(out / "demo-store.sqlite", mode="r") as store:
        record = store.get("DEMO-PHANTOM")
    model, _ = load_fusion()
    nomo = nomogram(model, record.fusion["model"])
    points = case_points(model, nomo, row_from_record(record))
    assert points["risk"] == pytest.approx(record.fusion["risk"], abs=1e-9)
    assert points["total_points"] == pytest.approx(sum(points["points"].values()))
