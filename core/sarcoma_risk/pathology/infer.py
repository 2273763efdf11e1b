"""Streaming inference: reader threads fill a bounded queue of patch batches, the model empties it.

Reading and the model cost the same order of CPU per patch (decoding a 224-pixel JPEG region with
OpenSlide about 1.5 ms, ShuffleNetV2 x0.5 at 112 px about 1 ms on one thread; x1.0 at 224 px
several times more), so they run side by side: one producer thread assembles batches with a small
pool of reader threads (OpenSlide and Pillow release the GIL while decoding) and puts them in a
queue of ``queue_batches`` batches. Memory is bounded by that queue, whatever the slide's size.
The model runs in the calling thread under ``torch.inference_mode``, on the cores the readers
leave (:func:`model_threads`); results are handed to ``on_batch`` (e.g. the tile cache writer)
as they come. A progress bar goes to stderr.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from sarcoma_risk.pathology.slide import PatchGeometry, Slide
from sarcoma_risk.stopwatch import Stopwatch, timed

_DONE = object()
T = TypeVar("T")


def iter_batches(items: Sequence[T], read_one: Callable[[T], np.ndarray], patch_px: int, *, batch_size: int = 64,
                 workers: int = 2, queue_batches: int = 2) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, patches)``: ``read_one(item)`` for each item, as uint8 (b, patch_px, patch_px, 3) batches.

    Batches come in item order. Reading runs ahead in background threads by at most
    ``queue_batches`` batches; an error while reading (e.g. a damaged tile) is raised here, in the
    consumer, and stops the readers.
    """
    out: queue.Queue = queue.Queue(maxsize=max(1, queue_batches))
    stop = threading.Event()
    px = patch_px

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="patch-reader") as pool:
                for start in range(0, len(items), batch_size):
                    if stop.is_set():
                        return
                    chunk = items[start:start + batch_size]
                    batch = np.empty((len(chunk), px, px, 3), dtype=np.uint8)
                    for i, patch in enumerate(pool.map(read_one, chunk)):
                        batch[i] = patch
                    if not put((start, batch)):
                        return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    producer = threading.Thread(target=produce, name="patch-batcher", daemon=True)
    producer.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def read_batches(items: Sequence[T], read_one: Callable[[T], np.ndarray], patch_px: int, *, batch_size: int = 64,
                 workers: int = 2) -> Iterator[tuple[int, np.ndarray]]:
    """Like :func:`iter_batches` but without reading ahead: each batch is read (in parallel) when asked for.

    For training, where the model's backward pass dwarfs reading: reader threads decoding JPEG
    while torch's OpenMP threads compute would take cores from them, and on a small machine an
    OpenMP barrier waiting for a descheduled thread costs far more than the overlap gains.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="patch-reader") as pool:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = np.empty((len(chunk), patch_px, patch_px, 3), dtype=np.uint8)
            for i, patch in enumerate(pool.map(read_one, chunk)):
                batch[i] = patch
            yield start, batch


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def model_threads(readers: int) -> Iterator[int]:
    """Give torch the cores the reader threads leave, at least one, while streaming; yield that number.

    torch's OpenMP threads wait for each other at every layer: when reader threads take a core
    from one of them, the others spin until it is scheduled again. On 2 cores with 2 readers, the
    model with 2 threads ran 5-8x slower per patch than with 1 (and the readers slower too), so the
    model runs on ``cores - readers`` threads (never more than torch was set to use).
    """

    previous = torch.get_num_threads()
    threads = max(1, min(previous, available_cores() - max(1, readers)))
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)


def score_patches(slide: Slide, coords: np.ndarray, geometry: PatchGeometry, runner: Callable[[np.ndarray], np.ndarray],
                  *, batch_size: int = 64, workers: int = 2, progress: bool = True,
                  on_batch: Callable[[int, np.ndarray], None] | None = None,
                  stopwatch: Stopwatch | None = None) -> np.ndarray:
    """Probabilities (n,) float32 of every patch at ``coords``, streamed through ``runner``.

    ``workers`` reader threads decode patches while the model runs on the remaining cores
    (:func:`model_threads`). ``stopwatch`` receives where the consumer's time went: ``model``
    (``runner``), ``waiting_for_patches`` (reading had not kept up) and ``tile_cache_write``
    (``on_batch``).
    """

    probabilities = np.empty(len(coords), dtype=np.float32)
    # disable=None: no bar when stderr is not a terminal (batch jobs, logs, the Slicer process)
    with model_threads(workers), tqdm(total=len(coords), unit="patch", desc="scoring patches", file=sys.stderr,
                                      disable=None if progress else True, leave=False) as bar:
        read = lambda xy: slide.read_patch(int(xy[0]), int(xy[1]), geometry)  # noqa: E731
        # closing(): the readers stop at once if the model or on_batch raises
        with contextlib.closing(iter_batches(coords, read, geometry.patch_px, batch_size=batch_size,
                                             workers=workers)) as batches:
            while True:
                with timed(stopwatch, "waiting_for_patches"):
                    item = next(batches, None)
                if item is None:
                    break
                start, batch = item
                with timed(stopwatch, "model"):
                    probs = runner(batch)
                probabilities[start:start + len(probs)] = probs
                if on_batch is not None:
                    with timed(stopwatch, "tile_cache_write"):
                        on_batch(start, probs)
                bar.update(len(probs))
    return probabilities
