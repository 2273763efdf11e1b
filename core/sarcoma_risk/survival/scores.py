"""Imaging score tables: what the radiology and pathology ``train`` commands hand to fusion.

:func:`write_score_file` writes them, :func:`read_score_table` reads and checks them. Each file is a
CSV ``<modality>_scores.csv`` with columns ``case_id, split, <modality>_score, source`` (modality
``radiology`` or ``pathology``). Development cases carry out-of-fold scores
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
from typing import Iterable, Mapping, Sequence

from sarcoma_risk.errors import InvalidCaseId, InvalidInput
from sarcoma_risk.fileio import atomic_open
from sarcoma_risk.records.schema import validate_case_id
from sarcoma_risk.sequences import SEQUENCE_SETS
from sarcoma_risk.tabular import read_csv_table

log = logging.getLogger(__name__)

MODALITIES = ("radiology", "pathology")
SPLITS = ("development", "validation")


class ScoreSource(str, Enum):
    OUT_OF_FOLD = "out_of_fold"
    FINAL_MODEL = "final_model"


class InSampleScoresWarning(UserWarning):
    """Development scores that are not out-of-fold were accepted on request; the fit is optimistic."""


def score_column(modality: str, sequences: str | None = None) -> str:
    """The fusion-table column of a modality's score: ``pathology_score``, ``radiology_score[t2fs]``;
    ``radiology_score`` for radiology scores of an unstated sequence set."""
    return f"{modality}_score" if sequences is None else f"{modality}_score[{sequences}]"


@dataclass(frozen=True)
class ScoreEntry:
    split: str
    score: float | None
    source: str


@dataclass
class ScoreTable:
    """One modality's scores (for radiology: of one sequence set): ``entries[case_id]``, and where
    they were read from."""

    modality: str
    entries: dict[str, ScoreEntry]
    path: Path | None = None
    sequences: str | None = None  # radiology: the sequence set of the model that made the scores

    @property
    def column(self) -> str:
        """The fusion-table column of these scores (:func:`score_column`)."""
        return score_column(self.modality, self.sequences)

    def score(self, case_id: str) -> float | None:
        entry = self.entries.get(case_id)
        return None if entry is None else entry.score


def write_score_file(path: str | Path, tables: Sequence[ScoreTable], *, line_end: str = "\n") -> Path:
    """Write ``tables`` (one modality; for radiology one table per sequence set) into one CSV ``path``
    (atomically): one row per entry, table after table.

    Scores are written with 6 decimals, a missing score as an empty cell. Tables with a sequence
    set add the ``sequences`` column. ``line_end`` is the row terminator: radiology's tables have
    always ended rows with ``\\r\\n`` (the csv module's default) and pathology's with ``\\n``; the
    reader takes both.
    """
    modalities = {t.modality for t in tables}
    if len(modalities) != 1 or not modalities <= set(MODALITIES):
        raise InvalidInput(f"score file: modalities {sorted(modalities)}; expected tables of one of "
                           f"{', '.join(MODALITIES)}")
    modality = modalities.pop()
    named = [t.sequences is not None for t in tables]
    if any(named) and (not all(named) or modality != "radiology"):
        raise InvalidInput("score file: only radiology tables name a sequence set, and then every table does")
    if len({t.sequences for t in tables}) != len(tables):
        raise InvalidInput("score file: two tables of the same sequence set")
    header = ("case_id", "split", *(("sequences",) if any(named) else ()), score_column(modality), "source")
    with atomic_open(path) as handle:
        writer = csv.writer(handle, lineterminator=line_end)
        writer.writerow(header)
        for table in tables:
            for case_id, entry in table.entries.items():
                score = "" if entry.score is None else f"{entry.score:.6f}"
                sequences = (table.sequences,) if any(named) else ()
                writer.writerow((case_id, entry.split, *sequences, score, entry.source))
    return Path(path)


def read_score_file(path: str | Path) -> list[ScoreTable]:
    """Read and check one score CSV: its tables (one per sequence set for a radiology file with a
    ``sequences`` column, else one); :class:`InvalidInput` lists every bad row at once."""
    path = Path(path)
    csv_table = read_csv_table(path, InvalidInput, what="score table")
    header = csv_table.header
    score_columns = [h for h in header if h.endswith("_score")]
    expected = ("columns case_id, split, <modality>_score, source with modality one of " + ", ".join(MODALITIES)
                + " (and, for radiology, sequences)")
    if len(score_columns) != 1 or score_columns[0][: -len("_score")] not in MODALITIES:
        raise InvalidInput(f"{path}: found score column(s) {score_columns or 'none'}; expected {expected}")
    column = score_columns[0]
    modality = column[: -len("_score")]
    missing = [c for c in ("case_id", "split", "source") if c not in header]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    named = "sequences" in header
    if named and modality != "radiology":
        raise InvalidInput(f"{path}: a 'sequences' column in a {modality} score table; only radiology scores come "
                           "from a sequence set")
    sources = [s.value for s in ScoreSource]
    problems: list[str] = []
    tables: dict[str | None, dict[str, ScoreEntry]] = {}
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
        sequences = row.values["sequences"] if named else None
        if named and sequences not in SEQUENCE_SETS:
            problems.append(f"{where}, column 'sequences': {sequences!r} -> expected one of {', '.join(SEQUENCE_SETS)}")
            continue
        entries = tables.setdefault(sequences, {})
        if case_id in entries:
            problems.append(f"{where}, column 'case_id': {case_id!r} appears twice"
                            + (f" for the sequence set {sequences}" if named else ""))
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
    if not tables:
        raise InvalidInput(f"{path}: no rows; expected one row per scored case")
    return [ScoreTable(modality, entries, path, sequences) for sequences, entries in tables.items()]


def read_score_tables(paths: Iterable[str | Path]) -> dict[str, ScoreTable]:
    """Read several score files: ``{fusion column: table}`` (e.g. ``pathology_score``,
    ``radiology_score[t2fs]``), each column from one file only."""
    tables: dict[str, ScoreTable] = {}
    for path in paths:
        for table in read_score_file(path):
            if table.column in tables:
                raise InvalidInput(f"{path}: a second table of {table.column} (the first was in "
                                   f"{tables[table.column].path}); give one file per modality")
            tables[table.column] = table
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

    Returns, per table (keyed as ``tables``), how many development scores are not out-of-fold (0 when honest). When
    some are and ``allow_in_sample`` is False, raise :class:`InvalidInput`; when it is True, warn
    (:class:`InSampleScoresWarning`) and log, so the optimism is never silent.
    """
    ids = list(development_ids)
    counts: dict[str, int] = {}
    for key, table in tables.items():
        bad = [c for c in ids if c in table.entries and table.entries[c].score is not None
               and table.entries[c].source != ScoreSource.OUT_OF_FOLD.value]
        counts[key] = len(bad)
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
