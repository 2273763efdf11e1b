"""Whole-slide images read with OpenSlide: resolution, level choice and patch reading.

OpenSlide (openslide-python with the openslide-bin library) reads Aperio SVS, Hamamatsu NDPI,
3DHISTECH MRXS, generic tiled TIFF, DICOM WSI and more. A slide must say its resolution
(``openslide.mpp-x``/``mpp-y``); one that does not is refused unless the caller gives ``mpp``.

A patch is described by its level-0 top-left corner and its level-0 extent. It is read from the
pyramid level whose downsample is the largest one not coarser than the target spacing, then
resized, so a 0.25 um/px scan and a 0.5 um/px scan give patches of the same physical size.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image

from sarcoma_risk.errors import InvalidSlide, MissingDependency
from sarcoma_risk.provenance import fingerprint

log = logging.getLogger(__name__)

#: Two pixel sizes that differ by less than this share are taken as square pixels.
MPP_TOLERANCE = 0.02
#: A level is usable for a target downsample when it is at most this much coarser (rounding in pyramids).
LEVEL_TOLERANCE = 1.01
FORMATS = "SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM WSI and the other formats OpenSlide reads"


def _openslide() -> Any:
    try:
        import openslide  # lazy: optional extra; without it the caller gets MissingDependency, not an ImportError
    except ImportError as exc:  # the pathology extra is optional
        raise MissingDependency(
            "OpenSlide is not installed; install the pathology extra: pip install 'sarcoma-risk[pathology]' "
            f"(openslide-python and openslide-bin) ({exc})") from None
    return openslide


def _diagnose(path: Path) -> str:
    """Why OpenSlide could not open ``path``, from the file's first bytes and TIFF structure."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
    if size == 0:
        return "the file is empty"
    if head[:3] == b"\xff\xd8\xff":
        return "it is a plain JPEG image (a renamed photo or snapshot?), not a whole-slide image"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "it is a PNG image, not a whole-slide image"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _diagnose_tiff(path, size)
    return f"the format is not one OpenSlide reads ({FORMATS})"


def _diagnose_tiff(path: Path, size: int) -> str:
    tiff_log = logging.getLogger("tifffile")
    level = tiff_log.level
    tiff_log.setLevel(logging.CRITICAL)  # tifffile logs each bad offset; one message below says it all
    try:
        with tifffile.TiffFile(path) as tif:
            ends = [max((o + c for o, c in zip(p.dataoffsets, p.databytecounts)), default=0) for p in tif.pages]
            tiled = any(p.is_tiled for p in tif.pages)
    except Exception as exc:  # tifffile raises many kinds for damaged files; all mean "cannot parse"
        return f"it starts like a TIFF but its structure cannot be read ({exc}); the file is damaged or truncated"
    finally:
        tiff_log.setLevel(level)
    if any(end > size for end in ends):
        return (f"the TIFF is truncated: its image data runs past the end of the file ({size} bytes); "
                "copy the slide again from the scanner or archive")
    if not tiled:
        return "it is a TIFF without tiles (a plain image, not a pyramidal whole-slide image)"
    return f"it is a TIFF that no OpenSlide driver accepts ({FORMATS}); it may be damaged"


def resolve_slide_path(path: str | Path) -> Path:
    """The file OpenSlide should open: the path itself, or for a DICOM WSI folder one of its files."""
    path = Path(path)
    if not path.exists():
        raise InvalidSlide(f"{path}: no such slide file or folder")
    if path.is_dir():
        dicoms = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".dcm", ""))
        if not dicoms:
            raise InvalidSlide(f"{path}: a folder without DICOM files; give a slide file (.svs, .ndpi, .mrxs, "
                               ".tif) or a DICOM WSI series folder")
        return dicoms[0]  # OpenSlide finds the other instances of the series itself
    return path


def slide_fingerprint(path: str | Path) -> dict[str, Any]:
    """Content fingerprint of a slide, including the files it is made of.

    A DICOM WSI folder is fingerprinted as a folder; a 3DHISTECH ``.mrxs`` file together with the
    folder of the same name that holds its pixels (the ``.mrxs`` alone is a small index); any other
    slide as its file.
    """

    path = Path(path)
    if not path.exists():
        raise InvalidSlide(f"{path}: no such slide file or folder")
    own = fingerprint(path)
    data_dir = path.with_suffix("")
    if path.suffix.lower() == ".mrxs" and data_dir.is_dir():
        data = fingerprint(data_dir)
        combined = hashlib.sha256(f"{own['sha256']}:{data['sha256']}".encode()).hexdigest()
        return {"sha256": combined, "bytes": own["bytes"] + data["bytes"], "files": 1 + data["files"]}
    return own


