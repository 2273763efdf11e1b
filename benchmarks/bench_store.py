"""Case store throughput: section updates per second with one writer and with two concurrent writers.

Each update is a read-modify-write of one section in its own transaction (``update_section``, the
way tools merge results), committed with ``synchronous=FULL``. One writer updates the radiology
section of 50 cases; then, on a fresh store, two writer processes update the radiology and the
pathology sections of the same 50 cases at once. Afterwards every update is looked for in the
final records and in the audit log; ``lost_updates`` must be 0.

Commits are fsync-bound, so the figures follow the disk and its other load; one and two writers
alternate over several rounds and medians are reported. SQLite's write lock is not fair: under
full contention one writer may finish well before the other (``writers_finished_after_s``).

Run: ``.venv/bin/python benchmarks/bench_store.py [--updates N] [--rounds R]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

from common import emit, machine

from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records.sqlite import SqliteStore

BENCH = "store"
N_CASES = 50


def _content(section: str, update: int, current: dict | None, provenance: dict) -> dict:
    seen = list(current["updates"]) if current else []
    base = {"score": float(update)} if section == "radiology" else {"slides": [], "score": float(update)}
    return {**base, "updates": [*seen, update], "provenance": provenance}


def _write(path: str, section: str, updates: int, barrier, results) -> None:
    provenance = Provenance("bench-store", "1", None).to_dict()
    with SqliteStore(path, "r+") as store:
        if barrier is not None:
            barrier.wait(timeout=120)
        start = time.perf_counter()
        for u in range(updates):
            store.update_section(f"STS-{u % N_CASES:04d}", section,
                                 lambda cur, u=u: _content(section, u, cur, provenance))
        results.put((section, start, time.perf_counter()))


def _new_store(folder: Path, name: str) -> Path:
    path = folder / name
    with SqliteStore(path, "x") as store, store.transaction():
        for i in range(N_CASES):
            store.ensure_case(f"STS-{i:04d}")
    return path


def _lost_updates(path: Path, sections: tuple[str, ...], updates: int) -> int:
    """Updates missing from the final records or from the audit log."""
    with SqliteStore(path, "r") as store:
        records = {r.case_id: r for r in store.records()}
        audit = store.history()
    lost = 0
    for section in sections:
        present = set()
        for record in records.values():
            content = record.section(section) or {"updates": []}
            present.update(content["updates"])
        lost += updates - len(present & set(range(updates)))
        logged = sum(1 for e in audit if e["section"] == section)
        lost += max(0, updates - logged)
    return lost


def _one_writer(folder: Path, name: str, updates: int, results) -> tuple[float, int]:
    path = _new_store(folder, name)
    _write(str(path), "radiology", updates, None, results)
    _, start, end = results.get()
    return updates / (end - start), _lost_updates(path, ("radiology",), updates)


def _two_writers(folder: Path, name: str, updates: int, ctx, results) -> tuple[float, dict, int]:
    path = _new_store(folder, name)
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_write, args=(str(path), s, updates, barrier, results))
               for s in ("radiology", "pathology")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=600)
    if any(w.exitcode != 0 for w in writers):
        raise SystemExit(f"a writer failed: exit codes {[w.exitcode for w in writers]}")
    spans = {section: (s, e) for section, s, e in (results.get() for _ in writers)}
    first_start = min(s for s, _ in spans.values())
    wall = max(e for _, e in spans.values()) - first_start
    finished = {section: round(e - first_start, 3) for section, (_, e) in sorted(spans.items())}
    return 2 * updates / wall, finished, _lost_updates(path, ("radiology", "pathology"), updates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=1000, help="updates per writer and round (default 1000)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are reported (default 5)")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    one_rates, two_rates, finished, lost = [], [], [], 0
    # One and two writers alternate, round after round, so a change in disk load (fsync time
    # dominates) affects both alike; the medians and ranges are reported.
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for r in range(args.rounds):
            rate, missing = _one_writer(Path(tmp), f"one-{r}.sqlite", args.updates, results)
            one_rates.append(rate)
            lost += missing
            rate, ends, missing = _two_writers(Path(tmp), f"two-{r}.sqlite", args.updates, ctx, results)
            two_rates.append(rate)
            finished.append(ends)
            lost += missing
    context = {**machine(), "cases": N_CASES, "updates_per_writer": args.updates, "rounds": args.rounds,
               "synchronous": "FULL"}
    one, two = statistics.median(one_rates), statistics.median(two_rates)
    emit(BENCH, "section_updates_per_s_one_writer", round(one, 1), "updates/s",
         range=[round(min(one_rates), 1), round(max(one_rates), 1)], **context)
    emit(BENCH, "section_updates_per_s_two_writers", round(two, 1), "updates/s",
         range=[round(min(two_rates), 1), round(max(two_rates), 1)], ratio_to_one_writer=round(two / one, 2),
         writers_finished_after_s=finished, **context)
    emit(BENCH, "lost_updates", lost, "updates", expected_updates=3 * args.updates * args.rounds)


if __name__ == "__main__":
    main()
