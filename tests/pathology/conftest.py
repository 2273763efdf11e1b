"""Pathology fixtures, built once per session: a phantom slide cohort, odd slides, trained weights.

The cohort: 20 development cases from centre A and 8 validation cases from centre B (another stain),
tiny phantom slides whose phenotypes are spread evenly over [-2, 2]. Outcomes follow the phenotype
closely (time = 36 * exp(-z + 0.15 * noise) months, one case in six censored), so the outcome is
learnable from the slide and a held-out C-index says whether the image content was learnt.

The training configuration is tiny (ShuffleNetV2 x0.5 from random weights, 64-px patches at
2 um/px, 5 short epochs, 2 folds) so the whole run takes well under a minute on two cores.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.synthetic.wsi import write_phantom_slide

N_DEV, N_VAL = 20, 8
TINY_TRAINING = ["--folds", "2", "--architecture", "shufflenet_v2_x0_5", "--init", "random", "--patch-px", "64",
                 "--spacing", "2.0", "--epochs", "5", "--patches-per-epoch", "384", "--batch-size", "32",
                 "--lr", "0.002", "--val-fraction", "0.25", "--patience", "3", "--val-patches-per-slide", "32",
                 "--penalizer", "1.0", "--bins", "5", "--words", "5", "--seed", "0", "--no-progress"]


@dataclass
class PhantomSlideCohort:
    root: Path
    manifest: Path
    rows: list[dict[str, str]]
    phenotypes: dict[str, float]

    def slide(self, case_id: str) -> Path:
        row = next(r for r in self.rows if r["case_id"] == case_id)
        return self.root / row["slides"]

    def annotation(self, case_id: str) -> Path | None:
        row = next(r for r in self.rows if r["case_id"] == case_id)
        return self.root / row["annotations"] if row["annotations"] else None

    def outcomes(self) -> dict[str, tuple[float, bool]]:
        return {r["case_id"]: (float(r["time_months"]), r["event"] == "1") for r in self.rows}


@pytest.fixture(scope="session")
def slide_cohort(tmp_path_factory) -> PhantomSlideCohort:
    """The slides are rendered by two processes (each slide's bytes depend only on its own arguments)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    root = tmp_path_factory.mktemp("slide-cohort")
    rng = np.random.default_rng(7)
    phenotypes = np.concatenate([rng.permutation(np.linspace(-2, 2, N_DEV)),
                                 rng.permutation(np.linspace(-1.8, 1.8, N_VAL))])
    centres = ["A" if i < N_DEV else "B" for i in range(len(phenotypes))]
    # spawn, as generate_cohort renders: the parent may hold threads (OpenSlide, BLAS) that fork would copy.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        slides = [job.result() for job in [
            pool.submit(write_phantom_slide, root / f"slide-{i:02d}.svs", phenotype=float(z), centre=centres[i],
                        size="tiny", seed=1000 + i, artefacts=i % 4 == 0, annotate=i % 5 != 0)
            for i, z in enumerate(phenotypes)]]
    rows = []
    for i, (z, rendered) in enumerate(zip(phenotypes, slides)):
        split = "development" if i < N_DEV else "validation"
        centre = centres[i]
        time = 36 * np.exp(-z + 0.15 * rng.normal())
        rows.append({"case_id": f"PX-{i:03d}", "centre": centre, "split": split, "time_months": f"{time:.2f}",
                     "event": "0" if i % 6 == 5 else "1", "slides": rendered.slide.name,
                     "annotations": rendered.annotation.name if rendered.annotation else ""})
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return PhantomSlideCohort(root, manifest, rows, {r["case_id"]: float(z) for r, z in zip(rows, phenotypes)})


@dataclass
class TrainedPathology:
    weights: Path
    run: dict
    stdout: str


@pytest.fixture(scope="session")
def trained_pathology(slide_cohort, tmp_path_factory) -> TrainedPathology:
    """`sarcoma-risk train pathology` on the phantom cohort with the tiny configuration."""
    import contextlib
    import io

    from sarcoma_risk.cli import main

    out = tmp_path_factory.mktemp("pathology-weights")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(["train", "pathology", "--manifest", str(slide_cohort.manifest), "--out", str(out),
                       "--json", *TINY_TRAINING])
    assert status == 0
    return TrainedPathology(out, json.loads(buffer.getvalue()), buffer.getvalue())


@pytest.fixture(scope="session")
def odd_slides(tmp_path_factory, slide_cohort) -> dict[str, Path]:
    """Slides that must be refused or need --mpp: truncated, a renamed JPEG, blank glass, no MPP."""
    import tifffile
    from PIL import Image

    root = tmp_path_factory.mktemp("odd-slides")
    data = slide_cohort.slide("PX-001").read_bytes()
    (root / "truncated.svs").write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(root / "photo.jpg")
    (root / "photo.svs").write_bytes((root / "photo.jpg").read_bytes())
    glass = np.full((1536, 2048, 3), 241, np.uint8) + rng.integers(0, 3, (1536, 2048, 3), dtype=np.uint8)
    description = "Aperio Image Library v12.0.15 \r\n2048x1536 (256x256) JPEG/RGB Q=70|AppMag = 20|MPP = 0.5"
    with tifffile.TiffWriter(root / "blank.svs") as tif:
        tif.write(glass, tile=(256, 256), photometric="rgb", compression="jpeg", description=description,
                  metadata=None)
        tif.write(glass[::8, ::8], photometric="rgb", compression="jpeg", metadata=None,
                  description="Aperio Image Library v12.0.15 \r\n2048x1536 -> 256x192 - ")
    # a generic pyramidal TIFF without resolution tags: OpenSlide reads it but cannot know its MPP
    pixels = level0_pixels(slide_cohort.slide("PX-002"))
    with tifffile.TiffWriter(root / "no-mpp.tif") as tif:
        tif.write(pixels, tile=(256, 256), photometric="rgb", compression="jpeg", metadata=None)
        tif.write(pixels[::4, ::4], tile=(256, 256), photometric="rgb", compression="jpeg", metadata=None,
                  subfiletype=1)
    return {"truncated": root / "truncated.svs", "jpeg": root / "photo.svs", "blank": root / "blank.svs",
            "no_mpp": root / "no-mpp.tif"}


def level0_pixels(path: Path) -> np.ndarray:
    """Level 0 of a slide as an RGB array (tiny slides only)."""
    import openslide

    with openslide.OpenSlide(path) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
