"""Data-parallel training over processes started by ``torchrun`` (PyTorch DistributedDataParallel).

Launched as ``torchrun --nproc-per-node N -m sarcoma_risk.cli train radiology|pathology ...`` (or
with ``--nnodes`` and a rendezvous address over several machines), every process runs the same
command; torchrun tells each its ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``. :func:`start` joins the
process group: NCCL when the device is CUDA (one GPU per process, ``cuda:LOCAL_RANK``), gloo on
the CPU. Without torchrun nothing changes: :class:`Distributed` is the one-process group.

How the trainers use it:

- each rank trains on its share of every epoch (``DistributedSampler``), gradients are averaged by
  DDP, so all ranks hold the same weights after every step;
- decisions (validation figures, early stopping) are computed by rank 0 and broadcast, so no rank
  can take another branch;
- slides and MRI cases to score are shared out (:meth:`Distributed.shard`) and the results gathered;
- only rank 0 writes checkpoints, weights, score tables, run logs and prints results; the CLI
  keeps the other ranks' logging to warnings;
- at the end every rank's weights are hashed and compared (:meth:`Distributed.check_replicas`): a
  difference is an error, and the hashes go into the run log.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sarcoma_risk.device import resolve_device
from sarcoma_risk.errors import InvalidInput, SarcomaRiskError

T = TypeVar("T")


class ReplicasDiffer(SarcomaRiskError, RuntimeError):
    """The ranks of a distributed run ended with different weights."""


@dataclass(frozen=True)
class Distributed:
    """The process group this process belongs to (one process, rank 0, when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints results."""
        return self.rank == 0

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if not self.active:
            return value

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.active:
            return [value]

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share of ``items`` (every ``world_size``-th, from ``rank``)."""
        return list(items[self.rank::self.world_size])

    def wrap(self, module: "torch.nn.Module", device: "torch.device") -> "torch.nn.Module":
        """``module`` wrapped in DistributedDataParallel (as it is in one process)."""
        if not self.active:
            return module

        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def sync_buffers(self, module: "torch.nn.Module") -> None:
        """Rank 0's buffers (e.g. BatchNorm statistics recomputed outside DDP) on every rank."""
        if not self.active:
            return

        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

    def check_replicas(self, module: "torch.nn.Module", what: str) -> list[str]:
        """The sha256 of every rank's weights; :class:`ReplicasDiffer` when they are not all equal."""
        digests = self.gather(weights_sha256(module))
        if len(set(digests)) > 1:
            raise ReplicasDiffer(f"{what}: the {self.world_size} ranks ended with different weights "
                                 f"({', '.join(d[:12] for d in digests)}); the run is not usable")
        return digests

    def to_dict(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend}


def weights_sha256(module: "torch.nn.Module") -> str:
    """Hex sha256 of a module's state (names, dtypes, shapes and values), wherever its tensors are."""

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def torchrun_world() -> tuple[int, int, int] | None:
    """(rank, local rank, world size) when torchrun started this process with more than one, else None."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return None
        return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"torchrun's environment is incomplete or malformed ({exc}); launch with torchrun, or unset "
                           "WORLD_SIZE to train in one process") from None


@contextlib.contextmanager
def start(device_choice: str) -> Iterator[tuple[Distributed, "torch.device"]]:
    """Join torchrun's process group (if any) on the device of ``device_choice``; leave it on exit.

    Yields the group and this process's device (``cuda:LOCAL_RANK`` for a CUDA run).
    """

    world = torchrun_world()
    if world is None:
        yield Distributed(), resolve_device(device_choice)
        return
    rank, local_rank, size = world
    device = resolve_device(device_choice, index=local_rank)
    if device.type == "mps":
        raise InvalidInput("distributed training runs on CUDA GPUs (nccl) or CPUs (gloo); MPS cannot join a process "
                           "group: use --device cpu, or train in one process")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    try:
        yield Distributed(rank, size, local_rank, backend), device
    finally:
        dist.destroy_process_group()
