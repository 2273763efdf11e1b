"""Reading training patches in batches: threads in this process, or DataLoader worker processes.

:class:`PatchReader` turns a list of (slide, x, y) items into uint8 batches (b, px, px, 3), in item
order, so what the model sees does not depend on how the patches were read: with ``num_workers=0``
reader threads of this process decode them (:func:`~sarcoma_risk.pathology.infer.read_batches`,
the default, best on a small CPU machine where the model needs every core); with ``num_workers >
0`` a ``torch.utils.data.DataLoader`` reads each batch in one of that many worker processes (on a
GPU machine, where decoding JPEG tiles must keep up with the GPU and Python threads cannot).

The workers are started once per reader ("spawn": a fresh interpreter, no OpenSlide state or torch
threads inherited from a fork) and kept for every batch the reader is asked for. What they receive
is :class:`PatchDataset`: the slides' paths and patch geometries only; each worker opens its own
OpenSlide handles on first use (OpenSlide handles cannot be pickled or shared between processes).
When the device is CUDA the batches come in page-locked memory, so the copy to the GPU is
asynchronous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from sarcoma_risk.pathology.infer import read_batches
from sarcoma_risk.pathology.slide import PatchGeometry, open_slide, shared_cache

#: OpenSlide tile cache of each worker process, in megabytes.
WORKER_CACHE_MB = 64


class PatchDataset:
    """Patches of a fixed list of slides, keyed by (slide index, x, y); picklable without open handles.

    ``__getitems__`` reads a whole batch (the DataLoader's fast path for batch samplers) into one
    uint8 tensor (b, patch_px, patch_px, 3).
    """

    def __init__(self, slides: Sequence[tuple[Path, PatchGeometry]]) -> None:
        self.slides = list(slides)
        self._open: dict[int, Any] = {}
        self._cache: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # handles and caches stay in the process that opened them; a worker opens its own
        return {"slides": self.slides, "_open": {}, "_cache": None}

    def __len__(self) -> int:
        return len(self.slides)

    def _slide(self, index: int) -> Any:
        if index not in self._open:
            if self._cache is None:
                self._cache = shared_cache(WORKER_CACHE_MB)
            self._open[index] = open_slide(self.slides[index][0], cache=self._cache)
        return self._open[index]

    def __getitem__(self, key: tuple[int, int, int]) -> np.ndarray:
        index, x, y = key
        return self._slide(index).read_patch(x, y, self.slides[index][1])

    def __getitems__(self, keys: Sequence[tuple[int, int, int]]) -> "torch.Tensor":
        px = self.slides[keys[0][0]][1].patch_px if keys else 0
        batch = torch.empty((len(keys), px, px, 3), dtype=torch.uint8)
        for i, key in enumerate(keys):
            batch[i] = torch.from_numpy(np.ascontiguousarray(self[key]))
        return batch

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()


def _whole_batch(batch: "torch.Tensor") -> "torch.Tensor":
    """The DataLoader's collate function: ``__getitems__`` already made the batch."""
    return batch


class _BatchList:
    """A batch sampler whose batches are set before each pass (picked up by persistent workers)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PatchReader:
    """Batches of training patches (see the module docstring).

    Parameters
    ----------
    pool : sarcoma_risk.pathology.train.SlidePool
        The open slides of this process (the thread path reads through it).
    refs : sequence of sarcoma_risk.pathology.train.SlideRef
        Every slide the reader will be asked about, with its patch geometry laid.
    threads : int
        Reader threads of the in-process path.
    num_workers : int
        DataLoader worker processes (0: read in this process).
    pin_memory : bool
        Page-locked batches (for a CUDA device).
    """

    def __init__(self, pool: Any, refs: Sequence[Any], *, threads: int = 2, num_workers: int = 0,
                 pin_memory: bool = False) -> None:
        self.pool, self.threads, self.num_workers = pool, threads, num_workers
        self._index = {id(ref): i for i, ref in enumerate(refs)}
        self._refs = list(refs)
        self._loader: Any = None
        self._sampler = _BatchList()
        if num_workers:
            dataset = PatchDataset([(ref.path, ref.geometry) for ref in refs])
            self._loader = DataLoader(dataset, batch_sampler=self._sampler, num_workers=num_workers,
                                      collate_fn=_whole_batch, pin_memory=pin_memory, persistent_workers=True,
                                      multiprocessing_context="spawn",
                                      # its own generator: creating an iterator draws a seed, which must not
                                      # come from torch's global generator (the training's)
                                      generator=torch.Generator().manual_seed(0))

    def batches(self, items: Sequence[tuple[Any, int, int]], batch_size: int) -> Iterator[tuple[int, "torch.Tensor"]]:
        """``(start, uint8 tensor (b, px, px, 3))`` for consecutive ``batch_size`` runs of ``items``, in order."""

        if self._loader is None:
            slides = {id(ref): self.pool.get(ref) for ref, _, _ in items}  # opened here, read from threads

            def read(item: tuple[Any, int, int]) -> np.ndarray:
                ref, x, y = item
                return slides[id(ref)].read_patch(x, y, ref.geometry)

            patch_px = items[0][0].geometry.patch_px if items else 0
            for start, batch in read_batches(list(items), read, patch_px, batch_size=batch_size, workers=self.threads):
                yield start, torch.from_numpy(batch)
            return
        keys = [(self._index[id(ref)], int(x), int(y)) for ref, x, y in items]
        self._sampler.batches = [keys[i:i + batch_size] for i in range(0, len(keys), batch_size)]
        for number, batch in enumerate(self._loader):
            yield number * batch_size, batch

    def close(self) -> None:
        """Stop the worker processes (the thread path holds nothing)."""
        # DataLoader has no public call to stop persistent workers: its iterator stops them when freed
        self._loader = None
