"""Training-time augmentation of H&E patches: stain (HED) jitter, brightness/contrast, flips, rotations.

Stain jitter (Tellez et al. 2018) is what makes a patch model survive another centre's staining:
each patch is unmixed into hematoxylin, eosin and DAB optical densities with Ruifrok & Johnston's
matrix, each channel is scaled by ``1 + U(-sigma, sigma)`` and shifted by ``U(-bias, bias)``, and
the result is mixed back to RGB, optionally with slightly perturbed stain vectors (another lab's
dyes differ in hue, not only in amount). Orientation carries no meaning in a section, so patches are also
flipped and rotated by multiples of 90 degrees. Everything works on a batch tensor (N, 3, H, W) in
[0, 1] and draws from the given ``torch.Generator``, so a seeded run repeats exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

#: Ruifrok & Johnston's stain OD vectors (rows: hematoxylin, eosin, DAB).
RGB_FROM_HED = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
_MIN_TRANSMISSION = 1.0 / 255.0  # the darkest an 8-bit pixel can be; keeps log finite


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (0 turns it off)."""

    hed_sigma: float = 0.15
    hed_bias: float = 0.03
    stain_vector_sigma: float = 0.06
    brightness: float = 0.06
    contrast: float = 0.06
    flips: bool = True


def _matrices(device: Any) -> tuple[Any, Any]:
    rgb_from_hed = torch.tensor(RGB_FROM_HED, dtype=torch.float32, device=device)
    rgb_from_hed = rgb_from_hed / rgb_from_hed.norm(dim=1, keepdim=True)
    return rgb_from_hed, torch.linalg.inv(rgb_from_hed)


def hed_jitter(x: Any, sigma: float, bias: float, generator: Any, vector_sigma: float = 0.0) -> Any:
    """Scale and shift each patch's H, E and D optical densities at random; x in [0, 1], (N, 3, H, W).

    With ``vector_sigma`` > 0 the stain vectors used to mix the patch back are also perturbed (each
    component by ``N(0, vector_sigma)``, then renormalised: a few degrees), as another laboratory's
    dyes or another scanner's colour response would shift them.
    """

    n = x.shape[0]
    rgb_from_hed, hed_from_rgb = _matrices(x.device)
    od = -torch.log(x.clamp(min=_MIN_TRANSMISSION))  # (N, 3, H, W) optical density
    hed = torch.einsum("nchw,cd->ndhw", od, hed_from_rgb)
    # drawn on the CPU from the CPU generator, then moved: the same draws on any device
    alpha = (1 + (torch.rand((n, 3, 1, 1), generator=generator) * 2 - 1) * sigma).to(x.device)
    beta = ((torch.rand((n, 3, 1, 1), generator=generator) * 2 - 1) * bias).to(x.device)
    mix = rgb_from_hed.expand(n, 3, 3)
    if vector_sigma:
        noise = (torch.randn((n, 3, 3), generator=generator) * vector_sigma).to(x.device)
        mix = (mix + noise).clamp(min=0.0)
        mix = mix / mix.norm(dim=2, keepdim=True).clamp(min=1e-6)
    od = torch.einsum("ndhw,ndc->nchw", hed * alpha + beta, mix)
    return torch.exp(-od).clamp(0, 1)


def augment_batch(x: Any, config: AugmentConfig, generator: Any) -> Any:
    """The full training augmentation of a batch (N, 3, H, W) in [0, 1], on the batch's device."""

    n = x.shape[0]
    if config.hed_sigma or config.hed_bias or config.stain_vector_sigma:
        x = hed_jitter(x, config.hed_sigma, config.hed_bias, generator, config.stain_vector_sigma)
    if config.brightness or config.contrast:
        gain = (1 + (torch.rand((n, 1, 1, 1), generator=generator) * 2 - 1) * config.contrast).to(x.device)
        shift = ((torch.rand((n, 1, 1, 1), generator=generator) * 2 - 1) * config.brightness).to(x.device)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * gain + mean + shift).clamp(0, 1)
    if config.flips:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        turns = torch.randint(0, 4, (n,), generator=generator).to(x.device)
        rotated = x.clone()
        for k in (1, 2, 3):  # one rotation per quarter-turn group, not one per patch
            chosen = turns == k
            if chosen.any():
                rotated[chosen] = torch.rot90(x[chosen], k, dims=(2, 3))
        x = rotated
    return x
