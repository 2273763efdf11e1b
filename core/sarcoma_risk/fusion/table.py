"""The fusion table: one row per case with outcome, clinical values and imaging scores.

Columns: ``centre``, ``split``, ``time_months``, ``event`` (0/1), one column per clinical variable
of :data:`sarcoma_risk.clinical.variables.VARIABLES` (None when missing), and one column per imaging
input (NaN when the case lacks it); the index is the case id. It is built from a cohort manifest plus
score tables (training and evaluation) or from one case record (``fuse``).

Imaging inputs: ``pathology_score``, and the radiology score of each sequence set,
``radiology_score[t2fs+t1ce]``, ``radiology_score[t2fs]``, ``radiology_score[t1ce]`` (and
``radiology_score`` for a radiology score whose set is not stated). Each is its own input of the
fusion, named ``pathology``, ``radiology[t2fs]``, ... (:func:`radiology_input`): the T2-only model's
score is a different quantity from the score of the model that read both sequences, so the fusion
fits separate sub-models on each and never mixes them (:mod:`sarcoma_risk.fusion.model`). A
sub-model's name lists its inputs: ``clinical+radiology[t2fs]+pathology``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.cohort import Manifest, Split
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.sequences import SEQUENCE_SETS, set_name
from sarcoma_risk.survival.scores import ScoreTable, check_splits, score_column

CLINICAL, RADIOLOGY, PATHOLOGY = "clinical", "radiology", "pathology"
#: Modalities in the order they appear in sub-model names ("clinical+radiology+pathology").
MODALITY_ORDER = (CLINICAL, RADIOLOGY, PATHOLOGY)
DURATION, EVENT = "time_months", "event"


def radiology_input(sequences: str | None) -> str:
    """The fusion input of radiology scores of a sequence set: ``radiology[t2fs]``; ``radiology`` when unstated."""
    return RADIOLOGY if sequences is None else f"{RADIOLOGY}[{sequences}]"


#: The radiology inputs in order of preference for a case that has several, then every imaging input.
RADIOLOGY_INPUTS = (*(radiology_input(s) for s in SEQUENCE_SETS), RADIOLOGY)
IMAGING_INPUTS = (*RADIOLOGY_INPUTS, PATHOLOGY)


def modality_of(name: str) -> str:
    """The modality of a fusion input: ``radiology[t2fs]`` -> ``radiology``."""
    return name.split("[", 1)[0]


def input_sequences(name: str) -> str | None:
    """The sequence set of a radiology input (``radiology[t2fs]`` -> ``t2fs``), None for other inputs."""
    return name[len(RADIOLOGY) + 1:-1] if name.startswith(f"{RADIOLOGY}[") else None


def input_column(name: str) -> str:
    """The fusion-table column of an imaging input: ``radiology[t2fs]`` -> ``radiology_score[t2fs]``."""
    return score_column(modality_of(name), input_sequences(name))


def input_of_column(column: str) -> str | None:
    """The imaging input of a fusion-table column, None when the column is not an imaging score."""
    return next((name for name in IMAGING_INPUTS if input_column(name) == column), None)


#: The imaging columns of every fusion table.
IMAGING_COLUMNS = tuple(input_column(name) for name in IMAGING_INPUTS)


def is_missing(value: Any) -> bool:
    """None, NaN and blank strings count as missing."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def table_from_manifest(manifest: Manifest, tables: Mapping[str, ScoreTable], *,
                        split: Split | str | None = None):
    """The fusion table of a manifest's cases (one split, or all), with scores merged on case_id.

    ``tables`` are keyed by fusion column (:func:`sarcoma_risk.survival.scores.read_score_tables`).
    Score rows whose split disagrees with the manifest are refused (see
    :func:`sarcoma_risk.survival.scores.check_splits`); score rows of cases absent from the manifest
    are ignored.
    """

    check_splits(tables, {c.case_id: c.split.value for c in manifest.cases})
    cases = manifest.cases if split is None else manifest.split(split)
    rows = []
    for case in cases:
        row: dict[str, Any] = {"case_id": case.case_id, "centre": case.centre, "split": case.split.value,
                               DURATION: case.time_months, EVENT: int(case.event)}
        for name in VARIABLES:
            row[name] = case.clinical.get(name)
        for column in IMAGING_COLUMNS:
            table = tables.get(column)
            score = table.score(case.case_id) if table is not None else None
            row[column] = np.nan if score is None else float(score)
        rows.append(row)
    columns = ["case_id", "centre", "split", DURATION, EVENT, *VARIABLES, *IMAGING_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns).set_index("case_id")
    for name in VARIABLES:  # keep None (not NaN) for missing values and the record's own types
        frame[name] = frame[name].astype(object)
    return frame


def record_radiology_input(section: Mapping[str, Any] | None) -> str:
    """The fusion input of a record's radiology score: the set of the sequences its model read
    (``sequences`` of the section), or ``radiology`` when the section does not say."""
    sequences = (section or {}).get("sequences")
    if isinstance(sequences, list) and sequences:
        try:
            return radiology_input(set_name(sequences))
        except InvalidInput:
            pass  # not a set this version knows: a radiology score of an unstated set
    return RADIOLOGY


def row_from_record(record) -> dict[str, Any]:
    """A fusion-table row (without outcome) from a case record's clinical, radiology, pathology sections."""
    values = (record.clinical or {}).get("values") or {}
    row: dict[str, Any] = {name: values.get(name) for name in VARIABLES}
    row.update({column: float("nan") for column in IMAGING_COLUMNS})
    for name in (record_radiology_input(record.radiology), PATHOLOGY):
        section = getattr(record, modality_of(name)) or {}
        score = section.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            row[input_column(name)] = float(score)
    return row


def submodel_inputs(name: str) -> list[str]:
    """The inputs of a sub-model name: ``"clinical+radiology[t2fs+t1ce]"`` -> ``["clinical", "radiology[t2fs+t1ce]"]``."""
    return re.findall(r"[a-z]+(?:\[[^\]]*\])?", name)


def submodel_name(inputs: Sequence[str]) -> str:
    """Canonical sub-model name from its inputs, e.g. ``"clinical+radiology[t2fs]+pathology"``."""
    return "+".join(sorted(inputs, key=lambda name: MODALITY_ORDER.index(modality_of(name))))
