"""Where torch runs and in which precision: ``--device auto|cpu|cuda|mps`` and ``--precision fp32|bf16|fp16``.

:func:`resolve_device` turns the option into a ``torch.device``: ``auto`` takes CUDA when torch
sees a GPU, else Apple's MPS, else the CPU, so on a machine without an accelerator every default
stays what it always was. Asking for ``cuda`` or ``mps`` where there is none is an error that says
what is missing (a torch build without that backend, or a build with it that sees no device).

:func:`autocast` is the mixed-precision context: nothing for fp32, ``torch.autocast`` with bfloat16
or float16 otherwise (convolutions and matrix products run in the lower precision; reductions
and the loss stay in float32). fp16 training also needs a gradient scaler (:func:`grad_scaler`),
since small gradients underflow in float16; bf16 has float32's range and needs none. Whether
reduced precision is accurate enough for scoring with given weights is checked by
:mod:`sarcoma_risk.precision`, not assumed.
"""

from __future__ import annotations

import contextlib
from enum import Enum
from typing import Any, ContextManager

import torch

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import DeviceUnavailable, InvalidInput


class Device(str, Enum):
    """Where torch runs; ``auto`` prefers CUDA, then MPS, then the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class Precision(str, Enum):
    """Floating-point precision of the network's convolutions and matrix products."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


def _cuda_missing() -> str | None:
    """Why CUDA cannot be used here, or None when it can."""

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return (f"this torch ({torch.__version__}) was built without CUDA; install a CUDA build of torch "
                "(see pytorch.org) on a machine with an NVIDIA GPU and driver")
    return (f"torch {torch.__version__} has CUDA {torch.version.cuda} support but sees no CUDA device: no NVIDIA "
            "GPU, no working driver (check `nvidia-smi`), or CUDA_VISIBLE_DEVICES hides every GPU")


def _mps_missing() -> str | None:
    """Why Apple's MPS cannot be used here, or None when it can."""

    if torch.backends.mps.is_available():
        return None
    if not torch.backends.mps.is_built():
        return (f"this torch ({torch.__version__}) was built without MPS; MPS needs macOS 12.3+ on Apple silicon "
                "and the macOS build of torch")
    return "torch has MPS support but this Mac does not offer it (macOS 12.3+ on Apple silicon is needed)"


def resolve_device(choice: str | Device = Device.AUTO, *, index: int | None = None) -> "torch.device":
    """The ``torch.device`` of a ``--device`` choice.

    Parameters
    ----------
    choice : {"auto", "cpu", "cuda", "mps"}
        ``auto`` takes CUDA when available, else MPS, else the CPU.
    index : int, optional
        The CUDA device number (a distributed worker's local rank); default: the current device.

    Raises
    ------
    InvalidInput
        ``choice`` is not one of the four (the message lists them and suggests the nearest).
    DeviceUnavailable
        ``cuda`` or ``mps`` was asked for and this machine or this torch build lacks it (the
        message says which).
    """

    device = check_choice(choice, Device, "device")
    if device is Device.AUTO:
        if _cuda_missing() is None:
            device = Device.CUDA
        elif _mps_missing() is None:
            device = Device.MPS
        else:
            device = Device.CPU
    if device is Device.CUDA:
        problem = _cuda_missing()
        if problem is not None:
            raise DeviceUnavailable(f"device 'cuda': {problem}; use --device cpu (or auto)")
        _exact_fp32_on_cuda()
        return torch.device("cuda", torch.cuda.current_device() if index is None else index)
    if device is Device.MPS:
        problem = _mps_missing()
        if problem is not None:
            raise DeviceUnavailable(f"device 'mps': {problem}; use --device cpu (or auto)")
        return torch.device("mps")
    return torch.device("cpu")


def _exact_fp32_on_cuda() -> None:
    """Make float32 mean IEEE float32 on NVIDIA GPUs, as on the CPU.

    cuDNN's default lets float32 convolutions run in TF32 (a 10-bit mantissa) on Ampere and later
    GPUs: the shipped radiology model's scores then moved by up to 8e-4 from the CPU's (H200). Faster
    arithmetic is what ``--precision bf16|fp16`` is for, behind its accuracy check.
    """

    if hasattr(torch.backends.cudnn, "conv"):  # torch 2.9 and later; mixing in the old flags is an error there
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def check_precision(precision: str | Precision, device: "torch.device") -> Precision:
    """The :class:`Precision` of ``precision``, refused where ``device`` cannot run it."""

    chosen = check_choice(precision, Precision, "precision")
    if chosen is Precision.BF16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise InvalidInput(f"precision 'bf16': {torch.cuda.get_device_name(device)} has no bfloat16 support "
                           "(it came with NVIDIA's Ampere generation); use fp16 or fp32")
    return chosen


def torch_dtype(precision: Precision) -> "torch.dtype":
    return {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[precision]


def autocast(device: "torch.device", precision: str | Precision) -> ContextManager[Any]:
    """Mixed precision on ``device``: a no-op for fp32, ``torch.autocast`` for bf16 and fp16."""

    chosen = check_choice(precision, Precision, "precision")
    if chosen is Precision.FP32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch_dtype(chosen))


def grad_scaler(device: "torch.device", precision: str | Precision) -> "torch.amp.GradScaler":
    """A gradient scaler that is active for fp16 only (bf16 and fp32 have float32's range)."""

    chosen = check_choice(precision, Precision, "precision")
    return torch.amp.GradScaler(device.type, enabled=chosen is Precision.FP16)


def pin_memory(device: "torch.device") -> bool:
    """Whether host batches should be page-locked: only for CUDA, where it lets copies run asynchronously."""
    return device.type == "cuda"


def to_device(batch: "torch.Tensor", device: "torch.device") -> "torch.Tensor":
    """``batch`` on ``device`` (pinned and copied asynchronously to a GPU; unchanged on the CPU)."""
    if device.type == "cpu":
        return batch
    if pin_memory(device) and not batch.is_pinned():
        batch = batch.pin_memory()
    return batch.to(device, non_blocking=True)


def describe(device: "torch.device") -> dict[str, Any]:
    """The device for run metadata: its name, and for a GPU its model and memory."""

    info: dict[str, Any] = {"device": str(device), "torch": torch.__version__}
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(name=properties.name, memory_gib=round(properties.total_memory / 2**30, 1),
                    cuda=torch.version.cuda)
    elif device.type == "cpu":
        info.update(threads=torch.get_num_threads())
    return info
