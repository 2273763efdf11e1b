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
from typing import Any, Callable, Mapping

from sarcoma_risk.clinical.staging import DERIVED
from sarcoma_risk.clinical.variables import VARIABLES
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
    if not isinstance(case_id, str):
        raise InvalidCaseId(f"case_id: must be text, got {type(case_id).__name__}; expected 1-32 letters, "
                            "digits, '-' or '_' (e.g. STS-0001)")
    if not case_id:
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_section(section: str, content: Mapping[str, Any]) -> dict[str, Any]:
    """Check a section's content (keys and their types, provenance, finite numbers, JSON-serializable)."""
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
    for key, (check, expected) in _KEY_TYPES[section].items():
        if key in content and not check(content[key]):
            raise InvalidInput(f"{section}.{key}: {content[key]!r} is not {expected}")
    _check_finite(content, section)
    try:
        canonical_json(content)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{section}: not JSON-serializable ({exc})") from exc
    return dict(content)


#: Types of the keys other tools read from a section: key -> (check, what is expected).
_KEY_TYPES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "clinical": {"values": (lambda v: isinstance(v, Mapping), "an object of clinical values")},
    "radiology": {"score": (_is_number, "a number (log relative hazard)"),
                  "percentile": (lambda v: v is None or (_is_number(v) and 0 <= v <= 100), "a number from 0 to 100")},
    "pathology": {"slides": (lambda v: isinstance(v, list) and all(isinstance(s, Mapping) for s in v),
                             "a list of slide objects"),
                  "score": (lambda v: v is None or _is_number(v), "a number (log relative hazard) or null")},
    "fusion": {"risk": (_is_number, "a number (log relative hazard)"),
               "group": (lambda v: isinstance(v, str) and bool(v), "a risk group name such as 'low' or 'high'"),
               "model": (lambda v: isinstance(v, str) and bool(v), "the fused model's name")},
}


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


#: Columns every CSV export has, in this order, whether or not any case holds the section, so
#: exports line up in a spreadsheet. Clinical values use the importer's column names.
_FIXED_COLUMNS: dict[str, tuple[str, ...]] = {
    "radiology": ("score", "percentile", "tumor_volume_ml", "sequences", "gradcam_sha256"),
    "pathology": ("score", "n_slides"),
    "fusion": ("risk", "group", "model", "modalities_used", "survival.12", "survival.36", "survival.60"),
}
_PROVENANCE_COLUMNS = ("provenance.model", "provenance.timestamp_utc")
#: Characters that make a spreadsheet treat a text cell as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def fixed_export_columns() -> list[str]:
    """The columns every export starts with (see :data:`_FIXED_COLUMNS`)."""
    columns = ["case_id", *VARIABLES, *DERIVED]
    columns += [f"clinical.{c}" for c in _PROVENANCE_COLUMNS]
    for section, keys in _FIXED_COLUMNS.items():
        columns += [f"{section}.{k}" for k in (*keys, *_PROVENANCE_COLUMNS)]
    return columns


def export_columns(rows: list[dict[str, Any]]) -> list[str]:
    """The fixed columns, then any other column found in ``rows`` (grouped by section, sorted)."""
    columns = fixed_export_columns()
    known = set(columns)
    extra = sorted({k for row in rows for k in row if k not in known},
                   key=lambda c: (SECTIONS.index(c.split(".")[0]) if c.split(".")[0] in SECTIONS else -1, c))
    return columns + extra


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula, prefixed with ' (OWASP CSV-injection advice)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def flatten_record(record: CaseRecord) -> dict[str, Any]:
    """One spreadsheet row: ``section.key`` columns for values; sections not written are left out.

    Nested objects become dotted columns (``fusion.survival.12``); lists of plain values are joined
    with ``|`` (``radiology.sequences`` = ``t2fs|t1ce``) and lists of objects become counts
    (``pathology.n_slides``). Provenance is reduced to ``section.provenance.model`` (name@version)
    and ``section.provenance.timestamp_utc``. Clinical values keep their own names (``age_years``),
    the columns the clinical importer reads. Missing values are simply absent (an empty cell),
    never 0.
    """
    row: dict[str, Any] = {"case_id": record.case_id}

    def walk(column: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for k in sorted(value):
                walk(f"{column}.{k}", value[k])
        elif isinstance(value, (list, tuple)):
            if any(isinstance(v, (Mapping, list, tuple)) for v in value):
                head, _, last = column.rpartition(".")
                row[f"{head}.n_{last}" if head else f"n_{last}"] = len(value)
            else:
                row[column] = "|".join(str(v) for v in value)
        else:
            row[column] = value

    for name in SECTIONS:
        content = record.section(name)
        if content is None:
            continue
        for key in sorted(content):
            value = content[key]
            if key == "provenance":
                if isinstance(value, Mapping):
                    row[f"{name}.provenance.model"] = f"{value.get('model_name')}@{value.get('model_version')}"
                    row[f"{name}.provenance.timestamp_utc"] = value.get("timestamp_utc")
            elif name == "clinical" and key == "values" and isinstance(value, Mapping):
                for variable in value:
                    walk(variable, value[variable])
            else:
                walk(f"{name}.{key}", value)
    return row
