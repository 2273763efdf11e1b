"""One slide end to end: open, find tissue, lay patches, score them (or reuse the tile cache), aggregate.

:func:`load_models` reads the patch model and the slide signature from a weight registry (sha256
verified). :func:`compute_tile_scores` turns a slide into :class:`~.cache.TileScores` with any patch
model (training uses it for fold models too); :func:`score_slide` adds the signature score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sarcoma_risk.device import resolve_device
from sarcoma_risk.errors import InvalidModel
from sarcoma_risk.pathology.cache import CacheWriter, TileScores, cache_key, cache_path, load_cached
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES
from sarcoma_risk.pathology.infer import score_patches
from sarcoma_risk.pathology.model import PatchRunner, make_patch_model, probe_patches
from sarcoma_risk.pathology.regions import read_tumor_region
from sarcoma_risk.pathology.signature import SlideSignature
from sarcoma_risk.pathology.slide import open_slide, slide_fingerprint as fingerprint_slide
from sarcoma_risk.pathology.tiling import plan_patches
from sarcoma_risk.pathology.tissue import tissue_mask
from sarcoma_risk.precision import PATCH_PROBABILITY_TOLERANCE, PrecisionCheck, guard_precision
from sarcoma_risk.stopwatch import Stopwatch, timed
from sarcoma_risk.weights import WeightRegistry

log = logging.getLogger(__name__)

PATCH_MODEL = "pathology-patch"
PATCH_KIND = "shufflenetv2-patch"
SIGNATURE_MODEL = "pathology-signature"
SIGNATURE_KIND = "slide-signature"


@dataclass
class PathologyModels:
    """A loaded patch model (as a runner) and slide signature, with their identities."""

    runner: Callable[[np.ndarray], np.ndarray]
    model_sha256: str
    model_version: str
    architecture: str
    patch_px: int
    spacing_um: float
    precision: str
    signature: SlideSignature | None = None
    signature_sha256: str | None = None
    signature_version: str | None = None
    precision_check: PrecisionCheck | None = None


def load_models(weights_dir: str | Path, *, precision: str = "fp32", device: str = "auto",
                need_signature: bool = True) -> PathologyModels:
    """The pathology models of a weight registry, each checked against its recorded sha256.

    The patch model runs on ``device`` ("auto": CUDA, else MPS, else the CPU). A reduced
    ``precision`` is first compared with fp32 on a fixed probe batch (:mod:`sarcoma_risk.precision`);
    beyond the tolerance the models run in fp32 and ``precision`` says so.
    """

    registry = WeightRegistry(weights_dir)
    state, entry = registry.load_torch(PATCH_MODEL)
    if entry["kind"] != PATCH_KIND:
        raise InvalidModel(f"{registry.manifest_path}: {PATCH_MODEL!r} is of kind {entry['kind']!r}, expected {PATCH_KIND!r}")
    config = entry.get("config") or {}
    try:
        architecture, patch_px, spacing = config["architecture"], int(config["patch_px"]), float(config["spacing_um"])
    except (KeyError, TypeError, ValueError):
        raise InvalidModel(f"{registry.manifest_path}: {PATCH_MODEL!r} config needs architecture, patch_px and "
                           "spacing_um") from None
    network, target = make_patch_model(architecture, state=state), resolve_device(device)
    check = guard_precision(lambda p: PatchRunner(network, p, target)(probe_patches(patch_px)), precision,
                            model=PATCH_MODEL, quantity="patch probability", tolerance=PATCH_PROBABILITY_TOLERANCE)
    runner = PatchRunner(network, check.used, target)
    models = PathologyModels(runner, entry["sha256"], entry["version"], architecture, patch_px, spacing,
                             runner.precision.value, precision_check=check)
    if need_signature:
        data, sig_entry = registry.load_json(SIGNATURE_MODEL)
        if sig_entry["kind"] != SIGNATURE_KIND:
            raise InvalidModel(f"{registry.manifest_path}: {SIGNATURE_MODEL!r} is of kind {sig_entry['kind']!r}, "
                               f"expected {SIGNATURE_KIND!r}")
        trained_on = (sig_entry.get("config") or {}).get("patch_model_sha256")
        if trained_on and trained_on != entry["sha256"]:
            raise InvalidModel(f"{registry.manifest_path}: the slide signature was fit on patch model "
                               f"{trained_on[:12]}..., not on {entry['sha256'][:12]}...; retrain it with "
                               "`sarcoma-risk train pathology-signature`")
        models.signature = SlideSignature.from_dict(data)
        models.signature_sha256, models.signature_version = sig_entry["sha256"], sig_entry["version"]
    return models


@dataclass
class TileRun:
    """What :func:`compute_tile_scores` found besides the scores."""

    slide_fingerprint: dict[str, Any]
    mpp_source: str
    restricted_to_annotation: bool
    annotation_sha256: str | None
    n_annotations: int
    cache_file: Path | None
    from_cache: bool
    annotation_classes: tuple[str, ...] = ()  # the QuPath classes that made the region (none: whole tissue)


def compute_tile_scores(slide_path: str | Path, runner: Callable[[np.ndarray], np.ndarray], model_sha256: str, *,
                        spacing_um: float, patch_px: int, precision: str = "fp32",
                        annotation: str | Path | None = None,
                        annotation_classes: Sequence[str] = DEFAULT_TUMOR_CLASSES, mpp: float | None = None,
                        cache_dir: str | Path | None = None, slide_fingerprint: dict[str, Any] | None = None,
                        batch_size: int = 64, workers: int = 2, progress: bool = True,
                        stopwatch: Stopwatch | None = None) -> tuple[TileScores, TileRun]:
    """Score every kept patch of a slide with ``runner``, reusing a matching tile cache in ``cache_dir``.

    With ``annotation``, only patches in its annotations of ``annotation_classes`` (QuPath class
    names, see :mod:`sarcoma_risk.pathology.classes`) are scored. With ``stopwatch``, the stages
    (opening, annotation, fingerprint, cache lookup, tissue detection, tiling, streaming and its
    parts, see :func:`~sarcoma_risk.pathology.infer.score_patches`, cache commit) are timed into it.
    """

    with timed(stopwatch, "open_slide"):
        slide = open_slide(slide_path, mpp)
    with slide:
        with timed(stopwatch, "annotation"):
            region = (read_tumor_region(annotation, slide.dimensions, classes=annotation_classes)
                      if annotation is not None else None)
        geometry = slide.patch_geometry(spacing_um, patch_px)
        with timed(stopwatch, "fingerprint"):
            slide_print = slide_fingerprint or fingerprint_slide(slide_path)
        key = cache_key(slide_print["sha256"], model_sha256, geometry, precision, region.sha256 if region else None)
        target = cache_path(cache_dir, key) if cache_dir is not None else None
        run = TileRun(slide_print, slide.mpp_source, region is not None, region.sha256 if region else None,
                      region.n_annotations if region else 0, target, False, region.classes if region else ())
        with timed(stopwatch, "tile_cache_lookup"):
            cached = load_cached(target, model_sha256) if target is not None else None
        if cached is not None:
            run.from_cache = True
            return cached, run
        with timed(stopwatch, "tissue_detection"):
            tissue = tissue_mask(slide)
        with timed(stopwatch, "tiling"):
            grid = plan_patches(slide, tissue, spacing_um=spacing_um, patch_px=patch_px, region=region)
        meta = dict(mpp=slide.mpp, slide_sha256=slide_print["sha256"], model_sha256=model_sha256, precision=precision,
                    region_sha256=run.annotation_sha256, tissue_area_mm2=grid.tissue_area_mm2)
        stream = dict(batch_size=batch_size, workers=workers, progress=progress, stopwatch=stopwatch)
        if target is None:
            with timed(stopwatch, "streaming"):
                probabilities = score_patches(slide, grid.coords, geometry, runner, **stream)
        else:
            with CacheWriter(target, grid.coords, geometry, key=key, **meta) as writer:
                with timed(stopwatch, "streaming"):
                    probabilities = score_patches(slide, grid.coords, geometry, runner, on_batch=writer.write,
                                                  **stream)
                with timed(stopwatch, "tile_cache_commit"):
                    writer.commit()
    return TileScores(grid.coords, probabilities, geometry, **meta), run


@dataclass
class SlideResult:
    """A scored slide: tiles, counts for pooling, the slide's own signature score and provenance facts."""

    tiles: TileScores
    run: TileRun
    counts: dict[str, list[int]]
    score: float

    @property
    def mean_probability(self) -> float:
        return float(np.mean(self.tiles.probabilities))


