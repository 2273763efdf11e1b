"""The run-metadata JSON of a cohort run, as WSInfer writes one per run.

``OUT/runs/score-cohort-<UTC stamp>.json`` holds the versions of the software, the arguments, the
weights' sha256, where the jobs ran (in this process, or which scheduler and workers) and what
happened to each unit (case and section): scored (with score and record revision), skipped (the
record already held the result) or failed (with the message, per slide for pathology). It is
rewritten atomically after each unit, so an interrupted run still tells what it did; ``status``
is ``running`` until the run ends as ``finished`` or ``interrupted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.provenance import package_versions, utc_now

RUN_FORMAT = "sarcoma-risk-score-cohort-run/1"
#: Distributions whose versions shape a result or the run (None when not installed).
PACKAGES = ("sarcoma-risk", "torch", "torchvision", "numpy", "SimpleITK", "openslide-python", "openslide-bin",
            "h5py", "shapely", "dask", "distributed")


def run_metadata_path(out_dir: str | Path) -> Path:
    """A new run-metadata file name in ``out_dir/runs`` (UTC time stamp to the microsecond)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    return Path(out_dir) / "runs" / f"score-cohort-{stamp}.json"


@dataclass
class RunLog:
    """The metadata of one run; :meth:`add` and :meth:`finish` rewrite the file."""

    path: Path
    arguments: dict[str, Any]
    weights: dict[str, Any]
    engine: dict[str, Any]
    store: str
    units: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"
    started_utc: str = field(default_factory=utc_now)
    finished_utc: str | None = None
    versions: dict[str, str | None] = field(default_factory=lambda: package_versions(PACKAGES))

    def add(self, unit: Mapping[str, Any]) -> None:
        self.units.append(dict(unit))
        self.save()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for unit in self.units:
            out[unit["status"]] = out.get(unit["status"], 0) + 1
        return out

    def finish(self, status: str) -> None:
        self.status, self.finished_utc = status, utc_now()
        self.save()

    def to_dict(self) -> dict[str, Any]:
        return {"format": RUN_FORMAT, "command": "sarcoma-risk score-cohort", "status": self.status,
                "arguments": self.arguments, "started_utc": self.started_utc, "finished_utc": self.finished_utc,
                "versions": self.versions, "weights": self.weights, "engine": self.engine, "store": self.store,
                "counts": self.counts(), "units": self.units}

    def save(self) -> None:
        atomic_write_json(self.path, self.to_dict())
