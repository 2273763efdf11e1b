"""Wall-clock time per named stage of a run, for the breakdowns that commands report and benchmarks print."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class Stopwatch:
    """Seconds per stage, in the order the stages were first timed; a stage timed twice adds up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` body as ``name`` (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def to_dict(self, digits: int = 3) -> dict[str, float]:
        return {stage: round(seconds, digits) for stage, seconds in self.seconds.items()}


@contextlib.contextmanager
def timed(stopwatch: Stopwatch | None, name: str) -> Iterator[None]:
    """``stopwatch.stage(name)``, or nothing when no stopwatch is given."""
    if stopwatch is None:
        yield
    else:
        with stopwatch.stage(name):
            yield
