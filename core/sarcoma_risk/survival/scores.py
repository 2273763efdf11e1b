"""Imaging score tables: what the radiology and pathology ``train`` commands hand to fusion.

:func:`write_score_table` writes one, :func:`read_score_table` reads and checks it. Each table is a CSV ``<modality>_scores.csv`` with columns ``case_id, split, <modality>_score,
source`` (modality ``radiology`` or ``pathology``). Development cases carry out-of-fold scores
(``source`` = ``out_of_fold``, from cross-fitting), validation cases the final model's scores
(``final_model``). A case absent from a table, or with an empty score, lacks that modality.

Honest training needs the development scores to be out-of-fold: a score from a model that saw the
case during training is optimistic, and a Cox weight fitted on it is inflated.
:func:`check_out_of_fold` refuses other sources unless the caller explicitly accepts them.
"""

from __future__ import annotations

import csv
import logging
import math
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterable, Mapping

from sarcoma_risk.errors import InvalidCaseId, InvalidInput
from sarcoma_risk.fileio import atomic_open
from sarcoma_risk.records.schema import validate_case_id
from sarcoma_risk.tabular import read_csv_table

log = logging.getLogger(__name__)

MODALITIES = ("radiology", "pathology")
SPLITS = ("development", "validation")


class ScoreSource(str, Enum):
    OUT_OF_FOLD = "out_of_fold"
    FINAL_MODEL = "final_model"


class InSampleScoresWarning(UserWarning):
    """Development scores that are not out-of-fold were accepted on request; the fit is optimistic."""


def score_column(modality: str) -> str:
    return f"{modality}_score"


@dataclass(frozen=True)
class ScoreEntry:
    split: str
    score: float | None
    source: str


@dataclass
class ScoreTable:
    """One modality's scores: ``entries[case_id]`` and where they were read from."""

    modality: str
    entries: dict[str, ScoreEntry]
    path: Path | None = None

    def score(self, case_id: str) -> float | None:
        entry = self.entries.get(case_id)
        return None if entry is None else entry.score


def write_score_table(path: str | Path, table: ScoreTable, *, line_end: str = "\n") -> Path:
    """Write ``table`` as ``path`` (atomically): one row per entry, in the table's order.

    Scores are written with 6 decimals, a missing score as an empty cell. ``line_end`` is the row
    terminator: radiology's tables have always ended rows with ``\\r\\n`` (the csv module's
    default) and pathology's with ``\\n``; the reader takes both.
    """
    if table.modality not in MODALITIES:
        raise InvalidInput(f"score table: modality {table.modality!r}; expected one of {', '.join(MODALITIES)}")
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator=line_end)
        writer.writerow(("case_id", "split", score_column(table.modality), "source"))
        for case_id, entry in table.entries.items():
            writer.writerow((case_id, entry.split, "" if entry.score is None else f"{entry.score:.6f}", entry.source))
    return Path(path)


