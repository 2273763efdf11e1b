"""GeoJSON in and out without a QuPath project: export a scored slide, check imported annotations.

Export: the tiles of a scored slide come from its tile cache (HDF5, one file per slide, weights and
tumor region; see :mod:`sarcoma_risk.pathology.cache`). The tumor annotations the bridge scored it
with are kept beside the caches by content (``regions/<sha256>.geojson``, the region sha256 the cache
records), so the export finds them without any file name in the case record.

Import: QuPath-exported annotations are read as ``sarcoma-risk score-slide`` will read them
(:func:`sarcoma_risk.pathology.regions.read_tumor_region`) and checked against the slide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py

from qupath_bridge.results import tile_objects, tumor_annotations
from sarcoma_risk.errors import CaseNotFound, InvalidInput
from sarcoma_risk.pathology.cache import CACHE_FORMAT, read_tile_cache
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES
from sarcoma_risk.pathology.geojson import ObjectType, read_geojson, write_geojson
from sarcoma_risk.pathology.regions import read_tumor_region, region_sha256
from sarcoma_risk.pathology.slide import open_slide
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.records import open_store

#: Folder, beside the tile caches, that keeps scored tumor annotations by content.
REGIONS_FOLDER = "regions"


def region_file(cache_dir: Path, sha256: str) -> Path:
    return Path(cache_dir) / REGIONS_FOLDER / f"{sha256}.geojson"


@dataclass(frozen=True)
class CacheEntry:
    """A complete tile cache file and what it was made from."""

    path: Path
    slide_sha256: str
    model_sha256: str
    region_sha256: str | None
    mtime: float


def find_caches(cache_dirs: Iterable[Path]) -> list[CacheEntry]:
    """Complete SarcomaRisk tile caches in ``cache_dirs`` (damaged or foreign HDF5 files are skipped)."""

    found = []
    for folder in cache_dirs:
        folder = Path(folder)
        if not folder.is_dir():
            raise InvalidInput(f"--cache {folder}: no such folder")
        for path in sorted(folder.glob("tiles-*.h5")):
            try:
                with h5py.File(path, "r") as handle:
                    attrs = dict(handle.attrs)
            except OSError:
                continue
            if attrs.get("format") != CACHE_FORMAT or not bool(attrs.get("complete")):
                continue
            found.append(CacheEntry(path, str(attrs["slide_sha256"]), str(attrs["model_sha256"]),
                                    str(attrs["region_sha256"]) or None, path.stat().st_mtime))
    return found


def choose_cache(caches: Sequence[CacheEntry], slide_sha256: str, *, model_sha256: str | None = None,
                 region_sha256: str | None = None, what: str = "the slide") -> CacheEntry:
    """The cache of one slide: the one matching the given model/region, else the newest."""
    mine = [c for c in caches if c.slide_sha256 == slide_sha256]
    if model_sha256 is not None:
        mine = [c for c in mine if c.model_sha256 == model_sha256 and c.region_sha256 == region_sha256]
    if not mine:
        raise InvalidInput(f"{what}: no tile cache of this slide (sha256 {slide_sha256[:12]}...) in the --cache "
                           "folder(s); score it first (sarcoma-qupath score or score-image), or point --cache at "
                           "the folder its scoring used")
    return max(mine, key=lambda c: c.mtime)


@dataclass(frozen=True)
class Exported:
    path: Path
    n_tiles: int
    n_annotations: int


def export_slide(out: Path, *, caches: Sequence[Path], case_id: str | None = None, slide: Path | None = None,
                 store: str | Path | None = None, annotations: Path | None = None,
                 classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> Exported:
    """Write the tiles and tumor annotations of a scored slide to ``out`` (one FeatureCollection).

    ``annotations`` is the GeoJSON the slide was scored with, for slides scored by ``sarcoma-risk
    score-slide`` (the bridge keeps its own), and ``classes`` the annotation classes it was scored
    with: the file must be that very file and the classes those (same region sha256).
    """

    entries = find_caches(caches)
    if slide is not None:
        if not Path(slide).is_file():
            raise InvalidInput(f"--slide {slide}: no such slide file")
        chosen = choose_cache(entries, sha256_file(slide), what=str(slide))
    else:
        chosen = _case_cache(entries, case_id, store)  # type: ignore[arg-type]
    tiles = read_tile_cache(chosen.path)
    regions: list[Any] = []
    if chosen.region_sha256 is not None:
        region = region_file(chosen.path.parent, chosen.region_sha256)
        if annotations is not None:
            if region_sha256(sha256_file(annotations), classes) != chosen.region_sha256:
                raise InvalidInput(f"--annotations {annotations}: not the annotation file (and --annotation-class) "
                                   f"this slide was scored with (region sha256 {chosen.region_sha256[:12]}...)")
            regions = tumor_annotations(read_geojson(annotations), classes)
        elif region.is_file():  # kept by the bridge: exactly the annotations the slide was scored with
            regions = [o for o in read_geojson(region) if o.object_type is ObjectType.ANNOTATION]
        else:
            raise InvalidInput(f"{chosen.path}: the slide was scored within a tumor annotation that is not kept "
                               "beside the cache; give the file it was scored with as --annotations")
    write_geojson(out, [*regions, *tile_objects(tiles)])
    return Exported(Path(out), len(tiles), len(regions))


def _case_cache(entries: Sequence[CacheEntry], case_id: str, store: str | Path | None) -> CacheEntry:
    with open_store(store, mode="r") as handle:
        record = handle.get(case_id)
    slides = (record.pathology or {}).get("slides") or []
    if not slides:
        raise CaseNotFound(f"case {case_id}: no scored slide in its record (pathology section empty)")
    if len(slides) > 1:
        listed = ", ".join(s["slide_sha256"][:12] + "..." for s in slides)
        raise InvalidInput(f"case {case_id} has {len(slides)} slides ({listed}); QuPath imports objects per image, "
                           "so export one at a time with --slide FILE")
    entry = slides[0]
    return choose_cache(entries, entry["slide_sha256"], model_sha256=entry.get("patch_model_sha256"),
                        region_sha256=entry.get("annotation_sha256"), what=f"case {case_id}")


@dataclass(frozen=True)
class CheckedAnnotations:
    """What :func:`check_annotations` found."""

    source: Path
    n_objects: int
    n_used: int
    area_mm2: float
    slide_size: tuple[int, int]
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"objects": self.n_objects, "tumor_annotations": self.n_used, "area_mm2": round(self.area_mm2, 4),
                "slide_width": self.slide_size[0], "slide_height": self.slide_size[1], "sha256": self.sha256}

    def summary(self) -> str:
        return (f"{self.source}: {self.n_used} annotation(s) of {self.n_objects} object(s) make the tumor region, "
                f"{self.area_mm2:.2f} mm^2 on the {self.slide_size[0]} x {self.slide_size[1]} slide")


def check_annotations(geojson: Path, slide: Path, *, mpp: float | None = None, out: Path | None = None,
                      classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> CheckedAnnotations:
    """Check QuPath-exported annotations as score-slide reads them (annotations of ``classes``); with
    ``out``, write the used ones."""

    objects = read_geojson(geojson)
    with open_slide(slide, mpp) as handle:
        size, slide_mpp = handle.dimensions, handle.mpp
    region = read_tumor_region(geojson, size, classes=classes)
    area_mm2 = region.geometry.area * (slide_mpp / 1000.0) ** 2
    if out is not None:
        chosen = tumor_annotations(objects, classes) or [o for o in objects if o.object_type.value == "annotation"
                                                         and o.geometry.area > 0]
        write_geojson(out, chosen)
    return CheckedAnnotations(Path(geojson), len(objects), region.n_annotations, area_mm2, size, region.sha256)
