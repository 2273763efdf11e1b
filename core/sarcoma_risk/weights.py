"""The weight registry: a folder of model files described by ``manifest.json``.

Each entry records the file, its sha256, kind, version, config, a description of the training data
and the validation figures. Loading reads the bytes once, checks them against the recorded sha256
and only then parses them (JSON, or ``torch.load(weights_only=True)``): a changed byte is refused and
nothing unpickles arbitrary objects.

``manifest.json``::

    {"format": "sarcoma-risk-weights/1",
     "models": {"radiology": {"file": "radiology.pt", "sha256": "…", "kind": "radiology-cnn",
                              "version": "0.1.0", "config": {…}, "training_data": {…},
                              "validation": {…}, "created_utc": "…"}}}
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping

from sarcoma_risk.errors import InvalidModel, TamperedWeights, WeightsError, WeightsNotFound
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.provenance import sha256_bytes, sha256_file, utc_now

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "sarcoma-risk-weights/1"


class WeightRegistry:
    """A folder of weights with a verified manifest.

    Parameters
    ----------
    directory : path
        The folder holding ``manifest.json`` and the files it lists.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def manifest(self) -> dict[str, Any]:
        """The parsed manifest; an empty one when the folder has none yet."""
        if not self.manifest_path.exists():
            return {"format": MANIFEST_FORMAT, "models": {}}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WeightsError(f"{self.manifest_path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("models"), dict):
            raise WeightsError(
                f"{self.manifest_path}: expected an object with format {MANIFEST_FORMAT!r} and a 'models' object"
            )
        return data

    def names(self) -> list[str]:
        return sorted(self.manifest()["models"])

    def entry(self, name: str) -> dict[str, Any]:
        models = self.manifest()["models"]
        if name not in models:
            known = ", ".join(sorted(models)) or "none"
            raise WeightsNotFound(f"{self.manifest_path}: no model {name!r} (available: {known})")
        entry = models[name]
        if not isinstance(entry, dict):
            raise WeightsError(f"{self.manifest_path}: model {name!r} must be an object")
        for key in ("file", "sha256", "kind", "version"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise WeightsError(f"{self.manifest_path}: model {name!r} lacks {key!r}")
        return entry

    def _file(self, entry: Mapping[str, Any]) -> Path:
        """The entry's file, which must lie inside the folder (a manifest cannot point elsewhere)."""
        path = self.directory / entry["file"]
        try:
            path.resolve().relative_to(self.directory.resolve())
        except ValueError:
            raise WeightsError(f"{self.manifest_path}: file {entry['file']!r} lies outside {self.directory}; "
                               "refusing to read it") from None
        return path

    def read_verified(self, name: str) -> tuple[bytes, dict[str, Any]]:
        """The file's bytes and manifest entry, after checking the sha256."""
        entry = self.entry(name)
        path = self._file(entry)
        if not path.is_file():
            raise WeightsNotFound(f"{path}: weights file listed in {self.manifest_path} is missing")
        data = path.read_bytes()
        actual = sha256_bytes(data)
        if actual != entry["sha256"]:
            raise TamperedWeights(
                f"{path}: sha256 {actual[:16]}… does not match {entry['sha256'][:16]}… recorded in "
                f"{self.manifest_path}; the file was changed or damaged. Restore it or retrain."
            )
        return data, entry

    def load_json(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A verified JSON model file and its manifest entry."""
        data, entry = self.read_verified(name)
        try:
            return json.loads(data.decode("utf-8")), entry
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidModel(f"{self.directory / entry['file']}: not valid JSON ({exc})") from exc

    def load_torch(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """A verified torch checkpoint (``weights_only=True``: tensors and plain containers only)."""
        import torch  # lazy: foundation module, see test_package

        data, entry = self.read_verified(name)
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
            raise InvalidModel(f"{self.directory / entry['file']}: not a loadable weights-only checkpoint "
                               f"(only tensors and plain containers are accepted; {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        return state, entry

    def register(
        self,
        name: str,
        file: str | Path,
        *,
        kind: str,
        version: str,
        config: Mapping[str, Any] | None = None,
        training_data: Mapping[str, Any] | None = None,
        validation: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Add or replace the entry for ``file`` (which must lie in the folder) and save the manifest."""
        path = Path(file)
        if not path.is_absolute():
            path = self.directory / path
        try:
            relative = path.resolve().relative_to(self.directory.resolve())
        except ValueError:
            raise WeightsError(f"{path}: weights must lie inside {self.directory}") from None
        if not path.is_file():
            raise WeightsNotFound(f"{path}: no such weights file to register")
        entry = {
            "file": relative.as_posix(),
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "kind": kind,
            "version": version,
            "config": dict(config or {}),
            "training_data": dict(training_data or {}),
            "validation": dict(validation or {}),
            "created_utc": utc_now(),
        }
        manifest = self.manifest()
        manifest["models"][name] = entry
        atomic_write_json(self.manifest_path, manifest)
        return entry
