"""Clinical variables for soft tissue sarcoma: validation, FNCLCC grade, AJCC 8th stage, encoding.

Each variable has a type, unit, allowed range or categories (with the spellings people use in
charts, e.g. "UPS", "<50%", "F"), and whether it is required. :func:`validate_clinical` checks one
record and returns every problem at once; :func:`read_clinical_csv` does the same for a table.
:class:`ClinicalEncoder` turns validated records into Cox model columns with reference levels and
standardization learned on the development data, saved and reloaded as plain JSON.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sarcoma_risk.errors import InvalidClinicalData, InvalidInput, InvalidModel


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
GRADE_COMPONENTS = ("differentiation", "mitotic_count", "necrosis")
#: Values computed from the others and added to a valid record (trunk and extremity only).
DERIVED = ("ajcc_t", "ajcc_stage")
#: Sites the AJCC 8th trunk/extremity tables apply to; other sites have their own T and stage tables.
AJCC_TRUNK_EXTREMITY_SITES = ("upper_extremity", "lower_extremity", "trunk")


def mitotic_score(mitoses_per_10hpf: int) -> int:
    """FNCLCC mitotic count score: 0-9 -> 1, 10-19 -> 2, >= 20 -> 3."""
    if mitoses_per_10hpf < 0:
        raise InvalidInput(f"mitotic_count: {mitoses_per_10hpf} must be >= 0")
    return 1 if mitoses_per_10hpf < 10 else 2 if mitoses_per_10hpf < 20 else 3


NECROSIS_SCORE = {"none": 0, "lt50": 1, "ge50": 2}


def fnclcc_grade(differentiation: int, mitotic_count: int, necrosis: str) -> int:
    """FNCLCC grade from its components: score 2-3 -> G1, 4-5 -> G2, 6-8 -> G3."""
    if differentiation not in (1, 2, 3):
        raise InvalidInput(f"differentiation: {differentiation!r} must be 1, 2 or 3")
    if necrosis not in NECROSIS_SCORE:
        raise InvalidInput(f"necrosis: {necrosis!r} must be one of none, lt50, ge50")
    total = differentiation + mitotic_score(mitotic_count) + NECROSIS_SCORE[necrosis]
    return 1 if total <= 3 else 2 if total <= 5 else 3


def ajcc_t_category(tumor_size_cm: float) -> str:
    """AJCC 8th T category for trunk and extremity: T1 <= 5 cm, T2 <= 10, T3 <= 15, T4 > 15."""
    if tumor_size_cm <= 5:
        return "T1"
    if tumor_size_cm <= 10:
        return "T2"
    if tumor_size_cm <= 15:
        return "T3"
    return "T4"


def ajcc_stage(tumor_size_cm: float, grade: int, nodal_status: str = "N0", metastasis: str = "M0",
               site: str = "lower_extremity") -> str | None:
    """AJCC 8th stage group for trunk/extremity sarcoma; None for other sites (they have other tables).

    IA T1 N0 M0 G1; IB T2-4 N0 M0 G1; II T1 N0 M0 G2/3; IIIA T2 N0 M0 G2/3; IIIB T3-4 N0 M0 G2/3;
    IV any N1 or M1.
    """
    if site not in AJCC_TRUNK_EXTREMITY_SITES:
        return None
    if metastasis == "M1" or nodal_status == "N1":
        return "IV"
    t = ajcc_t_category(tumor_size_cm)
    if grade == 1:
        return "IA" if t == "T1" else "IB"
    if t == "T1":
        return "II"
    return "IIIA" if t == "T2" else "IIIB"


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


@dataclass
class ClinicalTable:
    """The result of reading a clinical CSV: valid rows, problems, and columns that were ignored."""

    valid: list[tuple[str, dict[str, Any]]]
    problems: list[ClinicalProblem]
    ignored_columns: list[str]
    n_rows: int


def read_clinical_csv(path: str | Path, *, id_column: str = "case_id") -> ClinicalTable:
    """Read and validate every row of a clinical CSV (UTF-8; comma, semicolon or tab separated).

    Raises :class:`InvalidClinicalData` for a file that cannot be read as a table at all (missing,
    not UTF-8, empty, no data rows, a missing ``case_id`` or required column); row-level problems
    (bad values, invalid or repeated case ids, cells beyond the header) are returned, all of them.
    Columns that are not clinical variables are listed in ``ignored_columns`` and never read.
    """
    from sarcoma_risk.errors import InvalidCaseId
    from sarcoma_risk.records.schema import validate_case_id
    from sarcoma_risk.tabular import read_csv_table

    path = Path(path)
    table = read_csv_table(path, InvalidClinicalData, what="clinical table")
    header = table.header
    needed = [id_column, *[r for r in REQUIRED if r != "fnclcc_grade"]]
    absent = [c for c in needed if c not in header]
    if "fnclcc_grade" not in header and not all(c in header for c in GRADE_COMPONENTS):
        absent.append("fnclcc_grade (or all of differentiation, mitotic_count and necrosis)")
    if absent:
        unknown = [h for h in header if h != id_column and h not in VARIABLES]
        hints = []
        for column in absent:
            close = difflib.get_close_matches(column.split(" ")[0].lower(), [h.lower() for h in unknown], n=1, cutoff=0.7)
            if close:
                hints.append(f"{column!r} looks like column {next(h for h in unknown if h.lower() == close[0])!r}")
        hint = f" ({'; '.join(hints)}; rename it)" if hints else ""
        raise InvalidClinicalData(
            f"{path}: missing required column(s): {', '.join(absent)}{hint}. The header must name "
            f"{id_column} and the clinical variables (see 'sarcoma-risk clinical variables')")
    if not table.rows:
        raise InvalidClinicalData(f"{path}: the table has a header but no data rows")
    ignored = [h for h in header if h != id_column and h not in VARIABLES]

    valid: list[tuple[str, dict[str, Any]]] = []
    problems: list[ClinicalProblem] = []
    seen: dict[str, int] = {}
    for row in table.rows:
        case_id = row.values[id_column]
        if row.extra:
            problems.append(ClinicalProblem(
                "(beyond the header)", "|".join(row.extra),
                f"{len(header)} cells as in the header (a stray separator or an unquoted comma?)", row.number,
                case_id or None))
            continue
        # A row with a bad id is still checked, so that every problem is reported in one go.
        id_ok = True
        try:
            validate_case_id(case_id)
        except InvalidCaseId as exc:
            problems.append(ClinicalProblem(id_column, case_id, str(exc).split(": ", 1)[-1], row.number))
            id_ok = False
        else:
            if case_id in seen:
                problems.append(ClinicalProblem(id_column, case_id, f"a unique id (also on row {seen[case_id]})",
                                                row.number, case_id))
                id_ok = False
            seen.setdefault(case_id, row.number)
        clean, row_problems = validate_clinical(row.values, row=row.number, case_id=case_id if id_ok else None)
        problems.extend(row_problems)
        if id_ok and not row_problems:
            valid.append((case_id, clean))
    return ClinicalTable(valid, problems, ignored, len(table.rows))


# ---- encoding for Cox models -------------------------------------------------------------------

#: Features the fusion model uses by default and their reference levels (the usual baseline in
#: sarcoma nomograms: the lower-risk level), so hazard ratios read as "versus the reference".
DEFAULT_FEATURES: tuple[str, ...] = (
    "age_years", "tumor_size_cm", "depth", "fnclcc_grade", "margin", "presentation", "radiotherapy",
)
REFERENCE_LEVELS: dict[str, str] = {
    "sex": "female", "depth": "superficial", "site": "lower_extremity",
    "subtype": "undifferentiated_pleomorphic_sarcoma", "margin": "R0", "radiotherapy": "none",
    "chemotherapy": "no", "presentation": "primary", "fnclcc_grade": "1", "nodal_status": "N0", "metastasis": "M0",
}
#: Numeric variables treated as categories in a Cox model.
CATEGORICAL_NUMBERS = ("fnclcc_grade",)
ENCODER_FORMAT = "sarcoma-risk-clinical-encoder/1"


class ClinicalEncoder:
    """Clinical records -> Cox design matrix.

    Numeric variables are standardized with the mean and standard deviation of the development data;
    categorical ones are one-hot coded against a reference level: the conventional baseline of
    :data:`REFERENCE_LEVELS` (the lower-risk level) when the development data hold it at least
    ``min_level_count`` times, else the most frequent level. Levels seen fewer than
    ``min_level_count`` times are pooled with the reference (their hazard cannot be estimated), and
    so are levels first seen after fitting. Column names read ``variable`` or ``variable[level]``.

    Parameters
    ----------
    features : sequence of str
        Clinical variable names (see :data:`VARIABLES`).
    min_level_count : int
        Smallest development count for a level to get its own column.
    """

    def __init__(self, features: Sequence[str] = DEFAULT_FEATURES, min_level_count: int = 5) -> None:
        self.features = tuple(features)
        self.min_level_count = min_level_count

    def _check_params(self) -> None:
        unknown = [f for f in self.features if f not in VARIABLES]
        if unknown:
            raise InvalidInput(f"features: unknown clinical variable(s) {unknown}; known: {', '.join(VARIABLES)}")
        if not self.features or len(set(self.features)) != len(self.features):
            raise InvalidInput(f"features: {list(self.features)} must be a non-empty list without repeats")
        if isinstance(self.min_level_count, bool) or not isinstance(self.min_level_count, int) or self.min_level_count < 1:
            raise InvalidInput(f"min_level_count: {self.min_level_count!r} must be a whole number >= 1")

    @staticmethod
    def _is_categorical(name: str) -> bool:
        return VARIABLES[name].kind == "category" or name in CATEGORICAL_NUMBERS

    def _values(self, records: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
        values = []
        for i, rec in enumerate(records):
            value = rec.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise InvalidClinicalData(f"record {i}: {name} is missing; the clinical model needs it")
            if self._is_categorical(name):
                # A grade read back from a table may be 2.0; it is the level "2".
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                values.append(str(value))
            else:
                try:
                    values.append(float(value))
                except (TypeError, ValueError):
                    raise InvalidClinicalData(f"record {i}: {name} = {value!r} is not a number") from None
        return values

    def fit(self, records: Sequence[Mapping[str, Any]]) -> "ClinicalEncoder":
        """Learn standardization, reference levels and levels from validated development records; returns self."""
        self._check_params()
        if len(records) < 2:
            raise InvalidClinicalData(f"need at least 2 development records to fit the encoder, got {len(records)}")
        numeric: dict[str, tuple[float, float]] = {}
        levels: dict[str, list[str]] = {}
        reference: dict[str, str] = {}
        for name in self.features:
            values = self._values(records, name)
            if self._is_categorical(name):
                counts: dict[str, int] = {}
                for v in values:
                    counts[v] = counts.get(v, 0) + 1
                ref = REFERENCE_LEVELS.get(name)
                if counts.get(ref, 0) < self.min_level_count:
                    ref = max(counts, key=lambda k: (counts[k], k))
                reference[name] = ref
                levels[name] = sorted(k for k, c in counts.items() if k != ref and c >= self.min_level_count)
            else:
                mean = sum(values) / len(values)
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                numeric[name] = (mean, sd if sd > 0 else 1.0)  # a constant column stays 0, not NaN
        self.numeric_, self.levels_, self.reference_ = numeric, levels, reference
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "numeric_"):
            raise InvalidModel("ClinicalEncoder: not fitted; call fit() or from_dict() first")

    @property
    def columns_(self) -> list[str]:
        """Design-matrix column names, in order."""
        self._check_fitted()
        cols = []
        for name in self.features:
            if name in self.numeric_:
                cols.append(name)
            else:
                cols.extend(f"{name}[{level}]" for level in self.levels_[name])
        return cols

    def transform(self, records: Sequence[Mapping[str, Any]]):
        """Design matrix as a pandas DataFrame with :attr:`columns_`, one row per record."""
        import pandas as pd

        self._check_fitted()
        data: dict[str, list[float]] = {}
        for name in self.features:
            values = self._values(records, name)
            if name in self.numeric_:
                mean, sd = self.numeric_[name]
                data[name] = [(v - mean) / sd for v in values]
            else:
                for level in self.levels_[name]:
                    data[f"{name}[{level}]"] = [1.0 if v == level else 0.0 for v in values]
        return pd.DataFrame(data, columns=self.columns_, index=range(len(records)))

    def to_dict(self) -> dict[str, Any]:
        """The fitted encoder as plain JSON data (see :meth:`from_dict`)."""
        self._check_fitted()
        return {
            "format": ENCODER_FORMAT,
            "features": list(self.features),
            "min_level_count": self.min_level_count,
            "numeric": {k: list(v) for k, v in self.numeric_.items()},
            "levels": {k: list(v) for k, v in self.levels_.items()},
            "reference": dict(self.reference_),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ClinicalEncoder":
        """Rebuild a fitted encoder; raises :class:`InvalidModel` for anything inconsistent."""
        if not isinstance(data, Mapping) or data.get("format") != ENCODER_FORMAT:
            raise InvalidModel(f"clinical encoder: expected an object with format {ENCODER_FORMAT!r}")
        try:
            enc = cls(list(data["features"]), data["min_level_count"])
            enc._check_params()
            enc.numeric_ = {str(k): (float(v[0]), float(v[1])) for k, v in data["numeric"].items()}
            enc.levels_ = {str(k): [str(x) for x in v] for k, v in data["levels"].items()}
            enc.reference_ = {str(k): str(v) for k, v in data["reference"].items()}
        except (KeyError, TypeError, IndexError, ValueError, AttributeError) as exc:
            raise InvalidModel(f"clinical encoder: malformed ({type(exc).__name__}: {exc})") from None
        stray = sorted((set(enc.numeric_) | set(enc.levels_) | set(enc.reference_)) - set(enc.features))
        if stray:
            raise InvalidModel(f"clinical encoder: entries for {stray}, which are not among its features")
        for name in enc.features:
            categorical = cls._is_categorical(name)
            if categorical and (name not in enc.levels_ or name not in enc.reference_ or name in enc.numeric_):
                raise InvalidModel(f"clinical encoder: categorical feature {name!r} needs levels and a reference")
            if not categorical and (name not in enc.numeric_ or name in enc.levels_):
                raise InvalidModel(f"clinical encoder: numeric feature {name!r} needs a mean and standard deviation")
            if not categorical and not (math.isfinite(enc.numeric_[name][0]) and enc.numeric_[name][1] > 0
                                        and math.isfinite(enc.numeric_[name][1])):
                raise InvalidModel(f"clinical encoder: {name!r} needs a finite mean and a standard deviation > 0")
            if categorical and enc.reference_[name] in enc.levels_[name]:
                raise InvalidModel(f"clinical encoder: {name!r} lists its reference level among its columns")
        return enc
