"""Phantom H&E whole-slide images: Aperio-style pyramidal TIFFs whose content follows a phenotype.

A phantom slide has tissue islands on a bright background. Tissue is rendered from stain
concentrations (Beer-Lambert: optical density = hematoxylin x H vector + eosin x E vector) with a
fibrous eosinophilic stroma and nuclei. Inside the tumor region the nuclei follow the pathology
phenotype (a standard-normal latent, higher = more aggressive): nuclear density, size, size spread
(pleomorphism), elongation and darkness (hyperchromasia) all rise monotonically with it. Each
region varies around the phenotype (a smooth random field shifts density and size locally), so a
patch is a noisy witness and a slide is a better one. Outside the tumor the stroma does not depend on
the phenotype. On the ``hard`` phantom nuclear density, mean area and darkness stay level, so the
slide's colour does not follow the phenotype; it moves pleomorphism, elongation and the disorder of
the fascicles instead (:func:`tumor_nuclei_structure`). Centres differ in stain colour: "A" uses the
standard H and E vectors, "B" shifted ones and a stronger stain, any other centre a shift derived
from its name.

With ``artefacts=True`` the slide also has pen strokes (saturated blue and green, sometimes black)
partly over tissue, and debris (small floaters and dust) on the background. With ``annotate=True``
the tumor region is written beside the slide as a QuPath GeoJSON annotation (class "Tumor", with a
hole where a non-tumor island sits inside it).

File format (read by OpenSlide's Aperio driver): page 0 is the full-resolution image in 256-px
JPEG tiles with the description ``Aperio Image Library ... |AppMag = 20|MPP = 0.5``, page 1 a stripped
thumbnail, then tiled levels downsampled 4x each. The renderer works in bands of rows, so memory
does not grow with the slide's full size, and the same seed always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tifffile
from PIL import Image, ImageDraw
from scipy.ndimage import gaussian_filter
from shapely.geometry import Polygon

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.pathology.geojson import Classification, QuPathObject, stable_uuid, write_geojson
from sarcoma_risk.synthetic.difficulty import RenderDifficulty, readout_stream, shown_phenotype

MPP = 0.5  # um per level-0 pixel (20x)
APP_MAG = 20
#: Level-0 size (width, height) per preset.
SIZES = {"tiny": (4000, 3000), "small": (12000, 9000), "medium": (32000, 24000)}
TILE = 256
CELL = 32  # the nucleus lattice: at most one nucleus per 16 x 16 um cell
LOWRES = 8  # region maps (tissue, tumor, noise, pen) at 4 um per pixel
BAND = 512  # rows rendered at once; a multiple of TILE, CELL and 4 x LOWRES
LEVEL_FACTOR = 4
JPEG_QUALITY = 70
H_MAX, E_MAX, Q = 2.2, 1.4, 64  # stain concentration ranges and their quantisation steps
TUMOR_CLASS = ("Tumor", (200, 0, 0))

#: Ruifrok & Johnston's H and E optical-density vectors (centre "A").
H_VECTOR = (0.650, 0.704, 0.286)
E_VECTOR = (0.072, 0.990, 0.105)


@dataclass(frozen=True)
class PhantomSlide:
    """Paths of a rendered slide and its tumor annotation (None when not annotated), and what was rendered."""

    slide: Path
    annotation: Path | None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StainProfile:
    """How a centre stains: unit OD vectors, a concentration scale and the glass background colour."""

    hematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]
    strength: float
    background: tuple[int, int, int]


def _unit(v: np.ndarray) -> tuple[float, float, float]:
    v = np.clip(np.asarray(v, dtype=float), 0.01, None)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def stain_profile(centre: str) -> StainProfile:
    """The stain of a centre: "A" standard; "B" bluer hematoxylin, redder eosin (vectors about 12-15
    degrees apart from A's), 15% stronger; any other centre a smaller shift derived from its name."""
    if not isinstance(centre, str) or not centre.strip():
        raise InvalidInput(f"centre: {centre!r} must be a non-empty centre code such as 'A'")
    if centre == "A":
        return StainProfile(H_VECTOR, E_VECTOR, 1.0, (242, 240, 244))
    if centre == "B":
        return StainProfile(_unit([0.52, 0.74, 0.42]), _unit([0.10, 0.92, 0.30]), 1.15, (236, 238, 232))
    digest = hashlib.sha256(f"stain:{centre}".encode()).digest()
    u = np.frombuffer(digest[:8], dtype=np.uint8) / 255.0 - 0.5
    return StainProfile(_unit(np.array(H_VECTOR) + 0.2 * u[:3]), _unit(np.array(E_VECTOR) + 0.2 * u[3:6]),
                        1.0 + 0.3 * u[6], (240, 240, 240))


@lru_cache(maxsize=4)
def _stain_lut(profile: StainProfile) -> np.ndarray:
    """RGB for every quantised (H, E) pair: (Q * Q, 3) uint8."""
    h = np.linspace(0, H_MAX, Q)[:, None, None] * np.array(profile.hematoxylin)
    e = np.linspace(0, E_MAX, Q)[None, :, None] * np.array(profile.eosin)
    glass = np.array(profile.background, dtype=float)
    rgb = glass * np.exp(-(h + e) * profile.strength)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(Q * Q, 3)


# ---- nuclei: a library of stamps, one nucleus per lattice cell --------------------------------

RADII = np.arange(3.0, 15.0)  # semi-axis scale in level-0 pixels (1.5-7 um)
ASPECTS = np.array([1.0, 1.4, 2.0, 3.0])
ANGLES = np.arange(8) * (np.pi / 8)
OFFSETS = np.array([-6.0, -2.0, 2.0, 6.0])


@lru_cache(maxsize=1)
def _stamps() -> np.ndarray:
    """Nucleus stamps (radius x aspect x angle x offset_y x offset_x, CELL, CELL), uint8 0-255, soft edged."""
    yy, xx = np.mgrid[0:CELL, 0:CELL].astype(np.float32) + np.float32(0.5 - CELL / 2)
    f32 = lambda a, axis: a.astype(np.float32).reshape([-1 if i == axis else 1 for i in range(7)])  # noqa: E731
    r, a, t, oy, ox = f32(RADII, 0), f32(ASPECTS, 1), f32(ANGLES, 2), f32(OFFSETS, 3), f32(OFFSETS, 4)
    dy, dx = yy - oy, xx - ox
    u = dx * np.cos(t) + dy * np.sin(t)
    v = -dx * np.sin(t) + dy * np.cos(t)
    q = (u / (r * np.sqrt(a))) ** 2 + (v / (r / np.sqrt(a))) ** 2
    core = np.clip((1.0 - q) * 3.0, 0.0, 1.0)  # a soft 1-2 px edge, as a scanner's optics give
    return np.round(core * 255).astype(np.uint8).reshape(-1, CELL, CELL)


def _stamp_index(radius: np.ndarray, aspect: np.ndarray, angle: np.ndarray, offset: np.ndarray) -> np.ndarray:
    ri = np.clip(np.round(radius - RADII[0]), 0, len(RADII) - 1).astype(np.int64)
    ai = np.abs(aspect[..., None] - ASPECTS).argmin(-1)
    ti = np.round(angle / (np.pi / 8)).astype(np.int64) % len(ANGLES)
    return ((ri * len(ASPECTS) + ai) * len(ANGLES) + ti) * len(OFFSETS) ** 2 + offset


# ---- the phenotype -> nuclei relation ---------------------------------------------------------

def tumor_nuclei_structure(phenotype: np.ndarray) -> dict[str, np.ndarray]:
    """Tumor-nucleus features of the hard phantom, cell by cell: density, mean nuclear area and darkness
    stay level (so the slide's colour does not follow the phenotype) while its architecture changes,
    from a low-grade spindle-cell pattern (elongated nuclei aligned in fascicles, uniform in size) to a
    high-grade pleomorphic one (rounder nuclei of varied size in every orientation).

    The mean radius shrinks as its spread grows so that the mean area, ``radius^2 * exp(2 sd^2)``,
    stays level; stamps keep their area whatever their elongation. ``disorder`` is the share of a
    half turn over which orientations spread about the slide's fascicle direction (0 aligned, 1 random).
    """
    aggressive = 1.0 / (1.0 + np.exp(-1.2 * phenotype))
    log_sd = 0.08 + 0.30 * aggressive
    level = np.ones_like(phenotype)
    return {
        "occupancy_logit": -0.4 * level,
        "radius_px": 6.5 * np.exp(-log_sd ** 2),
        "radius_log_sd": log_sd,
        "elongation": 1.6 * (1.0 - aggressive) + 0.2,
        "darkness": 0.85 * level,
        "disorder": aggressive,
    }


def tumor_nuclei(phenotype: float) -> dict[str, float]:
    """Expected tumor-nucleus features for a phenotype (each monotone increasing in it)."""
    return {
        "occupancy_logit": -0.4 + 0.55 * phenotype,
        "radius_px": 6.5 * math.exp(0.12 * phenotype),
        "radius_log_sd": 0.12 * math.exp(0.3 * phenotype),
        "elongation": 0.15 + 0.06 * (phenotype + 3.0),
        "darkness": 0.85 * math.exp(0.10 * phenotype),
    }


# ---- layout: islands, tumor, pen and debris (level-0 polygons rasterised at LOWRES) -------------

def _star(rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float, n: int = 48,
          wobble: float = 0.12) -> np.ndarray:
    """A smooth irregular closed outline (n x 2 level-0 points) around (cx, cy)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    radius = np.ones(n)
    for k in (2, 3, 5):
        radius += wobble / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    return np.stack([cx + rx * radius * np.cos(t), cy + ry * radius * np.sin(t)], axis=1)


def _raster(shape: tuple[int, int], polygons: list[tuple[np.ndarray, int]], width: int = 0) -> np.ndarray:
    """Draw level-0 polygons (or polylines when width > 0) on a LOWRES canvas; later ones overwrite."""

    canvas = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(canvas)
    for points, value in polygons:
        xy = [(float(x) / LOWRES, float(y) / LOWRES) for x, y in points]
        if width:
            draw.line(xy, fill=value, width=width, joint="curve")
        else:
            draw.polygon(xy, fill=value)
    return np.array(canvas)


@dataclass
class _Layout:
    tissue: np.ndarray  # LOWRES bool
    tumor: np.ndarray  # LOWRES bool
    density_noise: np.ndarray  # LOWRES float32, unit sd
    size_noise: np.ndarray
    pen: np.ndarray  # LOWRES uint8: 0 none, else index into PEN_COLOURS
    debris: np.ndarray  # LOWRES uint8: 0 none, else index into DEBRIS_COLOURS
    tumor_outline: np.ndarray  # level-0 polygon
    tumor_hole: np.ndarray

    def __post_init__(self) -> None:
        # stain baselines per region: tumor cytoplasm is paler in eosin and slightly amphophilic
        self.tissue_f = self.tissue.astype(np.float32)
        self.eosin_base = np.where(self.tumor, np.float32(0.45), np.float32(0.6)) * self.tissue_f
        self.hema_base = np.where(self.tumor, np.float32(0.10), np.float32(0.05)) * self.tissue_f


PEN_COLOURS = np.array([[0, 0, 0], [30, 70, 200], [25, 150, 70], [35, 35, 40]], dtype=np.float32)
DEBRIS_COLOURS = np.array([[0, 0, 0], [90, 80, 70], [200, 120, 170]], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field_ = gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma, mode="wrap")
    return field_ / max(float(field_.std(dtype=np.float64)), 1e-6)


def _layout(width: int, height: int, rng: np.random.Generator, artefacts: bool) -> _Layout:
    shape = (math.ceil(height / LOWRES), math.ceil(width / LOWRES))
    n_islands = 2 if width * height <= 20e6 else 3
    islands = []
    span = width / (n_islands + 0.6)
    for i in range(n_islands):
        scale = 1.0 if i == 0 else 0.65  # island 0 is the large one that holds the tumor
        cx = span * (0.8 + i * 1.05) + rng.uniform(-0.05, 0.05) * span
        cy = height * rng.uniform(0.45, 0.55)
        islands.append(_star(rng, cx, cy, 0.5 * span * scale, 0.36 * height * scale))
    tissue = _raster(shape, [(p, 1) for p in islands]) > 0
    cx, cy = islands[0].mean(axis=0)
    outline = _star(rng, cx + rng.uniform(-0.05, 0.05) * span, cy, 0.38 * span, 0.27 * height, wobble=0.2)
    hole = _star(rng, cx + 0.08 * span, cy + 0.04 * height, 0.06 * span, 0.05 * height, n=24, wobble=0.1)
    tumor = (_raster(shape, [(outline, 1), (hole, 0)]) > 0) & tissue
    pen = np.zeros(shape, np.uint8)
    debris = np.zeros(shape, np.uint8)
    if artefacts:
        strokes = []
        for colour in (1, 2, 3 if rng.uniform() < 0.5 else 1):
            start = np.array([rng.uniform(0, width), rng.uniform(0, height)])
            heading = rng.uniform(0, 2 * np.pi)
            points = [start]
            for _ in range(5):
                heading += rng.normal(0, 0.4)
                points.append(points[-1] + 0.12 * width * np.array([np.cos(heading), np.sin(heading)]))
            strokes.append((np.array(points), colour))
        for points, colour in strokes:
            pen = np.maximum(pen, _raster(shape, [(points, colour)], width=int(rng.uniform(18, 26))))
        specks = []
        for _ in range(int(rng.integers(8, 15))):
            sx, sy = rng.uniform(0, width), rng.uniform(0, height)
            size = rng.uniform(12, 50)  # um across: well under the 200 x 200 um tissue minimum
            specks.append((_star(rng, sx, sy, size, size * rng.uniform(0.5, 1.0), n=12, wobble=0.3),
                           int(rng.integers(1, 3))))
        debris = _raster(shape, specks)
        debris[tissue] = 0  # floaters lie on the glass
    return _Layout(tissue, tumor, _smooth_noise(rng, shape, 10), _smooth_noise(rng, shape, 14), pen, debris,
                   outline, hole)


# ---- rendering ----------------------------------------------------------------------------------

@lru_cache(maxsize=2)
def _textures(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A fibrous stroma texture and a fine grain texture (BAND x 512, float32), tiled over each band."""

    rng = np.random.default_rng([seed, 77])
    fibre = gaussian_filter(rng.normal(size=(BAND, 512)).astype(np.float32), (1.0, 7.0), mode="wrap")
    fibre /= fibre.std(dtype=np.float64)
    grain = rng.normal(size=(BAND, 512)).astype(np.float32)
    return fibre, grain


def _upsample(lowres: np.ndarray, rows: slice, width: int, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling of the LOWRES rows covering level-0 ``rows`` (band start aligned)."""
    part = lowres[rows.start // factor: math.ceil(rows.stop / factor)]
    full = np.repeat(np.repeat(part, factor, axis=0), factor, axis=1)
    return full[: rows.stop - rows.start, :width]


class _Renderer:
    def __init__(self, width: int, height: int, phenotype: float, centre: str, seed: int, artefacts: bool,
                 difficulty: RenderDifficulty | None = None):
        self.width, self.height = width, height
        self.phenotype = phenotype
        self.seed = seed
        self.profile = stain_profile(centre)
        self.layout = _layout(width, height, np.random.default_rng([seed, 1]), artefacts)
        # A harder phantom draws from its own stream, so the standard one keeps its bytes.
        self.difficulty = difficulty if difficulty is not None and difficulty.active else None
        self.shown = phenotype
        self.regional: np.ndarray | None = None
        if self.difficulty is not None:
            rng = readout_stream(seed)
            self.shown = shown_phenotype(phenotype, self.difficulty, rng)
            strength = float(np.exp(self.difficulty.nuisance_sd * rng.standard_normal()))
            self.profile = StainProfile(self.profile.hematoxylin, self.profile.eosin,
                                        self.profile.strength * strength, self.profile.background)
            # Regions of about 0.2 mm (sigma 25 low-resolution pixels of 4 um) with their own phenotype.
            self.regional = self.difficulty.regional_sd * _smooth_noise(rng, self.layout.tissue.shape, 25)
            self.fascicle_angle = float(rng.uniform(0.0, np.pi))
        self.lut = _stain_lut(self.profile)
        self.fibre, self.grain = _textures(seed)
        self.counts = {"tumor_nuclei": 0, "tumor_cells": 0, "radius_sum": 0.0, "radius_sq": 0.0}

    def _cells(self, rows: slice) -> tuple[np.ndarray, np.ndarray]:
        """Stamp index and darkness of every lattice cell in the band (same random draws for any phenotype)."""
        lay = self.layout
        cw = math.ceil(self.width / CELL)
        ch = math.ceil((rows.stop - rows.start) / CELL)
        step = CELL // LOWRES
        r0 = rows.start // LOWRES
        pick = lambda a: a[r0 + step // 2::step][:ch, step // 2::step][:, :cw]  # noqa: E731
        pad = lambda a: np.pad(a, ((0, ch - a.shape[0]), (0, cw - a.shape[1])), mode="edge")  # noqa: E731
        tissue, tumor = pad(pick(lay.tissue)), pad(pick(lay.tumor))
        dnoise, snoise = pad(pick(lay.density_noise)), pad(pick(lay.size_noise))
        rng = np.random.default_rng([self.seed, 2, rows.start])
        u_occ, z_r, z_a, u_t, z_h = (rng.random((ch, cw)), rng.normal(size=(ch, cw)), rng.normal(size=(ch, cw)),
                                     rng.random((ch, cw)), rng.normal(size=(ch, cw)))
        offset = rng.integers(0, len(OFFSETS) ** 2, size=(ch, cw))
        if self.regional is None:
            t = tumor_nuclei(self.phenotype)
            tumor_angle = u_t * np.pi
        else:
            t = tumor_nuclei_structure(self.shown + pad(pick(self.regional)))
            tumor_angle = self.fascicle_angle + t["disorder"] * (u_t - 0.5) * np.pi
        logit = np.where(tumor, t["occupancy_logit"] + 0.45 * dnoise, -1.7 + 0.2 * dnoise)
        occupied = tissue & (u_occ < 1.0 / (1.0 + np.exp(-logit)))
        radius = np.where(tumor, t["radius_px"] * np.exp(t["radius_log_sd"] * z_r + 0.08 * snoise),
                          4.5 * np.exp(0.08 * z_r))
        aspect = np.where(tumor, 1.0 + np.abs(z_a) * t["elongation"], 3.0)
        angle = np.where(tumor, tumor_angle, (u_t - 0.5) * 0.4) % np.pi  # stroma nuclei follow the fibres
        darkness = np.where(tumor, t["darkness"], 0.7) * np.exp(0.1 * z_h) * occupied
        in_tumor = occupied & tumor
        self.counts["tumor_nuclei"] += int(in_tumor.sum())
        self.counts["tumor_cells"] += int((tumor & tissue).sum())
        self.counts["radius_sum"] += float(radius[in_tumor].sum(dtype=np.float64))
        self.counts["radius_sq"] += float((radius[in_tumor].astype(np.float64) ** 2).sum())
        return _stamp_index(radius, aspect, angle, offset), darkness.astype(np.float32)

    def band(self, rows: slice) -> np.ndarray:
        """RGB uint8 pixels of level-0 rows ``rows`` (full width); rows.start is a multiple of BAND."""
        lay = self.layout
        h, w = rows.stop - rows.start, self.width
        index, darkness = self._cells(rows)
        ch, cw = index.shape
        # nuclear hematoxylin, built in cell layout (one multiply per cell) and then laid out as rows
        stamps = _stamps()[index].astype(np.float32)
        stamps *= (darkness * np.float32(1.6 / 255.0))[:, :, None, None]
        nuclei = stamps.transpose(0, 2, 1, 3).reshape(ch * CELL, cw * CELL)[:h, :w]
        tissue = _upsample(lay.tissue_f, rows, w, LOWRES)
        e_base = _upsample(lay.eosin_base, rows, w, LOWRES)
        h_base = _upsample(lay.hema_base, rows, w, LOWRES)
        reps = math.ceil(w / self.fibre.shape[1])
        fibre = np.tile(self.fibre[: h], (1, reps))[:, :w]  # bands start on texture rows 0
        grain = np.tile(self.grain[: h], (1, reps))[:, :w]
        noise = np.float32(0.03) * grain  # scanner noise and glass texture, also on the background
        eosin = (e_base + np.float32(0.18) * fibre) * tissue
        eosin *= np.float32(1.0) - np.float32(0.375) * np.minimum(nuclei, np.float32(1.6))
        eosin += noise
        hema = h_base + np.float32(0.03) * fibre * tissue
        hema += nuclei
        hema += noise
        hi = np.clip(hema * np.float32((Q - 1) / H_MAX) + np.float32(0.5), 0, Q - 1).astype(np.uint16)
        ei = np.clip(eosin * np.float32((Q - 1) / E_MAX) + np.float32(0.5), 0, Q - 1).astype(np.uint16)
        hi *= Q
        hi += ei
        rgb = self.lut[hi]
        for canvas, colours, alpha in ((lay.pen, PEN_COLOURS, 0.85), (lay.debris, DEBRIS_COLOURS, 0.9)):
            marks = _upsample(canvas, rows, w, LOWRES)
            if marks.any():
                where = marks > 0
                rgb[where] = (alpha * colours[marks[where]] + (1 - alpha) * rgb[where]).astype(np.uint8)
        return rgb


def _tiles(band: np.ndarray) -> Iterator[np.ndarray]:
    """The band's 256-px tiles, row-major, padded to full tiles (TIFF tiles are always whole)."""
    h, w = band.shape[:2]
    ph, pw = math.ceil(h / TILE) * TILE, math.ceil(w / TILE) * TILE
    padded = np.pad(band, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    for y in range(0, ph, TILE):
        for x in range(0, pw, TILE):
            yield padded[y:y + TILE, x:x + TILE]


def _shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Block mean by ``factor`` (a partial last block averages what it has)."""

    return np.asarray(Image.fromarray(image).reduce(factor))


def _description(width: int, height: int, extra: str) -> str:
    return (f"Aperio Image Library v12.0.15 \r\n{width}x{height} ({TILE}x{TILE}) {extra}|AppMag = {APP_MAG}"
            f"|MPP = {MPP}")


def write_phantom_slide(path: Path, *, phenotype: float, centre: str, size: str, seed: int,
                        artefacts: bool = False, annotate: bool = True,
                        dimensions: tuple[int, int] | None = None,
                        difficulty: RenderDifficulty | None = None) -> PhantomSlide:
    """Render a phantom H&E slide to ``path`` (.svs) and its tumor annotation beside it (.geojson).

    Parameters
    ----------
    path : Path
        The .svs file to write (its folder must exist); the annotation goes to ``path.with_suffix(".geojson")``.
    phenotype : float
        Standard-normal pathology phenotype; higher = denser, larger, more pleomorphic, darker tumor nuclei.
    centre : str
        Centre code; "A" standard stain, "B" and others shifted stain colour.
    size : {"tiny", "small", "medium"}
        Level-0 size about 4k x 3k, 12k x 9k or 32k x 24k pixels at 0.5 um/px.
    seed : int
        Everything random comes from it: the same arguments give the same bytes.
    artefacts : bool
        Add pen strokes and debris.
    annotate : bool
        Write the QuPath GeoJSON tumor annotation.
    dimensions : (width, height), optional
        Level-0 size instead of the preset's (benchmarks use it for slides between presets).
    difficulty : RenderDifficulty, optional
        Readout error, regional heterogeneity and stain-strength nuisance of the ``hard`` phantom
        (:mod:`sarcoma_risk.synthetic.difficulty`); None renders the standard phantom.

    Returns
    -------
    PhantomSlide
        Paths and ``stats``: tumor nuclear density (per mm^2), mean and CV of nuclear radius (um),
        tumor and tissue area (mm^2), size, mpp, levels, artefacts.
    """

    path = Path(path)
    if size not in SIZES:
        raise InvalidInput(f"size: {size!r} is not one of {', '.join(SIZES)}")
    if path.suffix.lower() != ".svs":
        raise InvalidInput(f"{path}: a phantom slide is an Aperio .svs file; give a path ending in .svs")
    if not math.isfinite(phenotype):
        raise InvalidInput(f"phenotype: {phenotype} is not a finite number")
    width, height = SIZES[size] if dimensions is None else (int(dimensions[0]), int(dimensions[1]))
    if min(width, height) < 1024:
        raise InvalidInput(f"dimensions: {width} x {height}; a phantom slide needs at least 1024 pixels a side")
    renderer = _Renderer(width, height, float(phenotype), centre, int(seed), artefacts, difficulty)
    levels = [(width, height)]
    while max(levels[-1]) > 2048:  # every preset has at least one reduced level
        levels.append((math.ceil(levels[-1][0] / LEVEL_FACTOR), math.ceil(levels[-1][1] / LEVEL_FACTOR)))
    reduced: list[np.ndarray] = []

    def level0_tiles() -> Iterator[np.ndarray]:
        for top in range(0, height, BAND):
            band = renderer.band(slice(top, min(top + BAND, height)))
            reduced.append(_shrink(band, LEVEL_FACTOR))
            yield from _tiles(band)

    jpeg = {"compression": "jpeg", "compressionargs": {"level": JPEG_QUALITY}, "photometric": "rgb",
            "metadata": None}
    with tifffile.TiffWriter(path) as tif:
        tif.write(level0_tiles(), shape=(height, width, 3), dtype=np.uint8, tile=(TILE, TILE),
                  description=_description(width, height, f"JPEG/RGB Q={JPEG_QUALITY}"), **jpeg)
        pyramid = [np.concatenate(reduced, axis=0)]
        for _ in levels[2:]:
            pyramid.append(_shrink(pyramid[-1], LEVEL_FACTOR))
        thumb = _thumbnail(pyramid[-1], 768)
        tif.write(thumb, description=_description(width, height, f"-> {thumb.shape[1]}x{thumb.shape[0]} - "),
                  rowsperstrip=16, **jpeg)
        for (lw, lh), image in zip(levels[1:], pyramid):
            tif.write(image, tile=(TILE, TILE), description=_description(
                width, height, f"-> {lw}x{lh} JPEG/RGB Q={JPEG_QUALITY}"), **jpeg)

    annotation = path.with_suffix(".geojson") if annotate else None
    if annotation is not None:
        _write_annotation(annotation, renderer, seed)
    elif path.with_suffix(".geojson").exists():
        path.with_suffix(".geojson").unlink()  # a stale annotation from an earlier render would mislead
    return PhantomSlide(path, annotation, _stats(renderer, levels, artefacts, centre, seed))


def _thumbnail(image: np.ndarray, longest: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = longest / max(h, w)
    if scale >= 1:
        return image
    return np.asarray(Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                    Image.Resampling.BILINEAR))


def _write_annotation(path: Path, renderer: _Renderer, seed: int) -> None:
    lay = renderer.layout
    clip = lambda p: np.clip(np.round(p), 0, [renderer.width - 1, renderer.height - 1])  # noqa: E731
    polygon = Polygon(clip(lay.tumor_outline), [clip(lay.tumor_hole)])
    write_geojson(path, [QuPathObject(polygon, classification=Classification(*TUMOR_CLASS), name="Tumor",
                                      id=stable_uuid("phantom-tumor", seed))])


def _stats(renderer: _Renderer, levels: list[tuple[int, int]], artefacts: bool, centre: str,
           seed: int) -> dict[str, Any]:
    c = renderer.counts
    lay = renderer.layout
    px_mm2 = (LOWRES * MPP / 1000.0) ** 2
    tumor_mm2 = c["tumor_cells"] * (CELL * MPP / 1000.0) ** 2
    n = max(c["tumor_nuclei"], 1)
    mean_r = c["radius_sum"] / n
    sd_r = math.sqrt(max(c["radius_sq"] / n - mean_r ** 2, 0.0))
    extra = {} if renderer.difficulty is None else {
        "phenotype_shown": renderer.shown, "stain_strength": renderer.profile.strength,
        "difficulty": renderer.difficulty.to_dict()}
    return {
        "phenotype": renderer.phenotype, "centre": centre, "seed": seed,
        "nuclear_density_per_mm2": c["tumor_nuclei"] / tumor_mm2 if tumor_mm2 else 0.0,
        "mean_nuclear_radius_um": mean_r * MPP, "nuclear_radius_cv": sd_r / mean_r if mean_r else 0.0,
        "tumor_area_mm2": tumor_mm2, "tissue_area_mm2": float(lay.tissue.sum()) * px_mm2,
        "width": renderer.width, "height": renderer.height, "mpp": MPP, "objective_power": APP_MAG,
        "level_downsamples": [round(levels[0][0] / w, 4) for w, _ in levels],
        "artefacts": artefacts, "pen_area_mm2": float((lay.pen > 0).sum()) * px_mm2, **extra,
    }
