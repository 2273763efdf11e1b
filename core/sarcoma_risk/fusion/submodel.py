"""One fitted sub-model of :class:`~sarcoma_risk.fusion.model.CoxFusion`, as typed data.

A sub-model is the Cox model of one subset of {clinical, radiology, pathology}: its numbers, the
design columns it left out, how its penalizer was chosen, its risk-group cutoff and what its
development cases gave. ``to_dict`` writes the sub-model's part of ``fusion.json``; reading it back
is checked field by field in :mod:`sarcoma_risk.fusion.modelcheck`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sarcoma_risk.fusion.cox import CoxParameters
from sarcoma_risk.fusion.groups import Cutoff
from sarcoma_risk.fusion.selection import PenalizerCV


@dataclass(frozen=True)
class DevelopmentFit:
    """What a sub-model's development cases gave."""

    n: int
    events: int
    apparent_harrell_c: float  # on the cases it was fitted on: optimistic
    risk_percentiles: tuple[float, ...]  # the development risk at percentiles 0, 1, ..., 100

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "events": self.events, "apparent_harrell_c": self.apparent_harrell_c,
                "risk_percentiles": list(self.risk_percentiles)}


@dataclass(frozen=True)
class SubModel:
    """A fitted Cox sub-model: its modalities, Cox numbers, penalizer choice, cutoff and development figures."""

    modalities: tuple[str, ...]
    cox: CoxParameters
    dropped_columns: tuple[str, ...]  # design columns constant among its development cases
    cross_validation: PenalizerCV
    cutoff: Cutoff
    development: DevelopmentFit

    def to_dict(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), "dropped_columns": list(self.dropped_columns),
                "cross_validation": self.cross_validation.to_dict(), "cutoff": self.cutoff.to_dict(),
                "development": self.development.to_dict(), "cox": self.cox.to_dict()}
