"""Export of case records for people: CSV a coordinator opens in a spreadsheet, and JSON.

Files are written through a temporary file and a rename, so a crash or an error never leaves half
an export (an earlier export at the same path stays as it was).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

from sarcoma_risk.errors import OutputError
from sarcoma_risk.fileio import atomic_open
from sarcoma_risk.records.schema import export_columns, spreadsheet_safe


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> int:
    """Flat rows (see :func:`~sarcoma_risk.records.schema.flatten_record`) as CSV; returns the row count.

    The clinical, radiology, pathology and fusion columns are always present, in a fixed order, so
    exports line up in a spreadsheet; missing values are empty cells, never 0. Clinical columns
    carry the names ``sarcoma-risk clinical import`` reads. Text that a spreadsheet would run as a
    formula (starting with =, +, -, @) is prefixed with '.
    """
    with _atomic_output(path) as handle:
        write_csv_rows(rows, handle)
    return len(rows)


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """The CSV of :func:`write_csv` as text (the server's download)."""
    text = io.StringIO()
    write_csv_rows(rows, text)
    return text.getvalue()


def write_csv_rows(rows: Sequence[dict[str, Any]], handle: TextIO) -> None:
    """The CSV of :func:`write_csv` into an open text stream."""
    writer = csv.DictWriter(handle, fieldnames=export_columns(list(rows)), restval="")
    writer.writeheader()
    writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)


def write_json(records: Sequence[dict[str, Any]], path: str | Path) -> int:
    """Full records (``CaseRecord.to_dict()``) as one JSON list; returns the count."""
    with _atomic_output(path) as handle:
        json.dump(list(records), handle, indent=2, sort_keys=True, allow_nan=False)
        handle.write("\n")
    return len(records)


@contextlib.contextmanager
def _atomic_output(path: str | Path) -> Iterator[Any]:
    """An atomic text file (:func:`~sarcoma_risk.fileio.atomic_open`) with the export's error messages."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: the folder {path.parent} does not exist; create it or choose another --out")
    try:
        with atomic_open(path) as handle:
            yield handle
    except OSError as exc:
        raise OutputError(f"{path}: could not be written ({exc.strerror}); nothing was exported") from None
