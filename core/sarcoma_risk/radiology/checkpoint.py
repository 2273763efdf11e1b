"""Saving the radiology models into a weights folder and loading them back, verified.

A weights folder holds one radiology model per sequence set it was trained for
(:mod:`sarcoma_risk.sequences`): registered as ``radiology-<set>`` (``radiology-t2fs+t1ce``,
``radiology-t2fs``, ``radiology-t1ce``), kind ``radiology-cbam3d``, in the file ``<name>.pt``. Each
file holds a :class:`~sarcoma_risk.radiology.ensemble.RadiologyEnsemble` (the fold models' state
dicts and configurations, and the development score distribution); its manifest entry repeats the
configurations for people and tools, plus the training data's hash and the validation figures.
Loading checks the file's sha256 (:class:`~sarcoma_risk.weights.WeightRegistry`), loads with
``weights_only=True`` and refuses a manifest whose configuration differs from the checkpoint's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import torch

from sarcoma_risk.errors import InvalidModel, WeightsNotFound
from sarcoma_risk.fileio import atomic_write_bytes
from sarcoma_risk.radiology.ensemble import RadiologyEnsemble
from sarcoma_risk.sequences import SEQUENCE_SETS, SET_LABELS
from sarcoma_risk.weights import WeightRegistry

MODEL_PREFIX = "radiology-"
MODEL_KIND = "radiology-cbam3d"
#: The registry name of the one radiology model of releases before the per-sequence-set models.
EARLIER_NAME = "radiology"


def model_name(sequence_set: str) -> str:
    """The registry name of a sequence set's model, e.g. ``radiology-t2fs``."""
    return f"{MODEL_PREFIX}{sequence_set}"


def file_name(sequence_set: str) -> str:
    return f"{model_name(sequence_set)}.pt"


def train_hint(directory: Path) -> str:
    return (f"train them with `sarcoma-risk train radiology --manifest MANIFEST.csv --out {directory}` "
            "(or pass --weights DIR of a folder that holds them)")


def save_model(model: RadiologyEnsemble, directory: str | Path, *, version: str,
               training_data: Mapping[str, Any], validation: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``radiology-<set>.pt`` atomically into ``directory`` and register it; returns the manifest entry."""

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(model.to_checkpoint(), buffer)
    name = model.sequence_set
    atomic_write_bytes(directory / file_name(name), buffer.getvalue())
    config = {**model.config_dict(), "feature_stride": model.model.feature_stride, "sequence_set": name}
    return WeightRegistry(directory).register(model_name(name), file_name(name), kind=MODEL_KIND, version=version,
                                              config=config, training_data=training_data, validation=validation)


def available_sets(directory: str | Path) -> list[str]:
    """The sequence sets a weights folder has a radiology model for, in order of preference.

    Raises
    ------
    WeightsNotFound
        No folder, or no radiology model in it (the message says how to train them); an earlier
        release's single model is named as such.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise WeightsNotFound(f"{directory}: no such weights folder; {train_hint(directory)}")
    names = WeightRegistry(directory).names()
    sets = [s for s in SEQUENCE_SETS if model_name(s) in names]
    if not sets:
        earlier = (f" (it has a radiology model of an earlier release, registered as {EARLIER_NAME!r}, which "
                   "reads fixed sequences and scores on another scale than its fusion model)") \
            if EARLIER_NAME in names else ""
        raise WeightsNotFound(f"{directory}: holds no radiology model per sequence set{earlier}; "
                              f"{train_hint(directory)}")
    return sets


def load_model(directory: str | Path, sequence_set: str) -> tuple[RadiologyEnsemble, dict[str, Any]]:
    """The fitted model of one sequence set and its manifest entry.

    Raises
    ------
    WeightsNotFound
        No folder, or no model for this sequence set in it (the message lists the sets it has).
    TamperedWeights
        The file's sha256 differs from the manifest's.
    InvalidModel
        The file is not a radiology model of this version, or disagrees with its manifest entry.
    """
    directory = Path(directory)
    sets = available_sets(directory)
    if sequence_set not in sets:
        raise WeightsNotFound(f"{directory}: has no radiology model for {SET_LABELS.get(sequence_set, sequence_set)} "
                              f"({sequence_set}); it has: {', '.join(sets)}")
    registry = WeightRegistry(directory)
    checkpoint, entry = registry.load_torch(model_name(sequence_set))
    source = str(directory / entry["file"])
    if entry["kind"] != MODEL_KIND:
        raise InvalidModel(f"{source}: kind {entry['kind']!r} in the manifest, expected {MODEL_KIND!r}")
    model = RadiologyEnsemble.from_checkpoint(checkpoint, source)
    recorded = {k: entry.get("config", {}).get(k) for k in model.config_dict()}
    if recorded != model.config_dict() or model.sequence_set != sequence_set:
        raise InvalidModel(f"{source}: the configuration in {registry.manifest_path} differs from the one inside the "
                           "checkpoint; the manifest was edited. Restore it or retrain.")
    return model, entry
