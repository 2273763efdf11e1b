"""Patch-model training: checkpoints and --resume, and patch reading in DataLoader worker processes."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from sarcoma_risk.cli import main
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.pathology.crossfit import fit_identity, load_cohort
from sarcoma_risk.pathology.loader import PatchDataset, PatchReader
from sarcoma_risk.pathology.train import PatchTrainer, SlidePool, TrainConfig, prepare_slides
from sarcoma_risk.provenance import sha256_file
from sarcoma_risk.resume import TrainingCheckpoint

from checkpointcrash import Crash, crash_after_epoch_of  # noqa: I001
from sarcoma_risk.runtime import TrainRuntime

SMALL = TrainConfig(architecture="shufflenet_v2_x0_5", init="random", patch_px=64, spacing_um=2.0, epochs=3,
                    patches_per_epoch=96, batch_size=32, val_fraction=0.25, patience=3, val_patches_per_slide=12,
                    learning_rate=0.002)


@pytest.fixture
def crash_after_epoch(monkeypatch):
    """``crash_after_epoch(k)``: training dies just after saving its checkpoint of epoch k (once)."""
    return lambda k: crash_after_epoch_of(monkeypatch, k)


@pytest.fixture(scope="module")
def cases(slide_cohort):
    """The development cases of the phantom slide cohort, their patch grids laid once."""
    development = load_cohort(slide_cohort.manifest).development
    pool = SlidePool()
    try:
        prepare_slides(development, SMALL, pool)
    finally:
        pool.close()
    return development


def train(cases, checkpoint=None, runtime=None):
    pool = SlidePool()
    try:
        return PatchTrainer(SMALL, runtime=runtime).fit(cases, pool, checkpoint=checkpoint)
    finally:
        pool.close()


def same_weights(a, b) -> bool:
    first, second = a.model.state_dict(), b.model.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_patch_model_resumed_after_a_crash_ends_with_the_same_weights(cases, tmp_path, crash_after_epoch):
    identity = fit_identity(cases, SMALL)
    whole = train(cases, TrainingCheckpoint(tmp_path / "whole.pt", identity))
    crash_after_epoch(1)
    with pytest.raises(Crash):
        train(cases, TrainingCheckpoint(tmp_path / "split.pt", identity))
    resumed = train(cases, TrainingCheckpoint(tmp_path / "split.pt", identity, resume=True))
    assert same_weights(whole, resumed)
    assert resumed.history == whole.history and resumed.best_epoch == whole.best_epoch


def test_a_checkpoint_of_other_cases_is_not_resumed_from(cases, tmp_path):
    path = tmp_path / "fit.pt"
    TrainingCheckpoint(path, fit_identity(cases, SMALL)).save(1, {})
    with pytest.raises(InvalidInput, match=r"written by another run \(it differs in data_sha256\)"):
        TrainingCheckpoint(path, fit_identity(cases[:-1], SMALL), resume=True).load()


def test_the_reader_thread_count_is_not_part_of_a_fits_identity(cases):
    from dataclasses import replace

    assert fit_identity(cases, SMALL) == fit_identity(cases, replace(SMALL, workers=7))
    assert fit_identity(cases, SMALL) != fit_identity(cases, replace(SMALL, learning_rate=0.01))


def test_a_dataset_pickles_without_its_open_slides_and_reads_again(cases):
    refs = [ref for case in cases[:2] for ref in case.slides]
    dataset = PatchDataset([(ref.path, ref.geometry) for ref in refs])
    x, y = refs[0].coords[0]
    first = dataset[(0, int(x), int(y))]
    assert dataset._open  # opened in this process on first use
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._open == {} and copy._cache is None
    assert (copy[(0, int(x), int(y))] == first).all()
    dataset.close()
    copy.close()


def test_worker_processes_read_the_same_batches_as_threads(cases):
    refs = [ref for case in cases for ref in case.slides]
    items = [(ref, int(x), int(y)) for ref in refs[:6] for x, y in ref.coords[:9]]
    pool = SlidePool()
    threads = PatchReader(pool, refs, threads=2)
    workers = PatchReader(pool, refs, num_workers=2)
    try:
        expected = list(threads.batches(items, 16))
        for _ in range(2):  # the persistent workers serve a second pass too
            got = list(workers.batches(items, 16))
            assert [s for s, _ in got] == [s for s, _ in expected] == list(range(0, len(items), 16))
            assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected))
    finally:
        workers.close()
        pool.close()


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA GPU on this machine (torch sees none); the GPU path is untested here")
def test_for_a_gpu_worker_processes_deliver_page_locked_batches_equal_to_the_threads_ones(cases):
    refs = [ref for case in cases for ref in case.slides]
    items = [(ref, int(x), int(y)) for ref in refs[:4] for x, y in ref.coords[:8]]
    pool = SlidePool()
    threads = PatchReader(pool, refs, threads=2)
    workers = PatchReader(pool, refs, num_workers=2, pin_memory=True)
    try:
        expected = list(threads.batches(items, 16))
        got = list(workers.batches(items, 16))
        assert all(batch.is_pinned() for _, batch in got)
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected))
    finally:
        workers.close()
        pool.close()


@pytest.mark.slow
def test_training_with_worker_processes_gives_the_weights_of_training_with_threads(cases):
    from dataclasses import replace

    short = replace(SMALL, epochs=1)
    pool = SlidePool()
    try:
        threads = PatchTrainer(short).fit(cases, pool)
        workers = PatchTrainer(short, runtime=TrainRuntime(num_workers=2)).fit(cases, pool)
    finally:
        pool.close()
    assert same_weights(threads, workers) and threads.history == workers.history


TINY = ["--folds", "0", "--architecture", "shufflenet_v2_x0_5", "--init", "random", "--patch-px", "64",
        "--spacing", "2.0", "--epochs", "2", "--patches-per-epoch", "96", "--batch-size", "32", "--lr", "0.002",
        "--val-fraction", "0.25", "--val-patches-per-slide", "12", "--bins", "5", "--words", "5", "--no-progress"]


def test_train_pathology_resume_after_a_crash_registers_the_same_patch_model(slide_cohort, tmp_path, capsys,
                                                                              crash_after_epoch):
    cache = ["--cache-dir", str(tmp_path / "tiles")]  # shared: the same weights score a slide once
    argv = ["train", "pathology", "--manifest", str(slide_cohort.manifest), *TINY, *cache]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    crash_after_epoch(1)
    with pytest.raises(Crash):
        main([*argv, "--out", str(tmp_path / "split")])
    assert (tmp_path / "split" / "checkpoints" / "pathology-final.pt").is_file()
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "split"), "--resume", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "resuming after epoch 1" in err
    assert sha256_file(tmp_path / "split" / "pathology-patch.pt") == sha256_file(tmp_path / "whole" / "pathology-patch.pt")
    run = json.loads(out)
    assert run["runtime"]["resumed"] is True and run["runtime"]["num_workers"] == 0


def test_the_paper_preset_falls_back_to_random_weights_offline_and_says_so(slide_cohort, tmp_path, capsys):
    from sarcoma_risk.pathology.model import imagenet_file

    if imagenet_file("shufflenet_v2_x1_0").is_file():
        pytest.skip("torchvision's ImageNet weights are in this machine's torch hub cache")
    status = main(["train", "pathology", "--manifest", str(slide_cohort.manifest), "--out", str(tmp_path),
                   "--preset", "paper", "--patch-px", "64", "--spacing", "2.0", "--folds", "0", "--epochs", "1",
                   "--patches-per-epoch", "32", "--val-patches-per-slide", "4", "--bins", "4", "--words", "4",
                   "--no-progress", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    run = json.loads(out)
    assert run["initialisation"]["requested"] == "auto" and run["initialisation"]["used"] == "random"
    assert "not in the torch hub cache" in run["initialisation"]["reason"]
    assert run["config"]["architecture"] == "shufflenet_v2_x1_0" and run["config"]["init"] == "random"
    assert (run["config"]["patch_px"], run["config"]["spacing_um"]) == (64, 2.0)  # given options win over the preset


def test_auto_init_takes_imagenet_weights_already_in_the_torch_hub_cache_and_downloads_nothing(tmp_path,
                                                                                               monkeypatch):
    from sarcoma_risk.pathology.model import imagenet_file, make_patch_model, resolve_init
    from sarcoma_risk.pathology.shufflenet import shufflenet_v2

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache; no network is reached from here
    arch = "shufflenet_v2_x0_5"
    path = imagenet_file(arch)
    assert path.parent == tmp_path / "hub" / "checkpoints"
    assert resolve_init("auto", arch)[0] == "random"
    torch.manual_seed(3)  # stands in for torchvision's file: an ImageNet-shaped network (1000 classes)
    cached = shufflenet_v2(arch, num_classes=1000).state_dict()
    path.parent.mkdir(parents=True)
    torch.save(cached, path)
    init, reason = resolve_init("auto", arch)
    assert init == "imagenet" and f"({path.name}) are in the torch hub cache" in reason
    loaded = make_patch_model(arch, init).net.state_dict()
    backbone = [k for k in cached if not k.startswith("fc.")]
    assert backbone and all(torch.equal(loaded[k], cached[k]) for k in backbone)
    assert loaded["fc.weight"].shape[0] == 1  # the single-logit head is new
