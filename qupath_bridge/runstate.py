"""Batch bookkeeping: which images are done (to resume), and the run-metadata JSON of each run.

Resuming: after an image is written (QuPath and case record), its *job key* is stored in
``<project>/sarcoma-risk/state.json``. A later run skips an image whose key is unchanged (same case,
same weights, same Tumor annotations, same slide file size and time, same parameters) and scores it
again when anything in the key changed. Failed images are recorded too and retried next time.

Run metadata: each run writes ``<project>/sarcoma-risk/runs/<stamp>.json`` with the versions of
the software, the arguments, the weights' sha256 and what happened to each image (as WSInfer does).
Images are named there by QuPath entry id and case id; the image names stay in QuPath.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.provenance import package_versions, sha256_bytes, utc_now

STATE_FORMAT = "sarcoma-qupath-state/1"
RUN_FORMAT = "sarcoma-qupath-run/1"
#: Distributions whose versions go into the run metadata.
PACKAGES = ("sarcoma-risk", "torch", "torchvision", "openslide-python", "openslide-bin", "shapely", "h5py",
            "paquo", "numpy")


def job_key(*, case_id: str, weights: Mapping[str, str], annotations_sha256: str | None, slide_path: Path,
            parameters: Mapping[str, Any]) -> str:
    """A sha256 over everything that changes an image's result (cheap: no slide bytes are read)."""
    stat = slide_path.stat()
    parts = {"case_id": case_id, "weights": dict(weights), "annotations": annotations_sha256,
             "slide": {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}, "parameters": dict(parameters)}
    return sha256_bytes(json.dumps(parts, sort_keys=True, default=str).encode())


class RunState:
    """The resume state of a project: entry id -> {status, key, case_id, time, message}."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.images: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidInput(f"{self.path}: the resume state cannot be read ({exc}); delete it to score "
                                   "every image again") from None
            if not isinstance(data, dict) or data.get("format") != STATE_FORMAT or not isinstance(data.get("images"), dict):
                raise InvalidInput(f"{self.path}: not a SarcomaRisk resume state ({STATE_FORMAT}); delete it to "
                                   "score every image again")
            self.images = data["images"]

    def is_done(self, entry_id: str, key: str) -> bool:
        """Whether the image was written by an earlier run with the same job key."""
        item = self.images.get(str(entry_id))
        return bool(item) and item.get("status") == "done" and item.get("key") == key

    def _set(self, entry_id: str, item: dict[str, Any]) -> None:
        self.images[str(entry_id)] = {**item, "time_utc": utc_now()}
        atomic_write_json(self.path, {"format": STATE_FORMAT, "images": self.images})

    def mark_done(self, entry_id: str, key: str, case_id: str) -> None:
        self._set(entry_id, {"status": "done", "key": key, "case_id": case_id})

    def mark_failed(self, entry_id: str, message: str) -> None:
        previous = self.images.get(str(entry_id), {})
        # A failure does not erase what an earlier successful run wrote; it is retried next time.
        self._set(entry_id, {**previous, "status": "failed", "message": message})


def run_stamp() -> str:
    """A UTC time stamp usable as a file name (backups, run metadata), unique to the microsecond."""

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


@dataclass
class RunMetadata:
    """The run-metadata JSON of one batch run; :meth:`save` rewrites it atomically after each image."""

    path: Path
    command: str
    arguments: dict[str, Any]
    weights: dict[str, Any] = field(default_factory=dict)
    qupath_version: str | None = None
    backup: str | None = None
    images: list[dict[str, Any]] = field(default_factory=list)
    started_utc: str = field(default_factory=utc_now)
    finished_utc: str | None = None
    versions: dict[str, str | None] = field(default_factory=lambda: package_versions(PACKAGES))

    def add(self, entry_id: str, status: str, *, case_id: str | None = None, message: str | None = None,
            **details: Any) -> None:
        self.images.append({"entry_id": str(entry_id), "case_id": case_id, "status": status,
                            **({"message": message} if message else {}), **details})
        self.save()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for item in self.images:
            out[item["status"]] = out.get(item["status"], 0) + 1
        return out

    def finish(self) -> None:
        self.finished_utc = utc_now()
        self.save()

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "command": self.command, "arguments": self.arguments,
                "started_utc": self.started_utc, "finished_utc": self.finished_utc, "versions": self.versions,
                "qupath_version": self.qupath_version, "weights": self.weights, "backup": self.backup,
                "counts": self.counts(), "images": self.images}

    def save(self) -> None:
        atomic_write_json(self.path, self.to_dict())
