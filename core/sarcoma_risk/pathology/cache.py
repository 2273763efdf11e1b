"""The tile cache: patch coordinates and probabilities of one slide under one model, in HDF5.

Layout (CLAM/WSInfer conventions, plus the scores)::

    /coords          int64 (n, 2)   level-0 top-left (x, y) of each patch
        attrs: patch_size (level-0 pixels), patch_level (0: coords and size are level-0),
               patch_spacing_um_px, read_level, model_input_px, mpp
    /probabilities   float32 (n,)   P(recurrence) per patch
    / attrs: format, complete, slide_sha256, model_sha256, precision, region_sha256 ("" for whole
             tissue), tissue_area_mm2, key

A cache file is named after a key that hashes the slide, the model's sha256, the patch geometry,
the precision and the tumor region, so a cache from other weights or another region is never
reused. It is written to a temporary file and renamed when complete, so an interrupted run leaves
no half cache behind.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import publish, temporary_beside
from sarcoma_risk.pathology.slide import PatchGeometry
from sarcoma_risk.provenance import sha256_bytes

log = logging.getLogger(__name__)

CACHE_FORMAT = "sarcoma-risk-tiles/1"


@dataclass(frozen=True)
class TileScores:
    """Scored patches of one slide."""

    coords: np.ndarray  # (n, 2) int64 level-0 top-left
    probabilities: np.ndarray  # (n,) float32
    geometry: PatchGeometry
    mpp: float
    slide_sha256: str
    model_sha256: str
    precision: str
    region_sha256: str | None
    tissue_area_mm2: float

    def __len__(self) -> int:
        return len(self.coords)


def cache_key(slide_sha256: str, model_sha256: str, geometry: PatchGeometry, precision: str,
              region_sha256: str | None) -> str:
    """A sha256 over everything that changes the tile scores."""
    parts = {"format": CACHE_FORMAT, "slide": slide_sha256, "model": model_sha256, "precision": precision,
             "region": region_sha256 or "", "size0": geometry.size0, "level": geometry.level,
             "level_size": geometry.level_size, "patch_px": geometry.patch_px}
    return sha256_bytes(json.dumps(parts, sort_keys=True).encode())


def cache_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"tiles-{key[:32]}.h5"


class CacheWriter:
    """Writes a tile cache batch by batch; :meth:`commit` makes it visible. Use as a context manager."""

    def __init__(self, path: str | Path, coords: np.ndarray, geometry: PatchGeometry, *, mpp: float,
                 slide_sha256: str, model_sha256: str, precision: str, region_sha256: str | None,
                 tissue_area_mm2: float, key: str) -> None:
        self.path = Path(path)
        # Filled batch by batch over a whole slide's scoring: published by commit() once complete.
        self._tmp = temporary_beside(self.path)
        self._file = h5py.File(self._tmp, "w")
        n = len(coords)
        dset = self._file.create_dataset("coords", data=np.asarray(coords, dtype=np.int64).reshape(n, 2))
        dset.attrs.update(patch_size=geometry.size0, patch_level=0, patch_spacing_um_px=geometry.spacing_um,
                          read_level=geometry.level, read_size=geometry.level_size,
                          model_input_px=geometry.patch_px, mpp=mpp)
        self._probs = self._file.create_dataset("probabilities", shape=(n,), dtype=np.float32,
                                                fillvalue=np.nan)
        self._file.attrs.update(format=CACHE_FORMAT, complete=False, slide_sha256=slide_sha256,
                                model_sha256=model_sha256, precision=precision, region_sha256=region_sha256 or "",
                                tissue_area_mm2=tissue_area_mm2, key=key)

    def write(self, start: int, probabilities: np.ndarray) -> None:
        self._probs[start:start + len(probabilities)] = probabilities

    def commit(self) -> Path:
        if np.isnan(self._probs[...]).any():
            raise InvalidInput(f"{self.path}: tile cache incomplete (some patches were not scored)")
        self._file.attrs["complete"] = True
        self._file.close()
        return publish(self._tmp, self.path)

    def abort(self) -> None:
        if self._file.id.valid:
            self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, exc_type: Any, *rest: object) -> None:
        if exc_type is not None or self._tmp.exists():
            self.abort()


def read_tile_cache(path: str | Path, *, model_sha256: str | None = None) -> TileScores:
    """Read a tile cache; refuses an incomplete one or one from other weights (``model_sha256``)."""

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            if attrs.get("format") != CACHE_FORMAT or not bool(attrs.get("complete")):
                raise InvalidInput(f"{path}: not a complete SarcomaRisk tile cache ({CACHE_FORMAT})")
            coords = f["coords"][...].astype(np.int64)
            c = dict(f["coords"].attrs)
            probabilities = f["probabilities"][...].astype(np.float32)
    except (OSError, KeyError) as exc:
        raise InvalidInput(f"{path}: cannot read the tile cache ({exc})") from None
    if model_sha256 is not None and attrs["model_sha256"] != model_sha256:
        raise InvalidInput(f"{path}: tile cache was made with other weights ({attrs['model_sha256'][:12]}...), "
                           f"not {model_sha256[:12]}...")
    if coords.shape != (len(probabilities), 2) or not np.isfinite(probabilities).all():
        raise InvalidInput(f"{path}: coords and probabilities do not match or hold NaN")
    geometry = PatchGeometry(int(c["patch_size"]), int(c["read_level"]), int(c["read_size"]),
                             int(c["model_input_px"]), float(c["patch_spacing_um_px"]))
    return TileScores(coords, probabilities, geometry, float(c["mpp"]), str(attrs["slide_sha256"]),
                      str(attrs["model_sha256"]), str(attrs["precision"]), str(attrs["region_sha256"]) or None,
                      float(attrs["tissue_area_mm2"]))


def load_cached(path: Path, model_sha256: str) -> TileScores | None:
    """A usable cache at ``path``, or None (absent, or damaged: then it is scored again)."""
    if not path.is_file():
        return None
    try:
        return read_tile_cache(path, model_sha256=model_sha256)
    except InvalidInput as exc:
        log.warning("ignoring tile cache: %s", exc)
        return None