def read_score_table(path: str | Path) -> ScoreTable:
    """Read and check one score CSV; :class:`InvalidInput` lists every bad row at once."""
    path = Path(path)
    csv_table = read_csv_table(path, InvalidInput, what="score table")
    header = csv_table.header
    score_columns = [h for h in header if h.endswith("_score")]
    expected = "columns case_id, split, <modality>_score, source with modality one of " + ", ".join(MODALITIES)
    if len(score_columns) != 1 or score_columns[0][: -len("_score")] not in MODALITIES:
        raise InvalidInput(f"{path}: found score column(s) {score_columns or 'none'}; expected {expected}")
    column = score_columns[0]
    modality = column[: -len("_score")]
    missing = [c for c in ("case_id", "split", "source") if c not in header]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    sources = [s.value for s in ScoreSource]
    problems: list[str] = []
    entries: dict[str, ScoreEntry] = {}
    for row in csv_table.rows:
        where = f"row {row.number}"
        if row.extra:
            problems.append(f"{where}: {len(row.extra)} cell(s) beyond the header")
        case_id = row.values["case_id"]
        try:
            validate_case_id(case_id)
        except InvalidCaseId as exc:
            problems.append(f"{where}, column 'case_id': {exc}")
            continue
        if case_id in entries:
            problems.append(f"{where}, column 'case_id': {case_id!r} appears twice")
        split = row.values["split"].lower()
        if split not in SPLITS:
            problems.append(f"{where}, column 'split': {row.values['split']!r} -> expected development or validation")
        source = row.values["source"]
        if source not in sources:
            problems.append(f"{where}, column 'source': {source!r} -> expected one of {', '.join(sources)}")
        text_score = row.values[column]
        score: float | None = None
        if text_score:
            try:
                score = float(text_score)
                if not math.isfinite(score):
                    raise ValueError
            except ValueError:
                score = None
                problems.append(f"{where}, column {column!r}: {text_score!r} -> expected a finite number "
                                "(leave it empty when the case has no score)")
        entries[case_id] = ScoreEntry(split, score, source)
    if problems:
        raise InvalidInput(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    if not entries:
        raise InvalidInput(f"{path}: no rows; expected one row per scored case")
    return ScoreTable(modality, entries, path)


def read_score_tables(paths: Iterable[str | Path]) -> dict[str, ScoreTable]:
    """Read several score tables, one per modality: ``{modality: table}``."""
    tables: dict[str, ScoreTable] = {}
    for path in paths:
        table = read_score_table(path)
        if table.modality in tables:
            raise InvalidInput(f"{path}: a second {table.modality} score table (the first was "
                               f"{tables[table.modality].path}); give one table per modality")
        tables[table.modality] = table
    return tables


def check_splits(tables: Mapping[str, ScoreTable], manifest_splits: Mapping[str, str]) -> None:
    """Refuse score rows whose split differs from the manifest's (a sign of a mixed-up file)."""
    problems = []
    for table in tables.values():
        for case_id, entry in table.entries.items():
            expected = manifest_splits.get(case_id)
            if expected is not None and expected != entry.split:
                problems.append(f"{case_id}: split {entry.split!r} in {table.path} but {expected!r} in the manifest")
    if problems:
        raise InvalidInput(f"score tables disagree with the manifest on {len(problems)} case(s):\n  "
                           + "\n  ".join(problems[:20]))


def check_out_of_fold(tables: Mapping[str, ScoreTable], development_ids: Iterable[str], *,
                      allow_in_sample: bool = False) -> dict[str, int]:
    """Check that every development score is out-of-fold.

    Returns, per modality, how many development scores are not out-of-fold (0 when honest). When
    some are and ``allow_in_sample`` is False, raise :class:`InvalidInput`; when it is True, warn
    (:class:`InSampleScoresWarning`) and log, so the optimism is never silent.
    """
    ids = list(development_ids)
    counts: dict[str, int] = {}
    for modality, table in tables.items():
        bad = [c for c in ids if c in table.entries and table.entries[c].score is not None
               and table.entries[c].source != ScoreSource.OUT_OF_FOLD.value]
        counts[modality] = len(bad)
    offenders = {m: c for m, c in counts.items() if c}
    if offenders:
        detail = ", ".join(f"{m}: {c} case(s), e.g. {tables[m].path}" for m, c in offenders.items())
        message = (f"development scores that are not out-of-fold ({detail}). Fitting fusion weights on scores "
                   "from a model that saw the same cases inflates them; re-run the imaging training with "
                   "--folds K to get out-of-fold scores")
        if not allow_in_sample:
            raise InvalidInput(message + ", or pass --allow-in-sample-scores to accept an optimistic fit.")
        log.warning("%s. Accepted because --allow-in-sample-scores was given.", message)
        warnings.warn(message + "; accepted on request, the fit is optimistic.", InSampleScoresWarning, stacklevel=2)
    return counts
