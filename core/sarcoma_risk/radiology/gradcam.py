"""Grad-CAM on the last attention stage, for a Cox output, back in the MRI's own geometry.

The network's output decomposes exactly over the voxels x of the last stage's feature maps A_k:
with the head h, the region pooling weights w(x) and the development mean b (the output offset),
``y = sum_x w(x) / sum(w) * (h . A(x) - b)``. Each voxel's share is
``sum_k dy/dA_k(x) * A_k(x) - b * w(x) / sum(w)``: the Grad-CAM product of gradients and activations
taken voxel by voxel (the element-wise form, HiResCAM, which for an average-pooled head is Grad-CAM
itself), minus the voxel's share of the baseline. The map keeps the sign: a positive share is where
the tumor region raised the hazard above that of the average development case, a negative share
where it lowered it. (Keeping only the positive part left every low-risk tumor with an all-zero
map. Textbook Grad-CAM, without the baseline, has no fixed zero for a Cox model, whose output is
defined only up to a constant.) The shares sum to the score exactly, and voxels outside the tumor
region are 0 because the network maps empty input to 0.

A forward hook swaps the stage's output for a leaf tensor that requires grad, so one backward pass
from y to that stage gives the gradients without touching the weights (no extra dependency).

The coarse map lives on the patch grid downsampled by the network's feature stride (voxel j over
patch voxel ``stride * j``); it becomes a SimpleITK image with exactly that geometry and is
resampled (linear) onto the original MRI grid, so size, spacing, origin and direction equal the
input's, oblique or not. Values are divided by the largest absolute share, so the map lies in
[-1, 1] with 0 where the region neither raised nor lowered the risk; outside the patch it is 0. A
map that is 0 everywhere comes with a sentence saying why (:func:`empty_map_reason`), never silently.
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
    """The network's score for one patch and its signed Grad-CAM on the feature grid (z, y, x).

    ``shares`` are the feature voxels' signed shares of the score (they sum to it): positive where
    the tumor region raised the risk above the development average, negative where it lowered it.
    """

    score: float
    shares: np.ndarray


def grad_cam(network: CBAMNet3d, patch: np.ndarray) -> CamResult:
    """Score and signed Grad-CAM of one prepared patch (channels, z, y, x), the network in eval mode.

    Runs where the network is, in the precision of the caller's autocast context, if any.
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
    return CamResult(float(score.detach()), share[0, 0].float().cpu().numpy())


def cam_to_original(shares: np.ndarray, patch: PatchGeometry, stride: int, reference: sitk.Image) -> sitk.Image:
    """The signed feature-grid map on ``reference``'s grid (float32 in [-1, 1], 0 outside the patch)."""
    peak = float(np.abs(shares).max()) if shares.size else 0.0
    scaled = shares / peak if peak > 0 else np.zeros_like(shares)
    coarse = patch.image(scaled, stride=stride)
    out = resample_onto(coarse, reference, linear=True, default=0.0, pixel_type=sitk.sitkFloat32)
    out.CopyInformation(reference)
    return out


def empty_map_reason(shares: np.ndarray, mapped: sitk.Image) -> str | None:
    """Why the map on the MRI's grid is 0 everywhere, or None when it shows something."""
    if np.any(sitk.GetArrayViewFromImage(mapped)):
        return None
    if not np.any(shares):
        return ("the Grad-CAM is 0 everywhere: every part of the tumor region has a zero share of the score (the "
                "network's last-stage features are zero there and the score equals the development average), so "
                "no region raised or lowered the risk")
    return ("the Grad-CAM is 0 everywhere on the MRI's grid: the feature cells with a share of the score fall "
            "between the MRI's voxel centres (a tumor thinner than the MRI's slices?)")
