"""Grad-CAM on the last attention stage, for a Cox output, back in the MRI's own geometry.

The network's output decomposes exactly over the voxels x of the last stage's feature maps A_k:
with the head h, the region pooling weights w(x) and the development mean b (the output offset),
``y = sum_x w(x) / sum(w) * (h . A(x) - b)``. Each voxel's share is
``sum_k dy/dA_k(x) * A_k(x) - b * w(x) / sum(w)``: the Grad-CAM product of gradients and activations
taken voxel by voxel (the element-wise form, HiResCAM, which for an average-pooled head is Grad-CAM
itself), minus the voxel's share of the baseline. The map is its positive part: where the tumor pushes
the hazard above that of the average development case. (Textbook Grad-CAM, without the baseline, has
no fixed zero for a Cox model, whose output is defined only up to a constant.) The shares sum to the
score exactly, and voxels outside the tumor region are 0 because the network maps empty input to 0.

A forward hook swaps the stage's output for a leaf tensor that requires grad, so one backward pass
from y to that stage gives the gradients without touching the weights (no extra dependency).

The coarse map lives on the patch grid downsampled by the network's feature stride (voxel j over
patch voxel ``stride * j``); it becomes a SimpleITK image with exactly that geometry and is
resampled (linear) onto the original MRI grid, so size, spacing, origin and direction equal the
input's, oblique or not. Values are scaled to [0, 1] by the map's maximum (all 0 when nothing
pushes the hazard above the average); outside the patch the map is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from sarcoma_risk.radiology.geometry import resample_onto
from sarcoma_risk.radiology.model import CBAMNet3d
from sarcoma_risk.radiology.preprocess import PatchGeometry


@dataclass
class CamResult:
    """The network's score for one patch and its Grad-CAM on the feature grid (z, y, x).

    ``shares`` are the feature voxels' signed shares of the score (they sum to it); ``cam`` is
    their positive part.
    """

    score: float
    cam: np.ndarray
    shares: np.ndarray


def grad_cam(network: CBAMNet3d, patch: np.ndarray) -> CamResult:
    """Score and Grad-CAM of one prepared patch (channels, z, y, x) with the network in eval mode.

    Runs where the network is, in the precision of the caller's autocast context, if any.

    ``cam`` is each feature voxel's positive share of the score (module docstring); before the
    ReLU the shares sum to ``score``.
    """
    network.eval()
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: torch.nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor:
        # float32 even under bf16/fp16 autocast, so that the shares are summed in full precision
        leaf = output.detach().float().requires_grad_(True)
        captured["features"] = leaf
        return leaf

    x = torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32))[None].to(network.offset.device)
    handle = network.cam_layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            score = network(x)
            features = captured["features"]
            (gradient,) = torch.autograd.grad(score.sum(), features)
    finally:
        handle.remove()
    with torch.no_grad():
        weights = network.region_weights(x)
        baseline = network.offset * weights / weights.sum().clamp_min(1e-6)
        share = (gradient * features).sum(dim=1, keepdim=True) - baseline
    shares = share[0, 0].float().cpu().numpy()
    return CamResult(float(score.detach()), np.maximum(shares, 0), shares)


def cam_to_original(cam: np.ndarray, patch: PatchGeometry, stride: int, reference: sitk.Image) -> sitk.Image:
    """The feature-grid map on ``reference``'s grid (float32, scaled to [0, 1], 0 outside the patch)."""
    peak = float(cam.max())
    scaled = cam / peak if peak > 0 else np.zeros_like(cam)
    coarse = patch.image(scaled, stride=stride)
    out = resample_onto(coarse, reference, linear=True, default=0.0, pixel_type=sitk.sitkFloat32)
    out.CopyInformation(reference)
    return out
