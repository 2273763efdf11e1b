"""The case record schema: a pseudonymous case id and four sections, each with provenance.

A record serializes to JSON as::

    {"schema_version": 1, "case_id": "STS-0001",
     "clinical": {"values": {...}, "provenance": {...}},
     "radiology": {"score": 0.42, ..., "provenance": {...}},
     "pathology": {"slides": [{...}, ...], "score": -0.1, "provenance": {...}},
     "fusion": {"risk": 0.8, "group": "high", "model": "clinical+radiology", ..., "provenance": {...}},
     "revisions": {"clinical": 3, "radiology": 1}, "created_utc": "...", "updated_utc": "..."}

A section is ``null`` until some tool writes it. No patient-identifying data belongs in a record:
the case id is a pseudonym that must match :data:`CASE_ID_PATTERN`, and input files are described by
content fingerprints, never by name.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from sarcoma_risk.errors import InvalidCaseId, InvalidInput
from sarcoma_risk.provenance import PROVENANCE_FIELDS

SCHEMA_VERSION = 1
SECTIONS = ("clinical", "radiology", "pathology", "fusion")
#: Letters, digits, '-' and '_', starting with a letter or digit, at most 32 characters: safe as a
#: file name, in SQL, in a URL and in a spreadsheet, and too short to hold a name plus birth date.
CASE_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
#: Keys each section must have besides ``provenance``.
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "clinical": ("values",),
    "radiology": ("score",),
    "pathology": ("slides",),
    "fusion": ("risk", "group", "model"),
}


def validate_case_id(case_id: object) -> str:
    """Return ``case_id`` if it is a valid pseudonymous id, else raise :class:`InvalidCaseId`."""
    if not isinstance(case_id, str) or not case_id:
        raise InvalidCaseId("case_id: empty; expected 1-32 letters, digits, '-' or '_' (e.g. STS-0001)")
    if len(case_id) > 32:
        raise InvalidCaseId(f"case_id: {case_id[:40]!r}... is {len(case_id)} characters; at most 32 allowed")
    if not CASE_ID_PATTERN.fullmatch(case_id):
        bad = sorted({c for c in case_id if not (c.isascii() and (c.isalnum() or c in "-_"))})
        detail = f"contains {''.join(bad)!r}" if bad else "must start with a letter or digit"
        raise InvalidCaseId(
            f"case_id: {case_id!r} {detail}; expected 1-32 letters, digits, '-' or '_', starting with a "
            "letter or digit (a pseudonym such as STS-0001, never a name or record number)")
    return case_id


def canonical_json(content: Any) -> str:
    """Deterministic JSON (sorted keys, no NaN) used for storage and content hashes."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)


def content_sha256(content: Any) -> str:
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _check_finite(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{where}: {value} is not a finite number (NaN/inf cannot be stored)")
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInput(f"{where}: key {k!r} must be a string")
            _check_finite(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def validate_section(section: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """Check a section's content (keys, provenance, finite numbers, JSON-serializable)."""
    if section not in SECTIONS:
        raise InvalidInput(f"section: {section!r} is not one of {', '.join(SECTIONS)}")
    if not isinstance(content, Mapping):
        raise InvalidInput(f"{section}: content must be a JSON object, got {type(content).__name__}")
    missing = [k for k in (*REQUIRED_KEYS[section], "provenance") if k not in content]
    if missing:
        raise InvalidInput(f"{section}: missing key(s) {', '.join(missing)}")
    provenance = content["provenance"]
    if not isinstance(provenance, Mapping):
        raise InvalidInput(f"{section}.provenance: must be an object")
    absent = [k for k in PROVENANCE_FIELDS if k not in provenance]
    if absent:
        raise InvalidInput(f"{section}.provenance: missing field(s) {', '.join(absent)}")
    _check_finite(content, section)
    try:
        canonical_json(content)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{section}: not JSON-serializable ({exc})") from exc
    return dict(content)


@dataclass
class CaseRecord:
    """One patient's record: sections are None until written; ``revisions`` counts writes per section."""

    case_id: str
    clinical: dict[str, Any] | None = None
    radiology: dict[str, Any] | None = None
    pathology: dict[str, Any] | None = None
    fusion: dict[str, Any] | None = None
    revisions: dict[str, int] = field(default_factory=dict)
    created_utc: str | None = None
    updated_utc: str | None = None

    def section(self, name: str) -> dict[str, Any] | None:
        if name not in SECTIONS:
            raise InvalidInput(f"section: {name!r} is not one of {', '.join(SECTIONS)}")
        return getattr(self, name)

    def revision(self, name: str) -> int:
        """Current revision of a section; 0 when it was never written."""
        return self.revisions.get(name, 0)

    def modalities(self) -> list[str]:
        """Which of clinical, radiology, pathology hold data."""
        return [s for s in ("clinical", "radiology", "pathology") if getattr(self, s) is not None]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "case_id": self.case_id}
        out.update({s: getattr(self, s) for s in SECTIONS})
        out.update(revisions=dict(self.revisions), created_utc=self.created_utc, updated_utc=self.updated_utc)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CaseRecord":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InvalidInput(f"case record: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
        case_id = validate_case_id(data.get("case_id"))
        sections = {s: (validate_section(s, data[s]) if data.get(s) is not None else None) for s in SECTIONS}
        return cls(case_id, **sections, revisions=dict(data.get("revisions") or {}),
                   created_utc=data.get("created_utc"), updated_utc=data.get("updated_utc"))


def flatten_record(record: CaseRecord) -> dict[str, Any]:
    """One spreadsheet row: ``section.key`` columns for scalar values, missing sections left out.

    Provenance is reduced to ``section.model`` (name@version) and ``section.updated_utc``; lists
    become counts (``pathology.n_slides``). Clinical values drop their ``values.`` prefix.
    """
    row: dict[str, Any] = {"case_id": record.case_id}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k in sorted(value):
                walk(f"{prefix}.{k}", value[k])
        elif isinstance(value, (list, tuple)):
            return
        else:
            row[prefix] = value

    for name in SECTIONS:
        content = record.section(name)
        if content is None:
            continue
        for key in sorted(content):
            value = content[key]
            if key == "provenance":
                row[f"{name}.model"] = f"{value.get('model_name')}@{value.get('model_version')}"
                row[f"{name}.updated_utc"] = value.get("timestamp_utc")
            elif isinstance(value, (list, tuple)):
                row[f"{name}.n_{key}"] = len(value)
            elif name == "clinical" and key == "values":
                walk(name, value)
            else:
                walk(f"{name}.{key}", value)
    return row
