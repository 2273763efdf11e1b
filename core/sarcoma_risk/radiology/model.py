"""A compact 3D CNN with CBAM attention whose one output is a log relative hazard.

CBAM (Woo et al., ECCV 2018) in 3D, in every stage:

- channel attention: one MLP, shared between the average-pooled and the max-pooled channel
  descriptors, summed, sigmoid, multiplied onto the channels;
- spatial attention: a convolution over the channel-average and channel-max maps, sigmoid,
  multiplied onto every voxel.

A stage is two 3x3x3 convolutions (the first strided when the stage halves the resolution), then
CBAM, then a residual connection. After the stem and the stages: average pooling over the tumor
region and one linear unit. ``offset`` (a buffer set after training to the development cohort's
mean) centres the output, so 0 is the average development case.

The network maps empty input to exactly 0: no feature convolution has a bias, there is no batch norm (its
shift would light up empty space), attention only multiplies. Preprocessing leaves the input 0
outside the dilated tumor region, so the features, the pooling (weighted by the share of non-empty
input voxels under each feature voxel) and therefore the score and the Grad-CAM depend on the tumor
region only, not on how much empty patch surrounds a small tumor. The residual blocks and Kaiming
initialisation keep this shallow network trainable without normalisation.

Grad-CAM uses the last stage (:attr:`CBAMNet3d.cam_layer`); feature voxel j sits over input voxel
``feature_stride * j`` (every downsampling is a 3x3x3 convolution with padding 1, or a 1x1x1 one,
centred on the even input voxels).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from sarcoma_risk.radiology.config import ModelConfig


class ChannelAttention3d(nn.Module):
    """Channel gate: sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) with one shared MLP."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 2)
        self.mlp = nn.Sequential(nn.Conv3d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv3d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.mlp(F.adaptive_avg_pool3d(x, 1)) + self.mlp(F.adaptive_max_pool3d(x, 1))
        return x * torch.sigmoid(gate)


class SpatialAttention3d(nn.Module):
    """Spatial gate: sigmoid(conv([mean over channels, max over channels]))."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(maps))


class CBAM3d(nn.Module):
    """Channel attention, then spatial attention."""

    def __init__(self, channels: int, reduction: int, spatial_kernel: int) -> None:
        super().__init__()
        self.channel = ChannelAttention3d(channels, reduction)
        self.spatial = SpatialAttention3d(spatial_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class AttentionStage3d(nn.Module):
    """Residual block: conv-ReLU, conv, CBAM, plus the (projected) input, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, config: ModelConfig) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        self.attention = CBAM3d(out_channels, config.reduction, config.spatial_kernel)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.attention(self.body(x)) + self.shortcut(x))


class CBAMNet3d(nn.Module):
    """The radiology network: (N, C, D, H, W) patches -> (N,) log relative hazards.

    Parameters
    ----------
    in_channels : int
        Input channels (sequences plus the mask channel).
    config : ModelConfig
        Stage widths, stem stride, attention parameters, dropout.
    """

    def __init__(self, in_channels: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        first = config.widths[0]
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, first, 3, stride=config.stem_stride, padding=1, bias=False),
            nn.ReLU(inplace=True),
        )
        stages, previous = [], first
        for i, width in enumerate(config.widths):
            stages.append(AttentionStage3d(previous, width, 1 if i == 0 else 2, config))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(previous, 1, bias=False)
        self.register_buffer("offset", torch.zeros(()))
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # A small head keeps the initial hazards near 0, where the partial likelihood is well behaved.
        nn.init.normal_(self.head.weight, std=0.01)

    @property
    def cam_layer(self) -> nn.Module:
        """The last attention stage, whose output Grad-CAM weighs."""
        return self.stages[-1]

    @property
    def feature_stride(self) -> int:
        return self.config.feature_stride

    def attention_modules(self) -> list[CBAM3d]:
        return [stage.attention for stage in self.stages]

    def region_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, d, h, w) share of non-empty input voxels under each feature voxel (the pooling weights)."""
        occupied = (x != 0).any(dim=1, keepdim=True).to(x.dtype)
        stride = self.feature_stride
        return F.avg_pool3d(occupied, stride, stride, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stages(self.stem(x))
        weights = self.region_weights(x)
        pooled = (features * weights).sum(dim=(2, 3, 4)) / weights.sum(dim=(2, 3, 4)).clamp_min(1e-6)
        return self.head(self.dropout(pooled)).squeeze(1) - self.offset
