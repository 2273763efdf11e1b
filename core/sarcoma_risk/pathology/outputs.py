"""What a scored slide leaves for people and other tools: tile table, QuPath tiles, heatmap.

- CSV with WSInfer's columns ``minx,miny,width,height,prob_recurrence`` (level-0 pixels);
- QuPath GeoJSON tiles (File > Import objects): objectType "tile", locked, no classification, one
  measurement ``recurrence_probability``, stable UUIDs (same slide and tile -> same id), which QuPath
  shows with Measure > Show measurement maps;
- a heatmap PNG: tile probabilities over the slide thumbnail, with a colour bar.

Every file is written through a temporary file and a rename.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from sarcoma_risk.fileio import atomic_write_bytes
from sarcoma_risk.pathology.cache import TileScores

MEASUREMENT = "recurrence_probability"
CSV_COLUMNS = ("minx", "miny", "width", "height", "prob_recurrence")


def write_tile_csv(path: str | Path, tiles: TileScores) -> Path:
    """The tile table (one row per patch, level-0 pixels)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    size = tiles.geometry.size0
    for (x, y), p in zip(tiles.coords.tolist(), tiles.probabilities.tolist()):
        writer.writerow((x, y, size, size, f"{p:.6f}"))
    return atomic_write_bytes(Path(path), buffer.getvalue().encode("utf-8"))


def tile_objects(tiles: TileScores) -> list[Any]:
    """QuPath tile objects for the patches (see the module docstring)."""
    from shapely.geometry import box

    from sarcoma_risk.pathology.geojson import ObjectType, QuPathObject, stable_uuid

    size = tiles.geometry.size0
    return [QuPathObject(box(x, y, x + size, y + size), object_type=ObjectType.TILE, is_locked=True,
                         measurements={MEASUREMENT: round(p, 6)}, id=stable_uuid(tiles.slide_sha256, x, y, size))
            for (x, y), p in zip(tiles.coords.tolist(), tiles.probabilities.tolist())]


def write_tile_geojson(path: str | Path, tiles: TileScores) -> Path:
    """QuPath GeoJSON tiles for File > Import objects."""
    from sarcoma_risk.pathology.geojson import dumps

    return atomic_write_bytes(Path(path), (dumps(tile_objects(tiles)) + "\n").encode("utf-8"))


def probability_map(tiles: TileScores, shape: tuple[int, int], downsample: float) -> np.ndarray:
    """Tile probabilities painted on a (h, w) grid of ``downsample`` level-0 pixels; NaN where no tile."""
    out = np.full(shape, np.nan, dtype=np.float32)
    size = tiles.geometry.size0
    for (x, y), p in zip(tiles.coords.tolist(), tiles.probabilities.tolist()):
        r0, c0 = int(y / downsample), int(x / downsample)
        r1, c1 = max(r0 + 1, int((y + size) / downsample)), max(c0 + 1, int((x + size) / downsample))
        out[r0:r1, c0:c1] = p
    return out


def write_heatmap(path: str | Path, thumbnail: np.ndarray, downsample: float, tiles: TileScores,
                  title: str = "P(recurrence) per tile") -> Path:
    """A PNG of the tile probabilities (inferno colour map, half transparent) over the thumbnail."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    h, w = thumbnail.shape[:2]
    heat = np.ma.masked_invalid(probability_map(tiles, (h, w), downsample))
    figure = Figure(figsize=(8, 8 * h / w + 0.6), dpi=max(100, int(w / 8)))
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.02, 0.02, 0.84, 0.9))
    axes.imshow(thumbnail, interpolation="nearest")
    shown = axes.imshow(heat, cmap="inferno", vmin=0.0, vmax=1.0, alpha=0.55, interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(title, fontsize=10)
    figure.colorbar(shown, cax=figure.add_axes((0.88, 0.1, 0.03, 0.74)), label="probability")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return atomic_write_bytes(Path(path), buffer.getvalue())
