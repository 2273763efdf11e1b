"""Phantom cohort generation: seconds and bytes per case for each size, and the 40-case small cohort.

Each measurement runs in its own process (so its peak memory is its own); the time is taken around
``generate_cohort`` only, after the imports (the 2-worker run includes starting its workers). Figures:

- ``seconds_per_case`` and ``bytes_per_case`` per size (one worker), ``peak_rss`` of that process;
- ``small_cohort_40_cases`` with 2 workers: the target is "about a minute or less on 2 cores";
- ``table_only_cases_per_second``: the generative model alone (no images), for large studies.

Usage: ``.venv/bin/python benchmarks/bench_synth.py [--sizes tiny,small,medium] [--skip-cohort40]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import emit, machine

BENCH = "synth"
#: Cases per size: enough to average over cases, few enough for `make bench` (medium is ~30 s a case).
CASES = {"tiny": 6, "small": 4, "medium": 2}
TARGET_40_SMALL_S = 60.0
#: "About a minute": up to 25 % over the target still counts; the measured seconds are printed anyway.
ABOUT_FACTOR = 1.25

_SNIPPET = """
import json, sys, time
from pathlib import Path
from sarcoma_risk.synthetic import generate_cohort
import lifelines, sarcoma_risk.synthetic.mri, sarcoma_risk.synthetic.wsi, tifffile  # imports outside the timing
out, n, size, workers, images = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
start = time.perf_counter()
generate_cohort(out, n, "A,B", seed=1, size=size, workers=workers, images=images)
seconds = time.perf_counter() - start
size_bytes = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
print(json.dumps({"seconds": seconds, "bytes": size_bytes}))
"""


def run(n_cases: int, size: str, workers: int, images: bool = True) -> dict:
    """Generate in a child process; its seconds, bytes written and peak RSS (MiB)."""
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        out = Path(tmp) / "cohort"
        proc = subprocess.Popen([sys.executable, "-c", _SNIPPET, str(out), str(n_cases), size, str(workers),
                                 "1" if images else "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # wait4 gives this child's own resource usage (ru_maxrss in KiB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout, stderr = proc.stdout.read(), proc.stderr.read()
        if proc.returncode != 0:
            raise SystemExit(f"generation failed ({size}, {n_cases} cases):\n{stderr}")
        result = json.loads(stdout.strip().splitlines()[-1])
        result["peak_rss_mib"] = usage.ru_maxrss / 1024
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,small,medium")
    parser.add_argument("--skip-cohort40", action="store_true", help="skip the 40-case small cohort (about a minute)")
    args = parser.parse_args()
    context = machine()

    result = run(2000, "tiny", 1, images=False)
    emit(BENCH, "table_only_cases_per_second", round(2000 / result["seconds"], 1), "cases/s", cases=2000, **context)

    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        n = CASES[size]
        result = run(n, size, 1)
        emit(BENCH, "seconds_per_case", round(result["seconds"] / n, 3), "s", size=size, cases=n, workers=1, **context)
        emit(BENCH, "bytes_per_case", round(result["bytes"] / n), "bytes", size=size, cases=n)
        emit(BENCH, "peak_rss", round(result["peak_rss_mib"], 1), "MiB", size=size, workers=1)

    if not args.skip_cohort40:
        result = run(40, "small", 2)
        emit(BENCH, "small_cohort_40_cases", round(result["seconds"], 1), "s", cases=40, workers=2,
             target_s=TARGET_40_SMALL_S, threshold_s=ABOUT_FACTOR * TARGET_40_SMALL_S,
             about_a_minute_or_less=result["seconds"] <= ABOUT_FACTOR * TARGET_40_SMALL_S,
             bytes=result["bytes"], **context)


if __name__ == "__main__":
    main()
