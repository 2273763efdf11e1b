"""Reading the CSV tables people bring (clinical tables, cohort manifests) with clear errors.

Spreadsheets save CSV in several ways: with or without a UTF-8 byte-order mark, separated by commas
or (in many European locales) semicolons, with quoted cells that contain line breaks. This module
reads all of those, and refuses what cannot be read safely: text that is not UTF-8, an empty file,
a header with a blank or repeated column name. Rows keep their number (the first data row is 1,
the header is row 0; blank rows are skipped but keep their number, so row N is the spreadsheet's
row N+1) and report cells beyond the header instead of dropping them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from sarcoma_risk.errors import InvalidInput

_DELIMITERS = (",", ";", "\t")


@dataclass(frozen=True)
class CsvRow:
    """One data row: its number, its cells by column name (stripped, "" when absent) and any extra cells."""

    number: int
    values: dict[str, str]
    extra: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsvTable:
    header: list[str]
    rows: list[CsvRow]
    delimiter: str


def read_csv_table(path: str | Path, error: type[InvalidInput] = InvalidInput, *, what: str = "table") -> CsvTable:
    """Read a UTF-8 CSV with a header row; raise ``error`` naming the file and the fix.

    The delimiter is the one of comma, semicolon and tab that occurs most in the header line.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected a CSV {what} file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(
            f"{path}: not UTF-8 text (byte {exc.start} is 0x{data[exc.start]:02x}); save the {what} as "
            "'CSV UTF-8' from your spreadsheet program and try again") from None
    if not text.strip():
        raise error(f"{path}: the file is empty; expected a header row and one row per case")
    first_line = text.lstrip("\r\n").splitlines()[0]
    delimiter = max(_DELIMITERS, key=lambda d: (first_line.count(d), d == ","))
    # newline="" keeps line breaks inside quoted cells as data, as the csv module requires.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
        raw_rows = list(reader)
    except csv.Error as exc:
        raise error(f"{path}: not a readable CSV {what} (line {reader.line_num}: {exc})") from None
    if any(not h for h in header):
        position = [i + 1 for i, h in enumerate(header) if not h]
        raise error(f"{path}: the header has an empty column name at position(s) {position}; every column "
                    "needs a name (delete empty columns in the spreadsheet)")
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise error(f"{path}: column(s) {', '.join(repeated)} appear more than once in the header; keep one of each")
    rows: list[CsvRow] = []
    for number, cells in enumerate(raw_rows, start=1):
        if not any(c.strip() for c in cells):
            continue  # blank lines, including the ";;;;" rows spreadsheets leave at the end
        values = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        extra = tuple(cells[len(header):])
        rows.append(CsvRow(number, values, extra if any(c.strip() for c in extra) else ()))
    return CsvTable(header, rows, delimiter)
