"""The clinical variables of soft tissue sarcoma, and checking a record against them.

Each variable has a type, unit, allowed range or categories (with the spellings people use in
charts, e.g. "UPS", "<50%", "F"), and whether it is required. :func:`validate_clinical` checks one
record, returns every problem at once and adds the FNCLCC grade and AJCC stage
(:mod:`sarcoma_risk.clinical.staging`) to a valid one.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from sarcoma_risk.clinical.staging import (
    AJCC_TRUNK_EXTREMITY_SITES,
    GRADE_COMPONENTS,
    ajcc_stage,
    ajcc_t_category,
    fnclcc_grade,
)
from sarcoma_risk.errors import InvalidClinicalData


@dataclass(frozen=True)
class ClinicalProblem:
    """One reason a value was refused: where it is, what it was, what is expected."""

    column: str
    value: Any
    expected: str
    row: int | None = None  # 1-based data row in a CSV (header is row 0), None for a single record
    case_id: str | None = None

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "record"
        if self.case_id:
            where += f" (case {self.case_id})"
        return f"{where}, column {self.column!r}: {self.value!r} -> expected {self.expected}"


@dataclass(frozen=True)
class Variable:
    """A clinical variable: numeric (with unit and range) or categorical (with aliases)."""

    name: str
    description: str
    kind: str  # "number", "integer" or "category"
    required: bool = True
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    def expected(self) -> str:
        if self.kind == "category":
            return "one of " + ", ".join(self.categories)
        what = "an integer" if self.kind == "integer" else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} from {self.minimum:g} to {self.maximum:g}{unit}"

    def parse(self, raw: Any) -> Any:
        """The clean value; raises ValueError whose message is the expectation (and a hint)."""
        if self.kind == "category":
            return self._parse_category(raw)
        if isinstance(raw, bool):
            raise ValueError(self.expected())
        if isinstance(raw, (int, float)):
            number = float(raw)
        else:
            text = str(raw).strip()
            if "," in text and "." not in text:
                raise ValueError(self.expected() + " (use a decimal point, not a comma)")
            try:
                number = float(text)
            except ValueError:
                raise ValueError(self.expected()) from None
        if not math.isfinite(number):
            raise ValueError(self.expected())
        if self.kind == "integer":
            if number != int(number):
                raise ValueError(self.expected())
            number = int(number)
        if self.minimum is not None and number < self.minimum:
            raise ValueError(self.expected())
        if self.maximum is not None and number > self.maximum:
            # The usual slip for a size column in cm is a value in mm.
            in_mm = self.unit == "cm" and number / 10 <= self.maximum
            raise ValueError(self.expected() + (" (was it given in mm?)" if in_mm else ""))
        return number

    def _parse_category(self, raw: Any) -> str:
        key = normalize_label(str(raw))
        for cat in self.categories:
            if key == normalize_label(cat):
                return cat
        if key in self.aliases:
            return self.aliases[key]
        # Suggest the canonical spelling of the closest category or alias.
        spellings = {normalize_label(c): c for c in self.categories}
        spellings.update({alias: canonical for alias, canonical in self.aliases.items() if alias not in spellings})
        close = difflib.get_close_matches(key, list(spellings), n=1, cutoff=0.75)
        hint = f" (did you mean {spellings[close[0]]!r}?)" if close else ""
        raise ValueError(self.expected() + hint)


def normalize_label(text: str) -> str:
    """Lower case, '-' and '_' as spaces, single spaces: how category spellings are compared."""
    return " ".join(text.strip().lower().replace("-", " ").replace("_", " ").split())


def _aliases(mapping: Mapping[str, Iterable[str]]) -> dict[str, str]:
    return {normalize_label(alias): canonical for canonical, names in mapping.items() for alias in names}


SUBTYPE_ALIASES = _aliases(
    {
        "undifferentiated_pleomorphic_sarcoma": ["ups", "undifferentiated pleomorphic sarcoma", "mfh",
                                                 "malignant fibrous histiocytoma", "pleomorphic sarcoma nos"],
        "myxofibrosarcoma": ["mfs", "myxofibrosarcoma"],
        "dedifferentiated_liposarcoma": ["ddlps", "dedifferentiated liposarcoma"],
        "well_differentiated_liposarcoma": ["wdlps", "well differentiated liposarcoma",
                                            "atypical lipomatous tumor", "atypical lipomatous tumour", "alt"],
        "myxoid_liposarcoma": ["mlps", "myxoid liposarcoma", "myxoid/round cell liposarcoma", "round cell liposarcoma"],
        "pleomorphic_liposarcoma": ["plps", "pleomorphic liposarcoma"],
        "leiomyosarcoma": ["lms", "leiomyosarcoma"],
        "synovial_sarcoma": ["ss", "synovial sarcoma"],
        "mpnst": ["malignant peripheral nerve sheath tumor", "malignant peripheral nerve sheath tumour"],
        # WHO subtypes too rare to model one by one are grouped as "other".
        "other": ["sarcoma nos", "spindle cell sarcoma", "angiosarcoma", "epithelioid sarcoma", "clear cell sarcoma",
                  "alveolar soft part sarcoma", "fibrosarcoma", "adult fibrosarcoma", "rhabdomyosarcoma",
                  "pleomorphic rhabdomyosarcoma", "extraskeletal myxoid chondrosarcoma", "solitary fibrous tumor",
                  "solitary fibrous tumour", "low grade fibromyxoid sarcoma", "sclerosing epithelioid fibrosarcoma",
                  "desmoplastic small round cell tumor", "extraskeletal osteosarcoma", "ewing sarcoma",
                  "malignant pecoma", "intimal sarcoma", "follicular dendritic cell sarcoma"],
    }
)

VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in [
        Variable("age_years", "Age at surgery", "number", unit="years", minimum=0, maximum=110),
        Variable("sex", "Sex", "category", categories=("female", "male"),
                 aliases=_aliases({"female": ["f", "w", "woman"], "male": ["m", "man"]})),
        Variable("tumor_size_cm", "Largest tumor diameter", "number", unit="cm", minimum=0.1, maximum=60),
        Variable("depth", "Depth relative to the superficial fascia", "category", categories=("superficial", "deep")),
        Variable("site", "Primary site", "category",
                 categories=("upper_extremity", "lower_extremity", "trunk", "retroperitoneum", "head_neck"),
                 aliases=_aliases({"upper_extremity": ["upper limb", "arm"], "lower_extremity": ["lower limb", "leg", "thigh"],
                                   "trunk": ["trunk wall", "chest wall", "abdominal wall"], "retroperitoneum": ["rps", "retroperitoneal"],
                                   "head_neck": ["head and neck", "head & neck", "h&n"]})),
        Variable("subtype", "Histologic subtype (WHO), grouped", "category",
                 categories=("undifferentiated_pleomorphic_sarcoma", "myxofibrosarcoma", "dedifferentiated_liposarcoma",
                             "well_differentiated_liposarcoma", "myxoid_liposarcoma", "pleomorphic_liposarcoma",
                             "leiomyosarcoma", "synovial_sarcoma", "mpnst", "other"),
                 aliases=SUBTYPE_ALIASES),
        Variable("differentiation", "FNCLCC tumor differentiation score", "integer", required=False, minimum=1, maximum=3),
        Variable("mitotic_count", "Mitoses per 10 high-power fields", "integer", required=False, unit="per 10 HPF",
                 minimum=0, maximum=500),
        Variable("necrosis", "Tumor necrosis", "category", required=False, categories=("none", "lt50", "ge50"),
                 aliases=_aliases({"none": ["0", "no", "0%", "absent"], "lt50": ["<50%", "< 50%", "<50", "1"],
                                   "ge50": [">=50%", ">= 50%", ">50%", "≥50%", ">=50", "2"]})),
        Variable("fnclcc_grade", "FNCLCC grade (given, or computed from its three components)", "integer",
                 minimum=1, maximum=3),
        Variable("margin", "Surgical margin", "category", categories=("R0", "R1", "R2")),
        Variable("radiotherapy", "Radiotherapy", "category", categories=("none", "preoperative", "postoperative"),
                 aliases=_aliases({"none": ["no", "0"], "preoperative": ["pre", "pre op", "neoadjuvant"],
                                   "postoperative": ["post", "post op", "adjuvant"]})),
        Variable("chemotherapy", "Perioperative chemotherapy", "category", categories=("no", "yes"),
                 aliases=_aliases({"no": ["0", "false", "none"], "yes": ["1", "true"]})),
        Variable("presentation", "Presentation", "category", categories=("primary", "recurrent"),
                 aliases=_aliases({"recurrent": ["recurrence", "local recurrence"]})),
        Variable("nodal_status", "Regional lymph nodes (AJCC N)", "category", required=False, categories=("N0", "N1")),
        Variable("metastasis", "Distant metastasis at diagnosis (AJCC M)", "category", required=False,
                 categories=("M0", "M1")),
    ]
}

REQUIRED = tuple(name for name, v in VARIABLES.items() if v.required)


def validate_clinical(record: Mapping[str, Any], *, row: int | None = None,
                      case_id: str | None = None) -> tuple[dict[str, Any], list[ClinicalProblem]]:
    """Check one record; return the clean values and every problem found.

    Empty strings and None count as missing. ``fnclcc_grade`` may be omitted when all three grade
    components are given; when both are given they must agree. The derived ``ajcc_t`` and
    ``ajcc_stage`` are added for trunk and extremity tumors (other sites have other AJCC tables).
    Keys that are not clinical variables are ignored.
    """
    clean: dict[str, Any] = {}
    problems: list[ClinicalProblem] = []

    def missing(value: Any) -> bool:
        return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, float) and math.isnan(value))

    for name, var in VARIABLES.items():
        raw = record.get(name)
        if missing(raw):
            continue
        try:
            clean[name] = var.parse(raw)
        except ValueError as exc:
            problems.append(ClinicalProblem(name, raw, str(exc), row, case_id))

    components = [c for c in GRADE_COMPONENTS if c in clean]
    if len(components) == len(GRADE_COMPONENTS):
        computed = fnclcc_grade(clean["differentiation"], clean["mitotic_count"], clean["necrosis"])
        given = clean.get("fnclcc_grade")
        if given is not None and given != computed:
            problems.append(ClinicalProblem(
                "fnclcc_grade", given,
                f"{computed}, the grade its components give (differentiation {clean['differentiation']}, "
                f"mitotic_count {clean['mitotic_count']}, necrosis {clean['necrosis']})", row, case_id))
        clean["fnclcc_grade"] = computed
    refused = {p.column for p in problems}
    if refused & set(GRADE_COMPONENTS):
        refused.add("fnclcc_grade")  # the grade is missing only because a component was refused
    for name in REQUIRED:
        if name not in clean and name not in refused:
            if name == "fnclcc_grade":
                expected = "1, 2 or 3, or all of differentiation, mitotic_count and necrosis"
            else:
                expected = VARIABLES[name].expected() + " (required)"
            problems.append(ClinicalProblem(name, record.get(name), expected, row, case_id))
    if not problems and clean["site"] in AJCC_TRUNK_EXTREMITY_SITES:
        clean["ajcc_t"] = ajcc_t_category(clean["tumor_size_cm"])
        clean["ajcc_stage"] = ajcc_stage(clean["tumor_size_cm"], clean["fnclcc_grade"], clean.get("nodal_status", "N0"),
                                         clean.get("metastasis", "M0"), clean["site"])
    return clean, problems


def check_clinical(record: Mapping[str, Any], *, case_id: str | None = None) -> dict[str, Any]:
    """Validated clean values of one record, or :class:`InvalidClinicalData` listing every problem."""
    clean, problems = validate_clinical(record, case_id=case_id)
    if problems:
        raise InvalidClinicalData(
            "invalid clinical data:\n  " + "\n  ".join(str(p) for p in problems), problems)
    return clean
