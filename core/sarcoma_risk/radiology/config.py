"""Every parameter of the radiology pipeline, in three dataclasses saved with the weights.

:class:`PreprocessConfig` (how an MRI becomes the network's input), :class:`ModelConfig` (the
network's shape) and :class:`TrainConfig` (how it was fitted). Each has ``to_dict``/``from_dict``
(plain JSON; ``from_dict`` refuses unknown keys and wrong types, naming them). ``PRESETS`` holds a
realistic "standard" configuration (also named "paper": the published method's network at its
default size, what ``--preset paper`` of the training commands uses) and a "tiny" one that trains
in seconds (tests, demos).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, TypeVar

from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.sequences import set_name


class Ties(str, Enum):
    """How the Cox partial likelihood treats tied event times."""

    BRESLOW = "breslow"
    EFRON = "efron"


C = TypeVar("C")


def _from_dict(cls: type[C], data: Mapping[str, Any], what: str) -> C:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInput(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        default = getattr(cls, name, None)
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise InvalidInput(f"{what}.{name}: expected a list, got {value!r}")
            value = tuple(value)
        values[name] = value
    return cls(**values)  # __post_init__ checks values


def _positive(value: Any, what: str, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"{what}: {value!r} must be a positive {'integer' if integer else 'number'}")


@dataclass(frozen=True)
class PreprocessConfig:
    """From an MRI and its tumor mask to a fixed-size, intensity-normalised multi-channel patch.

    Parameters
    ----------
    sequences : tuple of str
        Input sequences in channel order: a sequence set of :mod:`sarcoma_risk.sequences`
        (("t2fs", "t1ce"), ("t2fs",) or ("t1ce",)).
    patch_size : int
        Edge of the cubic patch in voxels.
    spacing_mm : float
        Isotropic voxel size of the patch. A tumor (plus margin) too large for
        ``patch_size * spacing_mm`` gets a coarser spacing so that it always fits whole.
    margin_mm : float
        Context kept around the tumor's bounding box (the margin is where infiltration shows).
    norm_dilation_mm : float
        The intensity statistics come from the tumor dilated by this much.
    clip_percentiles : (float, float)
        Intensities are clipped to these percentiles of that region before the z-score, so that
        a scanner's scale and offset, and a few extreme voxels, do not change the input.
    mask_channel : bool
        Add the tumor mask as the last input channel.
    zero_outside_region : bool
        Set the sequence channels to 0 outside the dilated tumor region, so that the network sees
        the tumor and its surroundings only (the rest of the anatomy carries no prognosis and
        varies from patient to patient).
    """

    sequences: tuple[str, ...] = ("t2fs", "t1ce")
    patch_size: int = 64
    spacing_mm: float = 2.0
    margin_mm: float = 10.0
    norm_dilation_mm: float = 10.0
    clip_percentiles: tuple[float, float] = (0.5, 99.5)
    mask_channel: bool = True
    zero_outside_region: bool = True

    def __post_init__(self) -> None:
        set_name(self.sequences)  # known, distinct, in channel order
        _positive(self.patch_size, "patch_size", integer=True)
        _positive(self.spacing_mm, "spacing_mm")
        for name in ("margin_mm", "norm_dilation_mm"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1000:
                raise InvalidInput(f"{name}: {value!r} must be a number of millimetres >= 0")
        bounds = self.clip_percentiles
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bounds)
        if not (len(bounds) == 2 and numbers and 0 <= bounds[0] < bounds[1] <= 100):
            raise InvalidInput(f"clip_percentiles: {self.clip_percentiles!r} must be two percentiles lo < hi in 0..100")
        for name in ("mask_channel", "zero_outside_region"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInput(f"{name}: {getattr(self, name)!r} must be true or false")

    @property
    def in_channels(self) -> int:
        return len(self.sequences) + int(self.mask_channel)

    @property
    def sequence_set(self) -> str:
        """The name of the sequence set, e.g. ``"t2fs+t1ce"``."""
        return set_name(self.sequences)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PreprocessConfig":
        return _from_dict(cls, data, "preprocess config")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the CBAM 3D CNN.

    Parameters
    ----------
    widths : tuple of int
        Channels of each attention stage; every stage after the first halves the resolution.
    stem_stride : int
        Stride of the first convolution (2 halves the cost of everything after it).
    reduction : int
        Channel-attention bottleneck: hidden units = channels // reduction (at least 2).
    spatial_kernel : int
        Edge of the spatial-attention convolution (odd).
    dropout : float
        Dropout before the hazard head.
    """

    widths: tuple[int, ...] = (16, 32, 64)
    stem_stride: int = 2
    reduction: int = 4
    spatial_kernel: int = 7
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not self.widths:
            raise InvalidInput("widths: at least one stage is needed")
        for width in self.widths:
            _positive(width, "widths", integer=True)
        if self.stem_stride not in (1, 2):
            raise InvalidInput(f"stem_stride: {self.stem_stride!r} must be 1 or 2")
        _positive(self.reduction, "reduction", integer=True)
        _positive(self.spatial_kernel, "spatial_kernel", integer=True)
        if self.spatial_kernel % 2 == 0:
            raise InvalidInput(f"spatial_kernel: {self.spatial_kernel} must be odd (the map keeps its size)")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise InvalidInput(f"dropout: {self.dropout!r} must be in [0, 1)")

    @property
    def feature_stride(self) -> int:
        """Input voxels per voxel of the last stage's feature map."""
        return self.stem_stride * 2 ** (len(self.widths) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        return _from_dict(cls, data, "model config")


@dataclass(frozen=True)
class TrainConfig:
    """How the network is fitted (Cox partial likelihood, augmentation, early stopping).

    Parameters
    ----------
    epochs : int
        Most passes over the training cases.
    batch_size : int
        Cases per step; the partial likelihood compares the cases within a batch.
    learning_rate, weight_decay : float
        AdamW parameters.
    patience : int
        Stop after this many epochs without a better validation C-index.
    min_epochs : int
        Never stop before this many epochs (a C-index on a few cases is noisy at first).
    validation_fraction : float
        Share of the training cases held out (stratified by event) for early stopping.
    ties : {"breslow", "efron"}
        Handling of tied event times in the partial likelihood.
    flip : bool
        Random flips along each axis.
    rotate_degrees : float
        Largest random rotation about each axis (0 = none).
    intensity_jitter : float
        Random scale (1 +- jitter) and shift (+- jitter) of each normalised sequence channel.
    seed : int
        Seeds initialisation, the validation split, batches and augmentation.
    """

    epochs: int = 60
    batch_size: int = 16
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    min_epochs: int = 8
    validation_fraction: float = 0.2
    ties: str = "efron"
    flip: bool = True
    rotate_degrees: float = 10.0
    intensity_jitter: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            _positive(getattr(self, name), name, integer=True)
        if isinstance(self.min_epochs, bool) or not isinstance(self.min_epochs, int) or self.min_epochs < 0:
            raise InvalidInput(f"min_epochs: {self.min_epochs!r} must be an integer >= 0")
        if self.batch_size < 2:
            raise InvalidInput("batch_size: the partial likelihood needs at least 2 cases per batch")
        _positive(self.learning_rate, "learning_rate")
        for name, hi in (("weight_decay", 1.0), ("validation_fraction", 0.5), ("intensity_jitter", 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= hi:
                raise InvalidInput(f"{name}: {value!r} must be in [0, {hi}]")
        if isinstance(self.rotate_degrees, bool) or not isinstance(self.rotate_degrees, (int, float)) \
                or not 0 <= self.rotate_degrees <= 45:
            raise InvalidInput(f"rotate_degrees: {self.rotate_degrees!r} must be in [0, 45]")
        object.__setattr__(self, "ties", check_choice(self.ties, Ties, "ties").value)
        if not isinstance(self.flip, bool):
            raise InvalidInput(f"flip: {self.flip!r} must be true or false")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInput(f"seed: {self.seed!r} must be an integer >= 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        return _from_dict(cls, data, "train config")


class Preset(str, Enum):
    STANDARD = "standard"
    PAPER = "paper"
    TINY = "tiny"


#: Ready configurations: "standard" (also "paper": the default, published network size) for real
#: training, "tiny" to train in seconds on tiny phantoms.
PRESETS: dict[Preset, tuple[PreprocessConfig, ModelConfig, TrainConfig]] = {
    Preset.STANDARD: (PreprocessConfig(), ModelConfig(), TrainConfig()),
    Preset.PAPER: (PreprocessConfig(), ModelConfig(), TrainConfig()),
    Preset.TINY: (
        PreprocessConfig(patch_size=32, spacing_mm=3.0, margin_mm=8.0, norm_dilation_mm=8.0),
        ModelConfig(widths=(8, 16), stem_stride=2, reduction=2, spatial_kernel=5, dropout=0.0),
        TrainConfig(epochs=25, batch_size=10, learning_rate=3e-3, patience=8, min_epochs=6, rotate_degrees=8.0),
    ),
}


def preset(name: str | Preset) -> tuple[PreprocessConfig, ModelConfig, TrainConfig]:
    """The three configurations of a preset ("standard", "paper" (the same) or "tiny")."""
    return PRESETS[check_choice(name, Preset, "preset")]
