"""The validation cohort's outcomes and fused risks, kept with the weights for the demo's Kaplan-Meier plot.

``validation-cohort.json`` (registered as ``validation-cohort``, kind ``validation-cohort``) holds,
for every validation case of the phantom cohort in a shuffled order and without case ids, the
observed time and event and the fused risk and risk group as ``fuse`` would give them (the
sub-model of the modalities the case has). The demo places a new case among these curves without
generating a cohort again. The numbers are synthetic: they describe the phantom cohort the weights
were validated on, nobody's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sarcoma_risk.cohort import Split, read_manifest
from sarcoma_risk.errors import InvalidModel
from sarcoma_risk.fusion.loading import load_fusion
from sarcoma_risk.fusion.table import DURATION, EVENT, table_from_manifest
from sarcoma_risk.survival.scores import read_score_tables
from sarcoma_risk.weights import WeightRegistry

REGISTRY_NAME = "validation-cohort"
KIND = "validation-cohort"
FILE_NAME = "validation-cohort.json"
FORMAT = "sarcoma-risk-validation-cohort/1"


@dataclass(frozen=True)
class ValidationCohort:
    """Outcomes and fused risks of the validation cases (higher risk = riskier)."""

    time_months: np.ndarray
    event: np.ndarray
    risk: np.ndarray
    group: np.ndarray
    description: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "description": self.description,
                "cases": {"time_months": [round(float(t), 2) for t in self.time_months],
                          "event": [int(e) for e in self.event],
                          "risk": [round(float(r), 6) for r in self.risk],
                          "group": [str(g) for g in self.group]}}

    @classmethod
    def from_dict(cls, data: Any, where: str = FILE_NAME) -> "ValidationCohort":
        """Rebuild and check; :class:`InvalidModel` names ``where`` and the broken field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("cases"), dict):
            raise InvalidModel(f"{where}: expected an object with format {FORMAT!r} and 'cases'")
        cases = data["cases"]
        try:
            time = np.asarray(cases["time_months"], dtype=float)
            event = np.asarray(cases["event"], dtype=int)
            risk = np.asarray(cases["risk"], dtype=float)
            group = np.asarray(cases["group"], dtype=str)
        except KeyError as exc:
            raise InvalidModel(f"{where}: cases.{exc.args[0]} is missing") from None
        except (TypeError, ValueError) as exc:
            raise InvalidModel(f"{where}: cases hold a value of the wrong type ({exc})") from None
        n = time.size
        if n == 0 or not all(a.ndim == 1 and a.size == n for a in (event, risk, group)):
            raise InvalidModel(f"{where}: cases.time_months, event, risk and group must be lists of equal, "
                               "non-zero length")
        if not (np.isfinite(time).all() and (time > 0).all() and np.isfinite(risk).all()):
            raise InvalidModel(f"{where}: cases.time_months must be > 0 and every risk finite")
        if not set(np.unique(event)) <= {0, 1} or not set(np.unique(group)) <= {"low", "high"}:
            raise InvalidModel(f"{where}: cases.event must be 0/1 and cases.group low/high")
        return cls(time, event.astype(bool), risk, group, str(data.get("description", "")))


def build_validation_cohort(weights_dir: Path, manifest: Path, score_files: list[Path],
                            description: str) -> ValidationCohort:
    """Score the manifest's validation cases with the fusion model of ``weights_dir`` as ``fuse`` would."""

    model, _ = load_fusion(weights=weights_dir)
    table = table_from_manifest(read_manifest(manifest), read_score_tables(score_files), split=Split.VALIDATION)
    predicted = model.predict(table)
    # A fixed shuffle: the file keeps no trace of the manifest's case order.
    order = np.random.default_rng(0).permutation(len(table))
    return ValidationCohort(table[DURATION].to_numpy(dtype=float)[order], table[EVENT].to_numpy(dtype=bool)[order],
                            predicted["risk"].to_numpy(dtype=float)[order], predicted["group"].to_numpy(dtype=str)[order],
                            description)


def load_validation_cohort(weights_dir: str | Path) -> tuple[ValidationCohort, dict[str, Any]]:
    """The verified validation cohort of a weights folder and its manifest entry."""

    registry = WeightRegistry(weights_dir)
    data, entry = registry.load_json(REGISTRY_NAME)
    if entry["kind"] != KIND:
        raise InvalidModel(f"{registry.manifest_path}: {REGISTRY_NAME!r} is of kind {entry['kind']!r}, expected {KIND!r}")
    return ValidationCohort.from_dict(data, str(registry.directory / entry["file"])), entry
