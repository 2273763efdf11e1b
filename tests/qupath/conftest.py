"""Fixtures of the QuPath bridge tests: phantom slides, a tiny real pathology model, a QuPath project layout.

The model is built once per session (about 2 s): a seeded ShuffleNetV2 x0.5 patch model reading
112-px patches at 1 um/px, whose batch-norm statistics are taken from real phantom patches (so its
probabilities vary with the tissue instead of sitting at one value), and a slide signature fit with
lifelines on tile counts of synthetic cases. It is not trained for recurrence, but it is the real
pipeline end to end: sha256-verified weights, OpenSlide reading, tissue detection, streaming
inference, the tile cache and the Cox signature.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sarcoma_risk.synthetic.wsi import write_phantom_slide

#: Image entries of the project layout fixture, as QuPath numbers them.
ENTRY_IDS = ("1", "2")


PATCH_CONFIG = {"architecture": "shufflenet_v2_x0_5", "patch_px": 112, "spacing_um": 1.0}


def _calibrated_patch_model(slide: Path):
    """A seeded random ShuffleNetV2 whose batch-norm statistics come from the patches of ``slide``."""
    import torch

    from sarcoma_risk.pathology.model import make_patch_model
    from sarcoma_risk.pathology.slide import open_slide
    from sarcoma_risk.pathology.tiling import plan_patches
    from sarcoma_risk.pathology.tissue import tissue_mask

    torch.manual_seed(0)
    model = make_patch_model(PATCH_CONFIG["architecture"], init="random")
    with open_slide(slide) as handle:
        grid = plan_patches(handle, tissue_mask(handle), spacing_um=PATCH_CONFIG["spacing_um"],
                            patch_px=PATCH_CONFIG["patch_px"])
        patches = np.stack([handle.read_patch(int(x), int(y), grid.geometry) for x, y in grid.coords])
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative average: one pass sets the statistics of these patches
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.from_numpy(patches).permute(0, 3, 1, 2).float() / 255.0)
        model.net.fc.weight.mul_(5.0)  # spread the probabilities over more of [0, 1]
    return model.eval()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory, phantom_slides) -> Path:
    """A weights folder with "pathology-patch" and "pathology-signature" (sha256 in its manifest)."""
    from sarcoma_risk.pathology.model import state_bytes
    from sarcoma_risk.pathology.pipeline import PATCH_KIND, PATCH_MODEL, SIGNATURE_KIND, SIGNATURE_MODEL
    from sarcoma_risk.pathology.signature import SlideSignature, tile_counts
    from sarcoma_risk.weights import WeightRegistry

    folder = tmp_path_factory.mktemp("weights")
    model = _calibrated_patch_model(phantom_slides["annotated"].slide)
    (folder / "patch.pt").write_bytes(state_bytes(model))
    registry = WeightRegistry(folder)
    patch = registry.register(PATCH_MODEL, "patch.pt", kind=PATCH_KIND, version="0.0.1-test", config=PATCH_CONFIG)
    rng = np.random.default_rng(0)
    risk = rng.normal(size=12)
    counts = [tile_counts(rng.beta(2 + max(r, -1.5), 2, size=200), 10, 20) for r in risk]
    time = rng.exponential(np.exp(-risk)) + 0.1
    event = rng.random(12) < 0.8
    signature = SlideSignature(penalizer=1.0).fit(counts, time, event)
    (folder / "signature.json").write_text(json.dumps(signature.to_dict()))
    registry.register(SIGNATURE_MODEL, "signature.json", kind=SIGNATURE_KIND, version="0.0.1-test",
                      config={"patch_model_sha256": patch["sha256"]})
    return folder


@pytest.fixture(scope="session")
def phantom_slides(tmp_path_factory) -> dict:
    """Two tiny phantom slides: "annotated" (with its Tumor GeoJSON) and "plain" (no annotation)."""
    folder = tmp_path_factory.mktemp("slides")
    return {
        "annotated": write_phantom_slide(folder / "annotated.svs", phenotype=0.8, centre="A", size="tiny", seed=3),
        "plain": write_phantom_slide(folder / "plain.svs", phenotype=-0.5, centre="B", size="tiny", seed=4,
                                     annotate=False),
    }


def write_project_layout(root: Path, slides: dict[str, Path]) -> Path:
    """A QuPath 0.5 project folder as QuPath writes it (project.qpproj, classes, per-image data files).

    ``slides`` maps entry id -> slide file. The data.qpdata files hold placeholder bytes: the
    backup and open-project checks handle them as opaque files, which is what they are to them.
    """
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for entry_id, slide in slides.items():
        images.append({
            "serverBuilder": {"builderType": "uri", "providerClassName":
                              "qupath.lib.images.servers.openslide.OpenslideServerBuilder",
                              "uri": slide.resolve().as_uri(), "args": []},
            "entryID": int(entry_id), "randomizedName": f"0000000{entry_id}-aaaa-bbbb-cccc-dddddddddddd",
            "imageName": slide.name, "metadata": {"case_id": f"STS-000{entry_id}"}})
        data = root / "data" / entry_id
        data.mkdir(parents=True)
        (data / "data.qpdata").write_bytes(b"\xac\xed\x00\x05" + entry_id.encode() * 64)
        (data / "server.json").write_text(json.dumps({"builderType": "uri", "uri": slide.resolve().as_uri()}))
        (data / "summary.json").write_text("{}")
        (data / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff\xe0 thumbnail")
    (root / "project.qpproj").write_text(json.dumps(
        {"version": "0.5.1", "createTimestamp": 1700000000000, "modifyTimestamp": 1700000000000,
         "uri": (root / "project.qpproj").resolve().as_uri(), "lastID": len(images), "images": images}, indent=2))
    (root / "classifiers").mkdir()
    (root / "classifiers" / "classes.json").write_text(json.dumps(
        {"pathClasses": [{"name": "Tumor", "color": [200, 0, 0]}]}))
    return root


@pytest.fixture
def project_layout(tmp_path, phantom_slides) -> Path:
    """A QuPath project folder with two images (entries 1 and 2), written in QuPath's layout."""
    return write_project_layout(tmp_path / "project", {"1": phantom_slides["annotated"].slide,
                                                       "2": phantom_slides["plain"].slide})


@pytest.fixture(scope="session")
def scored_slide(tiny_weights, phantom_slides):
    """The annotated phantom slide scored within its Tumor annotation (a real SlideResult)."""
    from sarcoma_risk.pathology.pipeline import load_models, score_slide

    slide = phantom_slides["annotated"]
    return score_slide(slide.slide, load_models(tiny_weights), annotation=slide.annotation, progress=False)
