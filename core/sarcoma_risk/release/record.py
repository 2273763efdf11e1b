"""How a ``train all`` release was made: the ``release`` section of its ``manifest.json``, as typed data.

``assemble`` writes it (``to_dict``); the model card reads it back (``from_dict``), so the card
and the manifest cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from sarcoma_risk.errors import WeightsError

CARD_NAME = "MODEL_CARD.md"
PHANTOM_STATEMENT = ("Trained and validated on a phantom (synthetic) cohort to verify the software; no clinical "
                     "validity. Do not use for decisions about patients.")
COMMAND = "make weights  (sarcoma-risk train all)"


@dataclass(frozen=True)
class ReleaseRecord:
    """A release of phantom-trained weights: what made it, on which cohort, and its centre B figures."""

    software_version: str
    created_utc: str
    config: Mapping[str, Any]  # the run's settings (TrainAllConfig.to_dict())
    cohort: Mapping[str, Any]  # the phantom cohort, from its truth.json (no per-case data)
    validation: Mapping[str, Any]  # centre B figures with bootstrap CIs, score distributions
    seconds: Mapping[str, float]  # per step, and the total
    statement: str = PHANTOM_STATEMENT
    command: str = COMMAND
    model_card: str = CARD_NAME

    def to_dict(self) -> dict[str, Any]:
        return {"statement": self.statement, "phantom": True, "clinical_validity": "none", "command": self.command,
                "software_version": self.software_version, "created_utc": self.created_utc,
                "config": dict(self.config), "cohort": dict(self.cohort), "validation": dict(self.validation),
                "seconds": dict(self.seconds), "model_card": self.model_card}

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest.json release") -> "ReleaseRecord":
        """Read the section back; :class:`WeightsError` names a missing field."""
        if not isinstance(data, Mapping):
            raise WeightsError(f"{where}: expected an object")
        try:
            return cls(data["software_version"], data["created_utc"], data["config"], data["cohort"],
                       data["validation"], data["seconds"], data["statement"], data["command"], data["model_card"])
        except KeyError as exc:
            raise WeightsError(f"{where}: missing field {exc.args[0]!r}") from None