def score_slide(slide_path: str | Path, models: PathologyModels, *, annotation: str | Path | None = None,
                annotation_classes: Sequence[str] = DEFAULT_TUMOR_CLASSES, mpp: float | None = None,
                cache_dir: str | Path | None = None, batch_size: int = 64,
                workers: int = 2, progress: bool = True, stopwatch: Stopwatch | None = None,
                slide_fingerprint: dict[str, Any] | None = None) -> SlideResult:
    """Tile scores and the slide's signature score (log relative hazard; higher = riskier).

    ``stopwatch`` times the stages (:func:`compute_tile_scores`, then ``signature``).
    ``slide_fingerprint`` spares hashing the slide again when the caller has just done so.
    """
    if models.signature is None:
        raise InvalidModel("scoring a slide needs the pathology-signature model; load it with need_signature=True")
    tiles, run = compute_tile_scores(slide_path, models.runner, models.model_sha256, spacing_um=models.spacing_um,
                                     patch_px=models.patch_px, precision=models.precision, annotation=annotation,
                                     annotation_classes=annotation_classes, mpp=mpp, cache_dir=cache_dir,
                                     slide_fingerprint=slide_fingerprint, batch_size=batch_size, workers=workers,
                                     progress=progress, stopwatch=stopwatch)
    with timed(stopwatch, "signature"):
        counts = models.signature.counts(tiles.probabilities)
        score = float(models.signature.predict([counts])[0])
    return SlideResult(tiles, run, counts, score)
