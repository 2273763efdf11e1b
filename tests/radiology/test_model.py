"""The CBAM 3D CNN: shapes, attention wired in, empty input stays empty, feature-grid geometry."""

from __future__ import annotations

import pytest
import torch

from sarcoma_risk.radiology.config import ModelConfig, preset
from sarcoma_risk.radiology.model import CBAMNet3d

TINY_MODEL = preset("tiny")[1]


def network(config: ModelConfig = TINY_MODEL, seed: int = 0) -> CBAMNet3d:
    torch.manual_seed(seed)
    return CBAMNet3d(3, config).eval()


def patch(size: int = 32, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(2, 3, size, size, size)
    x[:, :, 6:26, 8:24, 5:27] = torch.randn(2, 3, 20, 16, 22, generator=generator)
    return x


def test_one_log_hazard_per_case_and_the_features_on_the_stride_grid():
    net, x = network(), patch()
    assert net(x).shape == (2,)
    features = net.stages(net.stem(x))
    stride = TINY_MODEL.feature_stride
    assert features.shape[2:] == (32 // stride,) * 3 and net.feature_stride == stride == 4
    standard = CBAMNet3d(3, ModelConfig()).eval()
    assert standard.stages(standard.stem(torch.zeros(1, 3, 64, 64, 64))).shape[2:] == (8, 8, 8)


@pytest.mark.parametrize("stage", range(len(TINY_MODEL.widths)))
@pytest.mark.parametrize("part", ["channel", "spatial"])
def test_every_attention_module_changes_the_output(stage, part):
    net, x = network(), patch()
    calls = []
    module = net.attention_modules()[stage]
    handle = getattr(module, part).register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        before = net(x)
        gate = module.channel.mlp[-1] if part == "channel" else module.spatial.conv
        gate.weight.add_(0.5 * torch.randn_like(gate.weight))
        after = net(x)
    handle.remove()
    assert calls == [1, 1]
    assert not torch.allclose(before, after, atol=1e-6)


def test_attention_gates_are_a_channel_mlp_on_pooled_descriptors_and_a_conv_on_channel_maps():
    module = network().attention_modules()[0]
    mlp = module.channel.mlp
    assert mlp[0].in_channels == TINY_MODEL.widths[0] and mlp[-1].out_channels == TINY_MODEL.widths[0]
    assert module.spatial.conv.in_channels == 2 and module.spatial.conv.kernel_size == (5, 5, 5)
    # The channel gate is the same MLP for the average- and the max-pooled descriptor: one weight set.
    assert sum(1 for name, _ in module.channel.named_parameters() if name.endswith("weight")) == 2


def test_empty_input_gives_empty_features_and_the_pooling_ignores_it():
    net = network()
    empty = torch.zeros(1, 3, 32, 32, 32)
    features = net.stages(net.stem(empty))
    assert torch.count_nonzero(features) == 0
    # More empty space around the same content changes nothing: the pooling covers the content only.
    x = patch()[:1]
    shifted = torch.zeros_like(x)
    shifted[:, :, 4:28, 4:28, 4:28] = x[:, :, 4:28, 4:28, 4:28]
    assert torch.allclose(net(x), net(shifted))


def test_the_same_weights_and_input_give_the_same_output():
    x = patch()
    assert torch.equal(network(seed=3)(x), network(seed=3)(x))
    assert not torch.equal(network(seed=3)(x), network(seed=4)(x))
