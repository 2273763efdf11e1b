"""The patch model, its runner, streaming inference with a bounded queue, and the tile cache."""

from __future__ import annotations

import copy
import threading
import time
import urllib.error

import numpy as np
import pytest
import torch

from sarcoma_risk.errors import InvalidInput, InvalidModel, InvalidSlide, WeightsNotFound
from sarcoma_risk.pathology.augment import AugmentConfig, augment_batch
from sarcoma_risk.pathology.cache import CacheWriter, cache_key, cache_path, load_cached, read_tile_cache
from sarcoma_risk.pathology.infer import iter_batches, score_patches
from sarcoma_risk.pathology.model import PatchRunner, make_patch_model, state_bytes, state_sha256
from sarcoma_risk.pathology.slide import PatchGeometry, open_slide
from sarcoma_risk.pathology.tiling import plan_patches
from sarcoma_risk.pathology.tissue import tissue_mask


@pytest.mark.parametrize("architecture", ["shufflenet_v2_x1_0", "shufflenet_v2_x0_5"])
def test_the_patch_model_gives_one_logit_per_patch(architecture):
    torch.manual_seed(0)
    model = make_patch_model(architecture, "random").eval()
    with torch.no_grad():
        logits = model(torch.rand(3, 3, 64, 64))
    assert logits.shape == (3,)
    assert model.net.fc.out_features == 1


def test_initial_weights_load_from_a_state_dict_file_and_bad_files_are_refused(tmp_path):
    torch.manual_seed(1)
    source = make_patch_model("shufflenet_v2_x0_5", "random")
    path = tmp_path / "init.pt"
    torch.save(source.net.state_dict(), path)
    loaded = make_patch_model("shufflenet_v2_x0_5", path)
    assert state_sha256(loaded) == state_sha256(source)
    with pytest.raises(InvalidModel, match="another architecture"):
        make_patch_model("shufflenet_v2_x1_0", path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidModel, match="not a loadable"):
        make_patch_model("shufflenet_v2_x0_5", tmp_path / "junk.pt")
    with pytest.raises(WeightsNotFound):
        make_patch_model("shufflenet_v2_x0_5", tmp_path / "absent.pt")


def test_imagenet_initialisation_without_network_says_what_to_do(monkeypatch, tmp_path):
    import torchvision

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    # this machine has no network either way; the patch makes the failure immediate and certain
    monkeypatch.setattr(torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1.__class__, "get_state_dict",
                        offline)
    with pytest.raises(WeightsNotFound, match="could not be downloaded.*--init random"):
        make_patch_model("shufflenet_v2_x0_5", "imagenet")


def test_the_runner_gives_deterministic_probabilities_and_bf16_stays_close():
    torch.manual_seed(2)
    model = make_patch_model("shufflenet_v2_x0_5", "random")
    batch = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    fp32 = PatchRunner(model)(batch)
    assert fp32.dtype == np.float32 and ((fp32 >= 0) & (fp32 <= 1)).all()
    np.testing.assert_array_equal(fp32, PatchRunner(model)(batch))
    assert np.abs(PatchRunner(model, "bf16")(batch) - fp32).max() < 0.05
    with pytest.raises(InvalidInput, match="precision"):
        PatchRunner(model, "fp8")


def test_two_models_built_from_one_seed_save_the_same_checkpoint_bytes_and_another_seed_does_not():
    def built_from(seed):
        torch.manual_seed(seed)
        return make_patch_model("shufflenet_v2_x0_5", "random")

    first, second, other = built_from(3), built_from(3), built_from(4)
    assert first is not second
    assert state_bytes(first) == state_bytes(second)
    assert state_sha256(first) == state_sha256(second)
    assert state_bytes(other) != state_bytes(first)


def test_augmentation_is_seeded_and_keeps_the_value_range():
    x = torch.rand(4, 3, 32, 32)
    a = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(5))
    b = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and not torch.allclose(a, x)


def test_streaming_returns_every_patch_in_order_and_matches_direct_reading(slide_cohort):
    with open_slide(slide_cohort.slide("PX-004")) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=2.0, patch_px=64)
        batches = list(iter_batches(grid.coords, lambda xy: slide.read_patch(int(xy[0]), int(xy[1]), grid.geometry),
                                    64, batch_size=16, workers=2))
        assert [s for s, _ in batches] == list(range(0, len(grid), 16))
        patches = np.concatenate([b for _, b in batches])
        for i in (0, len(grid) // 2, len(grid) - 1):
            x, y = grid.coords[i]
            np.testing.assert_array_equal(patches[i], slide.read_patch(int(x), int(y), grid.geometry))
        mean_red = score_patches(slide, grid.coords, grid.geometry, lambda b: b[..., 0].mean(axis=(1, 2)) / 255,
                                 batch_size=16, progress=False)
        np.testing.assert_allclose(mean_red, patches[..., 0].mean(axis=(1, 2)) / 255, rtol=1e-6)


def test_the_model_gets_the_cores_the_readers_leave_while_streaming_and_torch_is_restored(slide_cohort):
    from sarcoma_risk.pathology.infer import available_cores

    seen = []

    def runner(batch):
        seen.append(torch.get_num_threads())
        return batch[..., 0].mean(axis=(1, 2)) / 255

    before = torch.get_num_threads()
    with open_slide(slide_cohort.slide("PX-004")) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=2.0, patch_px=64)
        score_patches(slide, grid.coords, grid.geometry, runner, batch_size=16, workers=1, progress=False)
    assert set(seen) == {max(1, min(before, available_cores() - 1))}
    assert torch.get_num_threads() == before


