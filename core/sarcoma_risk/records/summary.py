"""What a case record holds at a glance: which modalities are in, and whether its fused risk is current.

Fusion reads the modality sections, so a fusion section computed from other contents of them, or from
another set of modalities, is out of date. The coordinator's web page and the 3D Slicer module's
status box show the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from sarcoma_risk.records.schema import CaseRecord, content_sha256

#: The modalities fusion can use, in the order they are listed.
MODALITIES = ("clinical", "radiology", "pathology")


def _timestamp(section: dict[str, Any] | None) -> str:
    return str(((section or {}).get("provenance") or {}).get("timestamp_utc") or "")


def fusion_is_current(record: CaseRecord) -> bool:
    """Whether the record's fusion section was computed from its current modality sections.

    ``sarcoma-risk fuse`` records the sha256 of each section it read (``provenance.inputs``); the
    fusion is current when those are the sections' contents now and no modality was added since.
    A fusion section without those fingerprints is compared by time instead.
    """
    fusion = record.fusion
    if fusion is None:
        return False
    present = record.modalities()
    used = fusion.get("modalities_used")
    if used is not None and sorted(used) != sorted(present):
        return False
    inputs = (fusion.get("provenance") or {}).get("inputs") or {}
    read = {m: v["sha256"] for m, v in inputs.items() if isinstance(v, Mapping) and "sha256" in v}
    if read and set(read) == set(present):
        return all(content_sha256(record.section(m)) == sha for m, sha in read.items())
    newest_input = max((_timestamp(record.section(m)) for m in present), default="")
    return _timestamp(fusion) >= newest_input


@dataclass(frozen=True)
class CaseSummary:
    """One line of the case list: modalities present and missing, revisions, the fused risk if current."""

    case_id: str
    present: tuple[str, ...]
    missing: tuple[str, ...]
    revisions: dict[str, int] = field(default_factory=dict)
    fusion: dict[str, Any] | None = None
    fusion_current: bool = False
    updated_utc: str | None = None

    @property
    def risk_group(self) -> str | None:
        """The fused risk group when the fusion section is current, else None."""
        return str(self.fusion.get("group")) if self.fusion is not None and self.fusion_current else None


def summarize(record: CaseRecord) -> CaseSummary:
    present = tuple(record.modalities())
    return CaseSummary(record.case_id, present, tuple(m for m in MODALITIES if m not in present),
                       dict(record.revisions), record.fusion, fusion_is_current(record), record.updated_utc)
