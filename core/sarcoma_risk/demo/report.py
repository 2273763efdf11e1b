"""The demo's HTML report: one self-contained page (figures embedded as data URIs, no external link).

Sections, each with a heading and each figure with an alt text: the summary; the MRI slice with
the Grad-CAM overlay; the slide thumbnail with the tile heatmap; the nomogram with the case's
points; the Kaplan-Meier curves of the validation cohort by risk group; where the results came
from (weights sha256, the tools' code paths). Tables and figure embedding are the fusion report's
(:func:`sarcoma_risk.fusion.report.html_table`, :func:`~sarcoma_risk.fusion.report.figure_html`).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from sarcoma_risk.fileio import atomic_write_text
from sarcoma_risk.fusion.plots import variable_label
from sarcoma_risk.fusion.report import STYLE, figure_html, html_table

#: Figure ids, headings and alt texts (also what the tests look for).
MRI_FIGURE = ("mri-gradcam", "MRI slice with Grad-CAM overlay")
SLIDE_FIGURE = ("slide-heatmap", "Slide thumbnail with tile heatmap")
NOMOGRAM_FIGURE = ("nomogram", "Nomogram with this case's points")
KM_FIGURE = ("validation-km", "Kaplan-Meier curves of the validation cohort by risk group")


@dataclass(frozen=True)
class ReportContent:
    """Everything the page shows."""

    case_id: str
    summary: Sequence[tuple[str, str]]
    notes: Sequence[str]
    mri_png: bytes
    slide_png: bytes
    nomogram_png: bytes
    nomogram_points: Mapping[str, Any]
    km_png: bytes
    provenance: Sequence[tuple[str, str]]


def _points_table(points: Mapping[str, Any]) -> str:
    rows = [[html.escape(variable_label(name)), html.escape(f"{value:.3f}" if name.endswith("_score") else
                                                       f"{value:g}" if isinstance(value, float) else str(value)),
             f"{points['points'][name]:.0f}"] for name, value in points["values"].items()]
    rows.append(["<strong>Total</strong>", "", f"<strong>{points['total_points']:.0f}</strong>"])
    return html_table(["Variable", "This case", "Points"], rows)


def render_report(content: ReportContent) -> str:
    """The report page as one HTML string."""

    def section(heading: str, body: str) -> str:
        return f"<h2>{html.escape(heading)}</h2>\n{body}"

    summary = html_table(["Item", "Result"], [[html.escape(k), html.escape(v)] for k, v in content.summary])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in content.notes)
    parts = [
        f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>SarcomaRisk demo: "
        f"{html.escape(content.case_id)}</title><style>{STYLE}</style></head><body>",
        f"<h1>SarcomaRisk demo: case {html.escape(content.case_id)}</h1>",
        "<p class=\"warn\">A phantom case scored with weights trained on phantom data to verify the software. "
        "Research software: no clinical validity; not for decisions about patients.</p>",
        section("Summary", summary + (f"<ul>{notes}</ul>" if notes else "")),
        section(MRI_FIGURE[1],
                "<p>Scored in the 3D Slicer module's logic: the volumes and the tumor segment were loaded into an "
                "MRML scene, exported and scored by <code>sarcoma-risk score-mri</code> in a separate process; "
                "the Grad-CAM came back as a volume on the T2 grid.</p>"
                + figure_html(*MRI_FIGURE, content.mri_png)),
        section(SLIDE_FIGURE[1],
                "<p>Scored by the QuPath bridge (the path of <code>sarcoma-qupath score-image</code>): tiles inside "
                "the Tumor annotation, coloured by the patch model's probability of recurrence.</p>"
                + figure_html(*SLIDE_FIGURE, content.slide_png)),
        section(NOMOGRAM_FIGURE[1],
                "<p>The sub-model that scored the case, as a nomogram; red marks show this case's value on each "
                "axis and its total points across the survival axes.</p>"
                + figure_html(*NOMOGRAM_FIGURE, content.nomogram_png) + _points_table(content.nomogram_points)
                + "<p>Points below 0 or beyond an axis's end mean the case's value lies beyond the axis as drawn (its "
                  "ticks stay within the development cases' 1st to 99th percentiles); the mark sits at the axis's "
                  "end.</p>"),
        section(KM_FIGURE[1],
                "<p>Recurrence-free survival of the validation cases (held-out phantom centre B) in the risk groups "
                "of the shipped fusion model, with this case's predicted probabilities.</p>"
                + figure_html(*KM_FIGURE, content.km_png)),
        section("Where the results came from",
                html_table(["Item", "Value"], [[html.escape(k), html.escape(v)] for k, v in content.provenance])
                + "<p>The case record holds no file names: inputs are identified by their sha256.</p>"),
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(path: str | Path, content: ReportContent) -> Path:
    """Write the page atomically; returns its path."""
    return atomic_write_text(Path(path), render_report(content))
