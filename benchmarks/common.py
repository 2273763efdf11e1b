"""Shared output format for benchmarks: one JSON line per figure on stdout."""

from __future__ import annotations

import json
import os
import platform
import sys
from typing import Any


def emit(bench: str, figure: str, value: float | int | None, unit: str, **extra: Any) -> None:
    """Print one figure as a JSON line: bench, figure, value, unit, plus any context."""
    line = {"bench": bench, "figure": figure, "value": value, "unit": unit, **extra}
    print(json.dumps(line, sort_keys=False, allow_nan=False), flush=True)


def machine() -> dict[str, Any]:
    """Context worth printing once per benchmark: CPU count and Python version."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": sys.platform}
