"""The patch model: ShuffleNetV2 (torchvision's, from :mod:`.shufflenet`) with one logit, and how it is run.

:class:`PatchModel` takes RGB patches scaled to [0, 1] (N, 3, H, W), normalises them with the
ImageNet mean and standard deviation (the statistics torchvision's pretrained weights expect) and
returns one logit per patch; ``sigmoid(logit)`` is the probability that the patch comes from a slide
of a patient whose tumor recurred within the training horizon. Higher = riskier.

Checkpoints hold only the ShuffleNetV2 state dict (torchvision's key names), loaded with
``weights_only=True``. Initial weights: random, torchvision's ImageNet weights (downloaded on first
use; a machine without network gets a clear error), or a state-dict file.

:class:`PatchRunner` is the inference path: on a chosen device, channels-last memory (about 1.7x
faster than NCHW on CPU), batch norms folded into the convolutions, ``torch.inference_mode``, and
optionally bf16/fp16 autocast (faster on hardware built for it; :func:`probe_patches` is the fixed
batch on which the precision guard, :mod:`sarcoma_risk.precision`, compares it with fp32 before it
is used). ``torch.jit`` script/trace/freeze are deprecated in this torch and ``torch.compile``
takes tens of seconds to compile on CPU, so neither is used.
"""

from __future__ import annotations

import copy
import io
import os
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from torch.nn.utils.fusion import fuse_conv_bn_eval

from sarcoma_risk.choices import check_choice
from sarcoma_risk.device import Precision, autocast, check_precision, to_device
from sarcoma_risk.errors import InvalidModel, WeightsNotFound
from sarcoma_risk.pathology.shufflenet import shufflenet_v2
from sarcoma_risk.provenance import sha256_bytes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Architecture(str, Enum):
    X1_0 = "shufflenet_v2_x1_0"
    X0_5 = "shufflenet_v2_x0_5"


def build_network(architecture: Architecture | str = Architecture.X1_0) -> Any:
    """A ShuffleNetV2 (torchvision's, see :mod:`.shufflenet`) whose classifier has one output."""

    arch = check_choice(architecture, Architecture, "architecture")
    return shufflenet_v2(arch.value, num_classes=1)


def _imagenet_weights(architecture: Architecture | str) -> Any:
    import torchvision  # lazy: about 1 s at import (torch._dynamo), see shufflenet.py; only ImageNet init needs it

    arch = check_choice(architecture, Architecture, "architecture")
    enum_name = {"shufflenet_v2_x1_0": "ShuffleNet_V2_X1_0_Weights", "shufflenet_v2_x0_5": "ShuffleNet_V2_X0_5_Weights"}
    return getattr(torchvision.models, enum_name[arch.value]).IMAGENET1K_V1


