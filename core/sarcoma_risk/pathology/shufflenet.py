"""ShuffleNetV2 (Ma et al. 2018) as torchvision builds it, without importing torchvision.

Why not torchvision itself: importing torchvision imports ``torchvision.ops``, which imports
``torch._dynamo``; on the 2-core machines this suite targets that is about 1-2 s of CPU at every
``score-slide`` start, more than the model needs for a thousand patches. The network here has
torchvision's module names and layer order, so its state dict has torchvision's keys (checkpoints
and torchvision's ImageNet weights load unchanged) and, seeded alike, its random initial weights
are the same; ``tests/pathology/test_patch_model_and_streaming.py`` checks both and equal outputs
against ``torchvision.models.shufflenet_v2_x*`` (torchvision stays a dependency: it supplies the
ImageNet weights and is the reference).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch
from torch import nn

#: Blocks per stage (2, 3, 4) and output channels of conv1, stages 2-4 and conv5, per width.
STAGE_REPEATS = (4, 8, 4)
STAGE_CHANNELS = {
    "shufflenet_v2_x0_5": (24, 48, 96, 192, 1024),
    "shufflenet_v2_x1_0": (24, 116, 232, 464, 1024),
}


@lru_cache(maxsize=1)
def _classes() -> tuple[type, type]:
    def conv_bn(inp: int, out: int, kernel: int, stride: int, *, groups: int = 1, relu: bool = True) -> list:
        layers = [nn.Conv2d(inp, out, kernel, stride, kernel // 2, bias=False, groups=groups), nn.BatchNorm2d(out)]
        return layers + [nn.ReLU(inplace=True)] if relu else layers

    class InvertedResidual(nn.Module):
        """A ShuffleNetV2 unit: split (stride 1) or duplicate (stride 2) the channels, one branch
        pointwise-depthwise-pointwise, concatenate, shuffle the two halves together."""

        def __init__(self, inp: int, out: int, stride: int) -> None:
            super().__init__()
            self.stride = stride
            half = out // 2
            if stride > 1:
                self.branch1 = nn.Sequential(*conv_bn(inp, inp, 3, stride, groups=inp, relu=False),
                                             *conv_bn(inp, half, 1, 1))
            else:
                self.branch1 = nn.Sequential()
            self.branch2 = nn.Sequential(*conv_bn(inp if stride > 1 else half, half, 1, 1),
                                         *conv_bn(half, half, 3, stride, groups=half, relu=False),
                                         *conv_bn(half, half, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.stride == 1:
                kept, processed = x.chunk(2, dim=1)
                out = torch.cat((kept, self.branch2(processed)), dim=1)
            else:
                out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
            n, c, h, w = out.shape
            return out.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)

    class ShuffleNetV2(nn.Module):
        """conv1 -> max pool -> stages 2-4 -> conv5 -> global average -> fc (torchvision's layout)."""

        def __init__(self, channels: tuple[int, ...], num_classes: int) -> None:
            super().__init__()
            self.conv1 = nn.Sequential(*conv_bn(3, channels[0], 3, 2))
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            inp = channels[0]
            for name, repeats, out in zip(("stage2", "stage3", "stage4"), STAGE_REPEATS, channels[1:4]):
                blocks = [InvertedResidual(inp, out, 2)] + [InvertedResidual(out, out, 1) for _ in range(repeats - 1)]
                setattr(self, name, nn.Sequential(*blocks))
                inp = out
            self.conv5 = nn.Sequential(*conv_bn(inp, channels[4], 1, 1))
            self.fc = nn.Linear(channels[4], num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.maxpool(self.conv1(x))
            x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
            return self.fc(x.mean([2, 3]))

    return InvertedResidual, ShuffleNetV2


def shufflenet_v2(architecture: str, num_classes: int = 1) -> Any:
    """A ShuffleNetV2 of ``architecture`` ("shufflenet_v2_x0_5" or "shufflenet_v2_x1_0"), random weights."""
    return _classes()[1](STAGE_CHANNELS[architecture], num_classes)
