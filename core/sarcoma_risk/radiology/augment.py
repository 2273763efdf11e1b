"""Training-time augmentation of prepared patches: flips, small rotations, intensity jitter.

Applied to whole batches of (N, C, D, H, W) tensors with a caller-owned ``torch.Generator``, so a
seed gives the same augmented batches. Geometric changes move every channel (sequences and mask)
together; intensity jitter touches only the sequence channels (never the mask) and only non-empty
voxels (the network treats 0 as "outside the tumor region").
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from sarcoma_risk.radiology.config import TrainConfig


def _rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotations from (N, 3) angles in radians about the three axes."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(cos[:, 0]), torch.zeros_like(cos[:, 0])
    rx = torch.stack([one, zero, zero, zero, cos[:, 0], -sin[:, 0], zero, sin[:, 0], cos[:, 0]], 1).view(-1, 3, 3)
    ry = torch.stack([cos[:, 1], zero, sin[:, 1], zero, one, zero, -sin[:, 1], zero, cos[:, 1]], 1).view(-1, 3, 3)
    rz = torch.stack([cos[:, 2], -sin[:, 2], zero, sin[:, 2], cos[:, 2], zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def augment_batch(x: torch.Tensor, config: TrainConfig, n_sequences: int, generator: torch.Generator) -> torch.Tensor:
    """A randomly flipped, rotated and intensity-jittered copy of ``x`` (N, C, D, H, W), on ``x``'s device.

    The random draws come from ``generator`` (a CPU generator), so they are the same on any device.
    """
    n = x.shape[0]
    out = x.clone()
    if config.flip:
        flips = torch.rand(n, 3, generator=generator) < 0.5
        for i in range(n):
            dims = [d + 1 for d in range(3) if flips[i, d]]  # spatial dims of the (C, D, H, W) sample
            if dims:
                out[i] = torch.flip(out[i], dims)
    if config.rotate_degrees > 0:
        limit = math.radians(config.rotate_degrees)
        angles = (torch.rand(n, 3, generator=generator) * 2 - 1) * limit
        theta = torch.cat([_rotation_matrices(angles), torch.zeros(n, 3, 1)], dim=2).to(out.device, out.dtype)
        # The patch is a cube of isotropic voxels, so a rotation in normalised coordinates is a rigid one.
        grid = F.affine_grid(theta, list(out.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if config.intensity_jitter > 0 and n_sequences:
        j = config.intensity_jitter
        scale = (1 + (torch.rand(n, n_sequences, 1, 1, 1, generator=generator) * 2 - 1) * j).to(out.device)
        shift = ((torch.rand(n, n_sequences, 1, 1, 1, generator=generator) * 2 - 1) * j).to(out.device)
        # Empty voxels (outside the tumor region or the image) stay 0: the network pools over the others.
        occupied = (out != 0).any(dim=1, keepdim=True).to(out.dtype)
        out[:, :n_sequences] = (out[:, :n_sequences] * scale + shift) * occupied
    return out
