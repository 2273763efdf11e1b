"""The demo case in words: what each tool found and what the fused risk is, from its case record."""

from __future__ import annotations

from typing import Any, Mapping

from sarcoma_risk.fusion.plots import variable_label
from sarcoma_risk.records.schema import CaseRecord

#: Labels of derived values (the clinical variables have their own, see ``variable_label``).
DERIVED_LABELS = {"ajcc_stage": "AJCC 8th edition stage"}
#: Clinical values shown in the summary, in this order.
CLINICAL_SHOWN = ("age_years", "sex", "subtype", "fnclcc_grade", "tumor_size_cm", "depth", "site", "margin",
                  "radiotherapy", "presentation", "ajcc_stage")


def _value(value: Any) -> str:
    """A clinical value for people: 61 rather than 61.0, "lower extremity" rather than lower_extremity."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("_", " ")


def _years(months: str) -> str:
    value = float(months)
    return f"{value / 12:g} y" if value % 12 == 0 else f"{value:g} months"


def summary_rows(record: CaseRecord, *, slide_region: str) -> list[tuple[str, str]]:
    """(label, text) lines describing the record's clinical, radiology, pathology and fusion sections."""

    clinical = (record.clinical or {}).get("values", {})
    radiology, pathology, fusion = record.radiology or {}, record.pathology or {}, record.fusion or {}
    slides = pathology.get("slides") or [{}]
    survival = fusion.get("survival") or {}
    return [
        ("Case", f"{record.case_id} (phantom case, centre B; synthetic data)"),
        ("Clinical data", "; ".join(f"{DERIVED_LABELS.get(name) or variable_label(name)}: {_value(clinical[name])}" for name in CLINICAL_SHOWN
                                    if clinical.get(name) is not None)),
        ("Radiology score", f"{radiology['score']:+.3f} (log relative hazard; percentile "
                            f"{radiology['percentile']:.0f} of the development cases), tumor volume "
                            f"{radiology['tumor_volume_ml']:.1f} ml, sequences {' + '.join(radiology['sequences'])} "
                            f"(model {radiology.get('model', 'radiology')}); "
                            "via the 3D Slicer module's logic (score-mri in a separate process)"),
        ("Pathology score", f"{pathology['score']:+.3f} (log relative hazard) from {slides[0].get('n_tiles')} tiles "
                            f"of one slide ({slide_region}); via the QuPath bridge's scoring"),
        ("Fused risk", f"{fusion['risk']:+.3f} (log relative hazard), {fusion['group'].upper()} risk group "
                       f"(higher than {fusion['percentile']:.0f}% of the development cases)"),
        ("Recurrence-free probability", ", ".join(f"{_years(h)}: " + ("n/a" if p is None else f"{p:.0%}")
                                                  for h, p in survival.items())),
        ("Fusion sub-model", f"{fusion['model']} (modalities used: {', '.join(fusion['modalities_used'])})"),
        ("Record revisions", ", ".join(f"{s} {record.revision(s)}" for s in ("clinical", "radiology", "pathology",
                                                                           "fusion"))),
    ]


def summary_text(rows: list[tuple[str, str]], notes: list[str], report: Any) -> str:
    """The summary printed at the end of the demo."""
    width = max(len(label) for label, _ in rows)
    lines = ["", "SarcomaRisk demo: summary", "-" * 25]
    lines += [f"{label.ljust(width)}  {text}" for label, text in rows]
    lines += [f"{'Note'.ljust(width)}  {note}" for note in notes]
    lines += ["", f"report: {report}"]
    return "\n".join(lines)


def fusion_notes(fusion: Mapping[str, Any]) -> list[str]:
    """The fusion section's notes (e.g. a modality left out), for the summary."""
    return [str(note) for note in fusion.get("notes") or []]
