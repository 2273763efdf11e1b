"""The fusion table: one row per case with outcome, clinical values and imaging scores.

Columns: ``centre``, ``split``, ``time_months``, ``event`` (0/1), one column per clinical variable
of :data:`sarcoma_risk.clinical.variables.VARIABLES` (None when missing), and ``radiology_score`` /
``pathology_score`` (NaN when the case lacks that modality); the index is the case id. It is built
from a cohort manifest plus score tables (training and evaluation) or from one case record (``fuse``).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from sarcoma_risk.clinical.variables import VARIABLES
from sarcoma_risk.cohort import Manifest, Split
from sarcoma_risk.survival.scores import MODALITIES, ScoreTable, check_splits, score_column

CLINICAL, RADIOLOGY, PATHOLOGY = "clinical", "radiology", "pathology"
#: Modalities in the order they appear in sub-model names ("clinical+radiology+pathology").
MODALITY_ORDER = (CLINICAL, RADIOLOGY, PATHOLOGY)
DURATION, EVENT = "time_months", "event"


def is_missing(value: Any) -> bool:
    """None, NaN and blank strings count as missing."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def table_from_manifest(manifest: Manifest, tables: Mapping[str, ScoreTable], *,
                        split: Split | str | None = None):
    """The fusion table of a manifest's cases (one split, or all), with scores merged on case_id.

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
        for modality in MODALITIES:
            table = tables.get(modality)
            score = table.score(case.case_id) if table is not None else None
            row[score_column(modality)] = np.nan if score is None else float(score)
        rows.append(row)
    columns = ["case_id", "centre", "split", DURATION, EVENT, *VARIABLES, *(score_column(m) for m in MODALITIES)]
    frame = pd.DataFrame(rows, columns=columns).set_index("case_id")
    for name in VARIABLES:  # keep None (not NaN) for missing values and the record's own types
        frame[name] = frame[name].astype(object)
    return frame


def row_from_record(record) -> dict[str, Any]:
    """A fusion-table row (without outcome) from a case record's clinical, radiology, pathology sections."""
    values = (record.clinical or {}).get("values") or {}
    row: dict[str, Any] = {name: values.get(name) for name in VARIABLES}
    for modality in MODALITIES:
        section = getattr(record, modality) or {}
        score = section.get("score")
        row[score_column(modality)] = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) \
            and math.isfinite(score) else float("nan")
    return row


def submodel_name(modalities: Sequence[str]) -> str:
    """Canonical sub-model name, e.g. ``"clinical+pathology"``."""
    return "+".join(m for m in MODALITY_ORDER if m in modalities)
