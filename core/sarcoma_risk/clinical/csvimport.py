"""Importing a clinical CSV: every row checked, every problem reported at once.

The table is read by :func:`sarcoma_risk.tabular.read_csv_table` (UTF-8, comma, semicolon or tab);
each row's case id is checked as the case store checks it and its values by
:func:`sarcoma_risk.clinical.variables.validate_clinical`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarcoma_risk.clinical.staging import GRADE_COMPONENTS
from sarcoma_risk.clinical.variables import REQUIRED, VARIABLES, ClinicalProblem, validate_clinical
from sarcoma_risk.errors import InvalidCaseId, InvalidClinicalData
from sarcoma_risk.records.schema import validate_case_id
from sarcoma_risk.tabular import read_csv_table


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
