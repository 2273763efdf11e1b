"""How a training run uses the machine, apart from what it learns: device, precision, processes, checkpoints.

:class:`TrainRuntime` is passed to both trainers beside their hyperparameters. The default is the
behaviour of old: one process on the CPU in fp32, patch reading in threads, no checkpoints.
Everything here leaves the learnt weights unchanged except ``precision`` (autocast rounds the
forward pass) and the number of processes (a distributed run averages the gradients of each
rank's share of a batch); the device changes them only by floating-point rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from sarcoma_risk.device import Precision, describe
from sarcoma_risk.distributed import Distributed
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.resume import TrainingCheckpoint


@dataclass(frozen=True)
class TrainRuntime:
    """Device, precision, process group, patch-reading processes and checkpoints of a training run.

    Parameters
    ----------
    device : torch.device, optional
        Where the networks train (default: the CPU); see :func:`sarcoma_risk.device.resolve_device`.
    precision : Precision
        fp32, or bf16/fp16 autocast for the forward pass (fp16 with a gradient scaler).
    distributed : Distributed
        The torchrun process group (default: this process alone).
    num_workers : int
        DataLoader worker processes reading patches in pathology training (0: threads in this process).
    checkpoint_dir : path, optional
        Where each fit writes its checkpoint after every epoch (None: no checkpoints).
    resume : bool
        Continue every fit from its checkpoint in ``checkpoint_dir`` when there is one.
    """

    device: Any = None
    precision: Precision = Precision.FP32
    distributed: Distributed = field(default_factory=Distributed)
    num_workers: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise InvalidInput(f"num_workers: {self.num_workers!r} must be a whole number >= 0")
        if self.resume and self.checkpoint_dir is None:
            raise InvalidInput("resume: there is no checkpoint folder to resume from")

    @property
    def torch_device(self) -> "torch.device":
        return self.device if self.device is not None else torch.device("cpu")

    def checkpoint(self, name: str, identity: Mapping[str, Any]) -> TrainingCheckpoint | None:
        """The checkpoint of the fit ``name`` (None without a checkpoint folder).

        The identity is completed with what changes the weights besides the data and the
        configuration: the precision and the number of processes.
        """
        if self.checkpoint_dir is None:
            return None
        full = {**identity, "fit": name, "precision": self.precision.value,
                "world_size": self.distributed.world_size}
        return TrainingCheckpoint(Path(self.checkpoint_dir) / f"{name}.pt", full, resume=self.resume,
                                  write=self.distributed.is_main)

    def to_dict(self) -> dict[str, Any]:
        """For run metadata."""

        return {**describe(self.torch_device), "precision": self.precision.value,
                "distributed": self.distributed.to_dict(), "num_workers": self.num_workers,
                "checkpoints": self.checkpoint_dir is not None, "resumed": self.resume}
