"""Saving the radiology model into a weights folder and loading it back, verified.

The checkpoint (``radiology.pt``) holds the state dict, the three configurations and the development
score distribution; the manifest entry (name ``radiology``, kind ``radiology-cbam3d``) repeats the
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
from sarcoma_risk.radiology.train import RadiologyCoxModel
from sarcoma_risk.weights import WeightRegistry

MODEL_NAME = "radiology"
MODEL_KIND = "radiology-cbam3d"
FILE_NAME = "radiology.pt"


def train_hint(directory: Path) -> str:
    return (f"train one with `sarcoma-risk train radiology --manifest MANIFEST.csv --out {directory}` "
            "(or pass --weights DIR of a folder that holds one)")


def save_model(model: RadiologyCoxModel, directory: str | Path, *, version: str,
               training_data: Mapping[str, Any], validation: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``radiology.pt`` atomically into ``directory`` and register it; returns the manifest entry."""

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(model.to_checkpoint(), buffer)
    atomic_write_bytes(directory / FILE_NAME, buffer.getvalue())
    config = {**model.config_dict(), "feature_stride": model.model.feature_stride}
    return WeightRegistry(directory).register(MODEL_NAME, FILE_NAME, kind=MODEL_KIND, version=version, config=config,
                                              training_data=training_data, validation=validation)


def load_model(directory: str | Path) -> tuple[RadiologyCoxModel, dict[str, Any]]:
    """The fitted model and its manifest entry from a weights folder.

    Raises
    ------
    WeightsNotFound
        No folder, no manifest or no radiology model in it (the message says how to train one).
    TamperedWeights
        The file's sha256 differs from the manifest's.
    InvalidModel
        The file is not a radiology checkpoint, or disagrees with its manifest entry.
    """
    directory = Path(directory)
    registry = WeightRegistry(directory)
    if not directory.is_dir():
        raise WeightsNotFound(f"{directory}: no such weights folder; {train_hint(directory)}")
    if MODEL_NAME not in registry.names():
        raise WeightsNotFound(f"{directory}: holds no radiology model yet; {train_hint(directory)}")
    checkpoint, entry = registry.load_torch(MODEL_NAME)
    source = str(directory / entry["file"])
    if entry["kind"] != MODEL_KIND:
        raise InvalidModel(f"{source}: kind {entry['kind']!r} in the manifest, expected {MODEL_KIND!r}")
    model = RadiologyCoxModel.from_checkpoint(checkpoint, source)
    recorded = {k: entry.get("config", {}).get(k) for k in ("preprocess", "model", "train")}
    if recorded != model.config_dict():
        raise InvalidModel(f"{source}: the configuration in {registry.manifest_path} differs from the one inside the "
                           "checkpoint; the manifest was edited. Restore it or retrain.")
    return model, entry