def test_the_progress_bar_stays_out_of_logs_when_stderr_is_not_a_terminal(slide_cohort, capsys):
    with open_slide(slide_cohort.slide("PX-004")) as slide:
        grid = plan_patches(slide, tissue_mask(slide), spacing_um=2.0, patch_px=64)
        score_patches(slide, grid.coords, grid.geometry, lambda b: b[..., 0].mean(axis=(1, 2)) / 255,
                      batch_size=16, progress=True)
    assert "scoring patches" not in capsys.readouterr().err  # pytest's stderr is a file, as in a batch job


def test_reading_stays_a_bounded_number_of_batches_ahead_of_the_model():
    produced = []
    lock = threading.Lock()

    def read(i):
        with lock:
            produced.append(i)
        return np.zeros((8, 8, 3), np.uint8)

    ahead = []
    for start, batch in iter_batches(list(range(400)), read, 8, batch_size=10, workers=2, queue_batches=2):
        time.sleep(0.002)  # a slow model
        with lock:
            ahead.append(len(produced) - (start + len(batch)))
    # the queue holds 2 batches, the producer holds at most one more: never more than 3 batches ahead
    assert max(ahead) <= 30


def test_a_reading_error_reaches_the_caller_and_stops_the_readers():
    def read(i):
        if i == 37:
            raise InvalidSlide("slide.svs: cannot read pixels at (0, 0) level 0; the file is damaged")
        return np.zeros((8, 8, 3), np.uint8)

    with pytest.raises(InvalidSlide, match="damaged"):
        for _ in iter_batches(list(range(100)), read, 8, batch_size=10):
            pass
    assert not [t for t in threading.enumerate() if t.name == "patch-batcher"]


def test_the_tile_cache_is_keyed_by_model_and_written_atomically(tmp_path):
    geometry = PatchGeometry(128, 0, 128, 64, 1.0)
    coords = np.array([[0, 0], [128, 0], [0, 128]], dtype=np.int64)
    key_a = cache_key("slide", "model-a", geometry, "fp32", None)
    assert key_a != cache_key("slide", "model-b", geometry, "fp32", None)
    assert key_a != cache_key("slide", "model-a", geometry, "fp32", "region")
    path = cache_path(tmp_path, key_a)
    meta = dict(mpp=0.5, slide_sha256="slide", model_sha256="model-a", precision="fp32", region_sha256=None,
                tissue_area_mm2=1.5, key=key_a)
    with pytest.raises(RuntimeError):
        with CacheWriter(path, coords, geometry, **meta) as writer:
            writer.write(0, np.array([0.1, 0.2], np.float32))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []  # nothing half-written is left behind
    with CacheWriter(path, coords, geometry, **meta) as writer:
        writer.write(0, np.array([0.1, 0.2, 0.3], np.float32))
        writer.commit()
    tiles = read_tile_cache(path)
    np.testing.assert_allclose(tiles.probabilities, [0.1, 0.2, 0.3])
    assert tiles.tissue_area_mm2 == 1.5 and tiles.region_sha256 is None
    import h5py

    with h5py.File(path) as f:  # the CLAM/WSInfer attribute names
        assert {"patch_size", "patch_level", "patch_spacing_um_px"} <= set(f["coords"].attrs)
    with pytest.raises(InvalidInput, match="other weights"):
        read_tile_cache(path, model_sha256="model-b")
    assert load_cached(path, "model-b") is None


def test_folding_batch_norms_keeps_the_probabilities_and_leaves_the_model_untouched():
    from sarcoma_risk.pathology.model import fold_batch_norm

    torch.manual_seed(4)
    model = make_patch_model("shufflenet_v2_x0_5", "random")
    # Batch norms with non-trivial statistics, as after training, so folding has something to fold.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 3, 64, 64)
    with torch.inference_mode():
        reference = model(x)
        folded = fold_batch_norm(copy.deepcopy(model))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        torch.testing.assert_close(folded(x), reference, rtol=1e-4, atol=1e-4)
    runner = PatchRunner(model)
    batch = np.random.default_rng(1).integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    with torch.inference_mode():
        plain = torch.sigmoid(model(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0)).numpy()
    np.testing.assert_allclose(runner(batch), plain, atol=1e-5)
    after = model.state_dict()  # the runner folds a copy (it only moves the model to channels-last, as before)
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in runner.model.modules())


@pytest.mark.parametrize("architecture", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0"])
def test_the_network_is_torchvisions_shufflenet_keys_initial_weights_and_outputs(architecture):
    import torchvision

    from sarcoma_risk.pathology.shufflenet import shufflenet_v2

    torch.manual_seed(11)
    ours = shufflenet_v2(architecture, num_classes=1).eval()
    torch.manual_seed(11)
    reference = getattr(torchvision.models, architecture)(num_classes=1).eval()
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)  # same names in the same order: checkpoints load either way
    assert all(mine[k].shape == theirs[k].shape and torch.equal(mine[k], theirs[k]) for k in mine)
    # Trained-like batch-norm statistics, then the same weights in both: the same outputs.
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 1.5)
    ours.load_state_dict(reference.state_dict())
    x = torch.rand(2, 3, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_scoring_a_slide_does_not_import_torchvision(tmp_path, slide_cohort):
    import subprocess
    import sys

    # A fresh interpreter: importing torchvision costs about a second of start-up (it imports torch._dynamo).
    code = ("import sys, torch\n"
            "from sarcoma_risk.pathology.model import PatchRunner, make_patch_model\n"
            "from sarcoma_risk.pathology.pipeline import compute_tile_scores\n"
            f"tiles, _ = compute_tile_scores({str(slide_cohort.slide('PX-001'))!r}, "
            "PatchRunner(make_patch_model('shufflenet_v2_x0_5')), 'x' * 64, spacing_um=4.0, patch_px=32, progress=False)\n"
            "assert len(tiles) > 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'matplotlib')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