@dataclass(frozen=True)
class PatchGeometry:
    """How patches are read: level-0 extent, pyramid level, size read at that level, model input size."""

    size0: int  # patch width = height in level-0 pixels
    level: int
    level_size: int  # pixels read at ``level`` (then resized to ``patch_px``)
    patch_px: int
    spacing_um: float  # actual um per model-input pixel (size0 * mpp / patch_px)


class Slide:
    """An open whole-slide image. Use as a context manager or call :meth:`close`.

    Parameters
    ----------
    path : path
        The slide file (or DICOM WSI folder).
    mpp : float, optional
        Microns per level-0 pixel, for slides that do not record it (overrides the file's value).
    cache : openslide.OpenSlideCache, optional
        A tile cache shared with other slides (see :func:`shared_cache`).
    """

    def __init__(self, path: str | Path, mpp: float | None = None, cache: Any = None) -> None:
        openslide = _openslide()
        self.path = Path(path)
        target = resolve_slide_path(self.path)
        try:
            self._handle = openslide.OpenSlide(str(target))
        except openslide.OpenSlideUnsupportedFormatError:
            raise InvalidSlide(f"{self.path}: cannot be opened as a whole-slide image: {_diagnose(target)}") from None
        except openslide.OpenSlideError as exc:
            raise InvalidSlide(f"{self.path}: OpenSlide could not read it ({exc}); the file may be damaged") from None
        if cache is not None:
            self._handle.set_cache(cache)
        self.properties = dict(self._handle.properties)
        self.vendor = self.properties.get(openslide.PROPERTY_NAME_VENDOR, "unknown")
        self.dimensions: tuple[int, int] = tuple(self._handle.dimensions)
        self.level_count: int = self._handle.level_count
        self.level_dimensions = [tuple(d) for d in self._handle.level_dimensions]
        self.level_downsamples = [float(d) for d in self._handle.level_downsamples]
        self.mpp, self.mpp_source = self._resolution(mpp)
        if min(self.dimensions) < 1:
            raise InvalidSlide(f"{self.path}: has no pixels ({self.dimensions[0]} x {self.dimensions[1]})")

    def _resolution(self, mpp: float | None) -> tuple[float, str]:
        recorded = [self.properties.get(k) for k in ("openslide.mpp-x", "openslide.mpp-y")]
        if mpp is not None:
            if not (isinstance(mpp, (int, float)) and math.isfinite(mpp) and 0.05 <= mpp <= 50):
                raise InvalidSlide(f"mpp: {mpp!r} is not a plausible pixel size; expected microns per pixel "
                                   "between 0.05 and 50 (0.25 at 40x, 0.5 at 20x)")
            if recorded[0]:
                log.warning("%s: using mpp %.4g given by the user instead of %s recorded in the slide",
                            self.path.name, mpp, recorded[0])
            return float(mpp), "user"
        try:
            mx, my = (float(v) for v in recorded)
        except (TypeError, ValueError):
            raise InvalidSlide(
                f"{self.path}: the slide does not record its resolution (openslide.mpp-x/mpp-y); give the "
                "microns per pixel of level 0 with --mpp (e.g. --mpp 0.25 for 40x, 0.5 for 20x)") from None
        if not (math.isfinite(mx) and math.isfinite(my) and mx > 0 and my > 0):
            raise InvalidSlide(f"{self.path}: recorded resolution {mx} x {my} um/px is not usable; give --mpp")
        if abs(mx - my) > MPP_TOLERANCE * max(mx, my):
            raise InvalidSlide(f"{self.path}: pixels are not square ({mx:g} x {my:g} um); patches would be "
                               "distorted. Give --mpp to treat them as square if that is right.")
        return (mx + my) / 2, "slide"

    # ---- context manager ---------------------------------------------------------------------

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> "Slide":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- geometry ----------------------------------------------------------------------------

    def best_level(self, downsample: float) -> int:
        """The coarsest level whose downsample does not exceed ``downsample`` (level 0 at least)."""
        usable = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * LEVEL_TOLERANCE]
        return max(usable, key=lambda i: self.level_downsamples[i]) if usable else 0

    def patch_geometry(self, spacing_um: float, patch_px: int) -> PatchGeometry:
        """How to read ``patch_px``-pixel patches at ``spacing_um`` microns per pixel."""
        if not (math.isfinite(spacing_um) and spacing_um > 0) or patch_px < 16:
            raise InvalidSlide(f"patch spacing {spacing_um} um/px and size {patch_px} px: expected spacing > 0 "
                               "and at least 16 px")
        size0 = max(1, round(patch_px * spacing_um / self.mpp))
        if size0 > min(self.dimensions):
            raise InvalidSlide(f"{self.path}: a {patch_px}-px patch at {spacing_um} um/px spans {size0} level-0 "
                               f"pixels, more than the slide's {self.dimensions[0]} x {self.dimensions[1]}")
        if spacing_um < self.mpp / LEVEL_TOLERANCE:
            log.warning("%s: target spacing %.3g um/px is finer than the scan (%.3g um/px); patches are upsampled",
                        self.path.name, spacing_um, self.mpp)
        level = self.best_level(size0 / patch_px)
        level_size = max(1, round(size0 / self.level_downsamples[level]))
        return PatchGeometry(size0, level, level_size, patch_px, size0 * self.mpp / patch_px)

    # ---- pixels ------------------------------------------------------------------------------

    def _region_rgb(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Any:
        """A region as an RGB PIL image; transparent pixels (outside the scanned area) composited over white.

        Pillow does the conversion: OpenSlide's RGBA image never goes through numpy unless some of
        it is transparent (a numpy round trip costs more than the conversion itself).
        """

        openslide = _openslide()
        try:
            region = self._handle.read_region((int(location[0]), int(location[1])), int(level),
                                              (int(size[0]), int(size[1])))
        except openslide.OpenSlideError as exc:
            raise InvalidSlide(f"{self.path}: cannot read pixels at {location} level {level} ({exc}); "
                               "the file is damaged or truncated") from None
        if region.getchannel("A").getextrema()[0] == 255:
            return region.convert("RGB")
        rgba = np.asarray(region)  # composite over white glass (openslide-python returns straight alpha)
        a = rgba[..., 3:].astype(np.uint16)
        return Image.fromarray(((rgba[..., :3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8))

    def read_rgb(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 (h, w, 3) of a region: ``location`` level-0, ``size`` at ``level``.

        Transparent pixels (outside the scanned area) come out white, as background glass.
        """
        return np.asarray(self._region_rgb(location, level, size))

    def read_patch(self, x: int, y: int, geometry: PatchGeometry) -> np.ndarray:
        """One patch as RGB uint8 (patch_px, patch_px, 3); (x, y) is its level-0 top-left corner."""

        image = self._region_rgb((x, y), geometry.level, (geometry.level_size, geometry.level_size))
        if geometry.level_size != geometry.patch_px:
            image = image.resize((geometry.patch_px, geometry.patch_px), Image.Resampling.BILINEAR)
        return np.asarray(image)

    def read_downsampled(self, downsample: float, block: int = 2048) -> np.ndarray:
        """The whole slide as RGB at ``downsample`` (level-0 pixels per output pixel), read in blocks.

        Memory is the output plus one block, whatever the slide's size and pyramid.
        """

        width, height = self.dimensions
        out_w, out_h = max(1, math.ceil(width / downsample)), max(1, math.ceil(height / downsample))
        level = self.best_level(downsample)
        level_ds = self.level_downsamples[level]
        out = np.empty((out_h, out_w, 3), np.uint8)
        step = max(1, int(block * level_ds / downsample))  # output pixels per block side
        for oy in range(0, out_h, step):
            for ox in range(0, out_w, step):
                bw, bh = min(step, out_w - ox), min(step, out_h - oy)
                x0, y0 = round(ox * downsample), round(oy * downsample)
                x1, y1 = min(width, round((ox + bw) * downsample)), min(height, round((oy + bh) * downsample))
                lw, lh = max(1, round((x1 - x0) / level_ds)), max(1, round((y1 - y0) / level_ds))
                rgb = self.read_rgb((x0, y0), level, (lw, lh))
                if (lw, lh) != (bw, bh):
                    rgb = np.asarray(Image.fromarray(rgb).resize((bw, bh), Image.Resampling.BILINEAR))
                out[oy:oy + bh, ox:ox + bw] = rgb
        return out

    def thumbnail(self, longest: int = 1024) -> tuple[np.ndarray, float]:
        """An RGB overview whose longest side is about ``longest`` pixels, and its downsample."""
        downsample = max(self.dimensions) / longest
        return self.read_downsampled(max(downsample, 1.0)), max(downsample, 1.0)


def open_slide(path: str | Path, mpp: float | None = None, cache: Any = None) -> Slide:
    """Open a whole-slide image; raises :class:`InvalidSlide` with the reason when it cannot be used."""
    return Slide(path, mpp, cache)


def shared_cache(megabytes: int) -> Any:
    """An OpenSlide tile cache of ``megabytes`` that several open slides can share."""
    return _openslide().OpenSlideCache(megabytes * 1024 * 1024)
