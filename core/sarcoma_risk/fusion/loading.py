"""Loading a saved fusion model from a file or from a verified weights registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sarcoma_risk.errors import InvalidModel
from sarcoma_risk.fusion.model import CoxFusion
from sarcoma_risk.provenance import sha256_bytes
from sarcoma_risk.settings import default_weights_dir
from sarcoma_risk.weights import WeightRegistry

#: Name and kind of the fusion model in a weights manifest.
REGISTRY_NAME = "fusion"
KIND = "cox-fusion"


def load_fusion(model_file: Path | None = None, weights: Path | None = None) -> tuple[CoxFusion, dict[str, Any]]:
    """The fusion model and what identifies it: ``{"name", "version", "sha256"}`` (plus
    ``honest_out_of_fold`` from the registry's training data, when it says).

    From ``model_file`` (a fusion.json), or else from the weights registry ``weights`` (default:
    :func:`sarcoma_risk.settings.default_weights_dir`), whose sha256 check runs before parsing.
    Every field is checked by :meth:`CoxFusion.from_dict`; errors name the file.
    """
    if model_file is not None:
        where: Path = model_file
        try:
            raw = model_file.read_bytes()
        except FileNotFoundError:
            raise InvalidModel(f"{model_file}: no such model file") from None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidModel(f"{model_file}: not valid JSON ({exc})") from None
        versions = data.get("versions") if isinstance(data, dict) else None
        version = versions.get("sarcoma_risk") if isinstance(versions, dict) else None
        info = {"name": REGISTRY_NAME, "version": str(version or "unknown"), "sha256": sha256_bytes(raw)}
    else:
        registry = WeightRegistry(weights or default_weights_dir())
        where = registry.directory
        data, entry = registry.load_json(REGISTRY_NAME)
        if entry["kind"] != KIND:
            raise InvalidModel(f"{registry.manifest_path}: model {REGISTRY_NAME!r} is of kind {entry['kind']!r}, "
                               f"expected {KIND!r}")
        info = {"name": REGISTRY_NAME, "version": entry["version"], "sha256": entry["sha256"]}
        honest = (entry.get("training_data") or {}).get("honest_out_of_fold")
        if isinstance(honest, bool):
            info["honest_out_of_fold"] = honest
    try:
        return CoxFusion.from_dict(data), info
    except InvalidModel as exc:
        raise InvalidModel(f"{where}: {exc}") from None
