"""Provenance: where every score in a case record came from.

A provenance block names the model (name, version, weights sha256), fingerprints the inputs by
content (sha256 and size, never the file name, which may identify a patient), and records the
parameters, the software version, the UTC time, the user and the host.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import platform
import socket
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePath
from typing import Any, Mapping

from sarcoma_risk import __version__
from sarcoma_risk.errors import InvalidInput

_CHUNK = 4 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (bounded memory for multi-GB slides)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes in memory."""
    return hashlib.sha256(data).hexdigest()


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Content fingerprint of a file or a folder (e.g. a DICOM series): sha256, size, file count.

    A folder's sha256 is taken over the sorted (relative path, file sha256) pairs, so it changes
    when any file changes, is added or removed, and does not depend on listing order.
    """
    path = Path(path)
    if path.is_file():
        return {"sha256": sha256_file(path), "bytes": path.stat().st_size, "files": 1}
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        digest = hashlib.sha256()
        total = 0
        for item in files:
            digest.update(item.relative_to(path).as_posix().encode())
            digest.update(sha256_file(item).encode())
            total += item.stat().st_size
        return {"sha256": digest.hexdigest(), "bytes": total, "files": len(files)}
    raise InvalidInput(f"{path}: no such file or folder to fingerprint")


def utc_now() -> str:
    """UTC time as ISO 8601 with a trailing Z, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def current_user() -> str:
    """The login name, or "unknown" where there is none (some containers); never fails."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # getpass's ways of saying "no login name here"
        return "unknown"


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """Python's version and the installed version of each distribution in ``names`` (None when absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def software_version() -> str:
    """The installed SarcomaRisk version."""

    return __version__


@dataclass(frozen=True)
class Provenance:
    """Where a result came from. ``inputs`` maps a role ("t2", "mask", "slide") to a fingerprint."""

    model_name: str
    model_version: str
    weights_sha256: str | None
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    software_version: str = field(default_factory=software_version)
    timestamp_utc: str = field(default_factory=utc_now)
    user: str = field(default_factory=current_user)
    host: str = field(default_factory=socket.gethostname)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (the ``provenance`` block of a case record section)."""
        try:
            return json.loads(json.dumps(asdict(self), allow_nan=False, default=_plain))
        except ValueError as exc:  # NaN or infinity among the parameters
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"provenance of {self.model_name}: {exc} (NaN/inf cannot be stored)") from None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Provenance":
        """The block read back from a record; raises :class:`InvalidInput` naming missing fields."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"provenance: expected an object, got {type(data).__name__}")
        missing = [k for k in PROVENANCE_FIELDS if k not in data]
        if missing:
            raise InvalidInput(f"provenance: missing field(s) {', '.join(missing)}")
        return cls(**{k: data[k] for k in PROVENANCE_FIELDS})

    @classmethod
    def for_inputs(
        cls,
        model_name: str,
        model_version: str,
        weights_sha256: str | None,
        inputs: Mapping[str, str | Path],
        parameters: Mapping[str, Any] | None = None,
    ) -> "Provenance":
        """Fingerprint each input path and build the block."""
        return cls(
            model_name=model_name,
            model_version=model_version,
            weights_sha256=weights_sha256,
            inputs={role: fingerprint(p) for role, p in inputs.items()},
            parameters=dict(parameters or {}),
        )


def _plain(value: Any) -> Any:
    """JSON form of the non-JSON values parameters may hold (mappings, sets, numpy scalars)."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, PurePath):
        raise InvalidInput(f"provenance: {value.as_posix()!r} is a file path; records hold no file names "
                           "(they may identify a patient): describe inputs with fingerprint()")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    raise InvalidInput(f"provenance: {value!r} ({type(value).__name__}) cannot be stored as JSON")


PROVENANCE_FIELDS = (
    "model_name",
    "model_version",
    "weights_sha256",
    "inputs",
    "parameters",
    "software_version",
    "timestamp_utc",
    "user",
    "host",
)
