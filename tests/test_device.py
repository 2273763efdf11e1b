"""--device and --precision: resolving the device, refusing what is missing, autocast, gradient scaling."""

from __future__ import annotations

import pytest
import torch

from sarcoma_risk.device import (
    Device,
    Precision,
    autocast,
    check_precision,
    grad_scaler,
    pin_memory,
    resolve_device,
    to_device,
)
from sarcoma_risk.errors import DeviceUnavailable, InvalidInput

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU on this machine (torch sees none); the GPU path is untested here")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_auto_prefers_cuda_then_mps_then_the_cpu():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(Device.AUTO).type == expected
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_device_that_is_not_one_of_the_four_is_refused_with_the_nearest_suggested():
    with pytest.raises(InvalidInput, match=r"device: 'cdua' is not valid; expected one of auto, cpu, cuda, mps\. "
                                           r"Did you mean 'cuda'\?"):
        resolve_device("cdua")


@no_cuda
def test_asking_for_cuda_without_a_gpu_says_what_is_missing():
    with pytest.raises(DeviceUnavailable) as caught:
        resolve_device("cuda")
    message = str(caught.value)
    if torch.version.cuda is None:
        assert "built without CUDA" in message
    else:  # a CUDA build of torch on a machine without a visible GPU (this machine's case)
        assert f"has CUDA {torch.version.cuda} support but sees no CUDA device" in message
        assert "nvidia-smi" in message and "CUDA_VISIBLE_DEVICES" in message
    assert "use --device cpu" in message


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_asking_for_mps_where_there_is_none_says_why():
    with pytest.raises(DeviceUnavailable, match="device 'mps': .*MPS"):
        resolve_device("mps")


def test_precision_choices_are_checked_with_a_suggestion():
    cpu = torch.device("cpu")
    assert check_precision("bf16", cpu) is Precision.BF16
    assert check_precision("fp16", cpu) is Precision.FP16
    with pytest.raises(InvalidInput, match=r"precision: 'bf61' is not valid; expected one of fp32, bf16, fp16\. "
                                           r"Did you mean 'bf16'\?"):
        check_precision("bf61", cpu)


def test_autocast_runs_convolutions_in_the_reduced_precision_and_fp32_untouched():
    cpu = torch.device("cpu")
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.randn(2, 3, 8, 8)
    with autocast(cpu, "fp32"):
        assert conv(x).dtype == torch.float32
    with autocast(cpu, "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(cpu, Precision.FP16):
        assert conv(x).dtype == torch.float16


def test_only_fp16_gets_an_active_gradient_scaler():
    cpu = torch.device("cpu")
    assert grad_scaler(cpu, "fp16").is_enabled()
    assert not grad_scaler(cpu, "bf16").is_enabled() and not grad_scaler(cpu, "fp32").is_enabled()


def test_on_the_cpu_batches_are_neither_pinned_nor_copied():
    batch = torch.zeros(4, 3)
    assert not pin_memory(torch.device("cpu"))
    assert to_device(batch, torch.device("cpu")) is batch


@needs_cuda
def test_on_a_gpu_batches_are_pinned_and_arrive_on_the_device():
    device = resolve_device("cuda")
    assert pin_memory(device)
    moved = to_device(torch.arange(6.0), device)
    assert moved.device.type == "cuda" and torch.equal(moved.cpu(), torch.arange(6.0))


@no_cuda
def test_train_all_refuses_a_missing_gpu_before_rendering_the_cohort(tmp_path, capsys):
    from sarcoma_risk.cli import main

    status = main(["train", "all", "--out", str(tmp_path / "weights"), "--work", str(tmp_path / "work"),
                   "--device", "cuda"])
    assert status == 1 and "device 'cuda':" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()


def test_train_all_under_torchrun_says_which_commands_to_launch_instead(tmp_path, capsys, monkeypatch):
    from sarcoma_risk.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    status = main(["train", "all", "--out", str(tmp_path / "weights"), "--work", str(tmp_path / "work")])
    assert status == 1 and "launch `train radiology` and `train pathology` with torchrun" in capsys.readouterr().err


@needs_cuda
def test_the_shipped_models_score_on_a_gpu_as_on_the_cpu():
    from pathlib import Path

    import numpy as np

    from sarcoma_risk.pathology.model import PatchRunner, probe_patches
    from sarcoma_risk.pathology.pipeline import load_models
    from sarcoma_risk.radiology.checkpoint import load_model
    from sarcoma_risk.radiology.infer import probe_volumes

    weights = Path(__file__).resolve().parents[1] / "weights"
    radiology = load_model(weights, "t2fs+t1ce")[0]
    volumes = probe_volumes(radiology.preprocess)
    on_cpu = radiology.predict(volumes)
    assert np.allclose(radiology.to(resolve_device("cuda")).predict(volumes), on_cpu, atol=1e-4)
    patch_model = load_models(weights, device="cpu", need_signature=False).runner.model
    patches = probe_patches(112)
    on_cpu = PatchRunner(patch_model, "fp32")(patches)
    assert np.allclose(PatchRunner(patch_model, "fp32", resolve_device("cuda"))(patches), on_cpu, atol=1e-4)


@needs_cuda
def test_radiology_training_runs_on_a_gpu_and_its_run_log_names_the_gpu(phantom_cohort_tiny, tmp_path, capsys):
    import json

    from sarcoma_risk.cli import main

    status = main(["train", "radiology", "--manifest", str(phantom_cohort_tiny.manifest), "--out", str(tmp_path),
                   "--preset", "tiny", "--folds", "2", "--epochs", "2", "--device", "cuda", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    runtime = json.loads(out)["runtime"]
    assert runtime["device"].startswith("cuda") and runtime["name"] == torch.cuda.get_device_name()
    assert (tmp_path / "radiology-t2fs+t1ce.pt").is_file() and (tmp_path / "radiology_scores.csv").is_file()