def imagenet_file(architecture: Architecture | str) -> Path:
    """Where torchvision keeps (or would download) its ImageNet weights: the torch hub cache."""

    name = os.path.basename(urlparse(_imagenet_weights(architecture).url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def resolve_init(init: str | Path, architecture: Architecture | str) -> tuple[str | Path, str | None]:
    """The initial weights to use for ``init``, and why, when ``init`` is "auto".

    "auto" means torchvision's ImageNet weights when they are already on this machine (in the torch
    hub cache, nothing is downloaded), else random weights; the reason is returned for the run's
    metadata. Any other ``init`` is returned as it is, with None.
    """
    if str(init) != "auto":
        return init, None
    arch = check_choice(architecture, Architecture, "architecture").value
    path = imagenet_file(architecture)
    if path.is_file():
        return "imagenet", f"torchvision's ImageNet weights for {arch} ({path.name}) are in the torch hub cache"
    return "random", (f"torchvision's ImageNet weights for {arch} ({path.name}) are not in the torch hub cache "
                      "($TORCH_HOME/hub/checkpoints) and are not downloaded: the model starts from random weights")


def imagenet_state(architecture: Architecture | str) -> dict[str, Any]:
    """torchvision's ImageNet weights for the backbone (classifier dropped); downloads on first use."""
    arch = check_choice(architecture, Architecture, "architecture")
    weights = _imagenet_weights(arch)
    try:
        state = weights.get_state_dict(progress=False)
    except (OSError, RuntimeError) as exc:  # URLError is an OSError; a broken download a RuntimeError
        raise WeightsNotFound(
            f"torchvision's ImageNet weights for {arch.value} could not be downloaded ({exc}). On a machine "
            "without internet, copy the file into the torch hub cache ($TORCH_HOME/hub/checkpoints), give a "
            "state-dict file with --init FILE, or train from random weights with --init random.") from None
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def load_state_file(path: str | Path) -> dict[str, Any]:
    """A user-supplied initial state dict (``weights_only=True``); a ``fc`` head of another shape is dropped."""

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"{path}: no such initial weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise InvalidModel(f"{path}: not a loadable weights-only state dict ({exc})") from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise InvalidModel(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_into(network: Any, state: Mapping[str, Any], source: str, *, strict: bool) -> None:
    own = network.state_dict()
    mismatched = [k for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if strict and mismatched:
        raise InvalidModel(f"{source}: tensor shapes do not match the network ({', '.join(mismatched[:5])})")
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    missing = [k for k in own if k not in usable and not k.startswith("fc.")]
    if missing and (strict or len(missing) > len(own) // 2):
        raise InvalidModel(f"{source}: does not fit the network: {len(missing)} tensor(s) missing "
                           f"(e.g. {', '.join(missing[:3])}); is it for another architecture?")
    if strict and any(k.startswith("fc.") and k not in usable for k in own):
        raise InvalidModel(f"{source}: has no single-logit classifier (fc.weight/fc.bias of shape (1, ...))")
    network.load_state_dict(usable, strict=False)


@lru_cache(maxsize=1)
def _patch_model_class() -> type:
    """The nn.Module class (built once and cached)."""

    class PatchModel(torch.nn.Module):
        """ShuffleNetV2 with one logit over [0, 1]-scaled RGB patches; ImageNet normalisation inside."""

        def __init__(self, network: torch.nn.Module) -> None:
            super().__init__()
            self.net = network
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net((x - self.mean) / self.std).squeeze(1)

    return PatchModel


def make_patch_model(architecture: Architecture | str = Architecture.X1_0, init: str | Path | None = "random",
                     state: Mapping[str, Any] | None = None) -> Any:
    """A :class:`PatchModel`.

    Parameters
    ----------
    architecture : {"shufflenet_v2_x1_0", "shufflenet_v2_x0_5"}
    init : "random", "imagenet" or a state-dict file
        Where the starting weights come from (ignored when ``state`` is given).
    state : mapping, optional
        A trained checkpoint (full network state dict, single-logit head), loaded strictly.
    """
    network = build_network(architecture)
    if state is not None:
        _load_into(network, state, "checkpoint", strict=True)
    elif init == "imagenet":
        _load_into(network, imagenet_state(architecture), "ImageNet weights", strict=False)
    elif init not in (None, "random"):
        _load_into(network, load_state_file(init), str(init), strict=False)
    return _patch_model_class()(network)


def state_bytes(model: Any) -> bytes:
    """The checkpoint bytes of a model's network (deterministic for equal weights)."""

    buffer = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.net.state_dict().items()}, buffer)
    return buffer.getvalue()


def state_sha256(model: Any) -> str:
    return sha256_bytes(state_bytes(model))


def fold_batch_norm(module: Any) -> Any:
    """``module`` (in eval mode) with every Conv2d -> BatchNorm2d pair of its Sequentials folded into one conv.

    In eval mode a batch norm is an affine map per channel, so it folds into the preceding
    convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``); the outputs are
    the same up to float rounding and each folded pair is one operation instead of two passes over
    the activations. Changes ``module`` in place and returns it; call it on a copy.
    """

    for name, child in module.named_children():
        if isinstance(child, torch.nn.Sequential):
            layers = list(child)
            for i in range(len(layers) - 1):
                if isinstance(layers[i], torch.nn.Conv2d) and isinstance(layers[i + 1], torch.nn.BatchNorm2d):
                    layers[i], layers[i + 1] = fuse_conv_bn_eval(layers[i], layers[i + 1]), torch.nn.Identity()
            child = torch.nn.Sequential(*layers)
            setattr(module, name, child)
        fold_batch_norm(child)
    return module


class PatchRunner:
    """Runs a patch model on uint8 RGB batches (N, H, W, 3) and returns probabilities (N,) float32.

    The model runs as a copy taken when the runner is made, in eval mode, channels-last, with its
    batch norms folded into the convolutions (:func:`fold_batch_norm`: 1.8x faster for ShuffleNetV2
    x0.5 at 112 px on one CPU thread, probabilities equal to float rounding). Make a new runner
    after the model's weights change.

    Parameters
    ----------
    model : PatchModel
    precision : {"fp32", "bf16", "fp16"}
        Reduced precision (autocast) is faster on hardware built for it but rounds activations;
        :func:`~sarcoma_risk.pathology.pipeline.load_models` checks it against fp32 first.
    device : torch.device, optional
        Where the model runs (default: the CPU). Batches travel as uint8 and are scaled there.
    """

    def __init__(self, model: Any, precision: Precision | str = Precision.FP32, device: Any = None) -> None:
        self.device = device if device is not None else torch.device("cpu")
        self.precision = check_precision(precision, self.device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self._network = fold_batch_norm(copy.deepcopy(self.model)).to(memory_format=torch.channels_last)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            # (N, H, W, 3) uint8 permuted to (N, 3, H, W) is already channels-last in memory: no copy
            x = to_device(torch.from_numpy(batch), self.device).permute(0, 3, 1, 2).float().div_(255.0)
            with autocast(self.device, self.precision):
                logits = self._network(x)
            return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float32)


def probe_patches(patch_px: int, n: int = 32, seed: int = 0) -> np.ndarray:
    """A fixed batch of H&E-like patches (n, patch_px, patch_px, 3) uint8 for the precision guard.

    Pink stroma in smooth random islands on white glass, with purple nuclei of 2-6 um (at 112 px);
    the share of tissue and the nuclear density grow from the first patch to the last. It is not
    tissue, but on the shipped weights its fp32-to-bf16 and fp32-to-fp16 differences match those
    of real phantom patches (tests/pathology/test_precision.py), which is all the guard needs.
    """

    rng = np.random.default_rng(seed)
    glass = np.array([242, 240, 244], np.float32)
    eosin = np.array([226, 150, 196], np.float32)
    haematoxylin = np.array([84, 52, 132], np.float32)
    out = np.empty((n, patch_px, patch_px, 3), np.uint8)
    for i in range(n):
        cover = i / max(n - 1, 1)
        field = gaussian_filter(rng.normal(size=(patch_px, patch_px)).astype(np.float32), patch_px / 12, mode="wrap")
        field = (field - field.mean()) / (field.std() + 1e-6)
        tissue = np.clip((field + 2.5 * cover - 0.8) * 2, 0, 1)
        nuclei = np.zeros((patch_px, patch_px), np.float32)
        for _ in range(int(rng.integers(5, 15 + 60 * cover)) * patch_px * patch_px // 12544):
            cx, cy = rng.uniform(0, patch_px, 2)
            radius = rng.uniform(2.0, 5.5) * patch_px / 112
            darkness = rng.uniform(0.6, 1.0)
            x0, x1 = max(0, int(cx - radius - 1)), min(patch_px, int(cx + radius + 2))
            y0, y1 = max(0, int(cy - radius - 1)), min(patch_px, int(cy + radius + 2))
            yy, xx = np.mgrid[y0:y1, x0:x1]
            disc = np.clip(radius + 0.5 - np.hypot(xx - cx, yy - cy), 0, 1) * darkness
            nuclei[y0:y1, x0:x1] = np.maximum(nuclei[y0:y1, x0:x1], disc)
        nuclei *= tissue
        image = glass * (1 - tissue[..., None]) + eosin * tissue[..., None]
        image = image * (1 - nuclei[..., None]) + haematoxylin * nuclei[..., None]
        out[i] = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
    return out
