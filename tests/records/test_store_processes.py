"""The case store under real concurrent processes: no lost updates (on SQLite, PostgreSQL and through the
server), and a killed writer loses only its own work.

The children are started with the "spawn" method (a fresh interpreter, as separate programs would
be); their functions live at module level so the child can import them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store
from sarcoma_risk.records.sqlite import SqliteStore

N_CASES = 50
#: Per writer: 10 per case on the SQLite file, 5 per case on the others (their round trips are slower).
UPDATES_PER_WRITER = {"sqlite": 500, "postgresql": 250, "http+postgresql": 250}

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX processes and SIGKILL")


def provenance() -> dict:
    return Provenance("process-test", "1.0", None).to_dict()


def case_of(update: int) -> str:
    return f"STS-{update % N_CASES:04d}"


def _apply(section: str, update: int, current: dict | None) -> dict:
    """Record ``update`` in the section, keeping every earlier one (a read-modify-write merge)."""
    if section == "radiology":
        seen = list(current["updates"]) if current else []
        return {"score": float(update), "updates": [*seen, update], "provenance": provenance()}
    slides = list(current["slides"]) if current else []
    return {"slides": [*slides, {"slide_sha256": f"{update:064x}", "update": update}], "score": None,
            "provenance": provenance()}


def _writer(location: str, section: str, updates: int, barrier) -> None:
    with open_store(location, "r+") as store:
        barrier.wait(timeout=60)  # both writers start together, so their transactions interleave
        for update in range(updates):
            store.update_section(case_of(update), section, lambda cur, u=update: _apply(section, u, cur))
            # A tool computes between two writes. Without a pause, one writer would re-take SQLite's
            # (unfair) write lock right after each commit and the other would wait until it finished.
            time.sleep(0.002)


def _same_section_writer(location: str, name: str, updates: int, barrier) -> None:
    with open_store(location, "r+") as store:
        barrier.wait(timeout=60)
        for update in range(updates):
            store.update_section(case_of(update % 5), "radiology", lambda cur, u=update: {
                "score": 0.0, "updates": [*(cur or {}).get("updates", []), f"{name}-{u}"], "provenance": provenance()})


def _writer_killed_mid_transaction(path: str, conn) -> None:
    big = "x" * 20_000
    with SqliteStore(path, "r+") as store:
        store.put_section("STS-0001", "radiology", {"score": 1.0, "provenance": provenance()})
        wal = Path(f"{path}-wal")
        committed_wal = wal.stat().st_size
        # A tiny page cache makes SQLite spill uncommitted pages into the WAL before the commit,
        # so the kill lands with part of the transaction already on disk.
        store.conn.execute("PRAGMA cache_size = 8")
        with store.transaction():
            for i in range(200):
                store.put_section(f"STS-{i:04d}", "pathology",
                                  {"slides": [{"note": big}], "provenance": provenance()})
            store.put_section("STS-0001", "radiology", {"score": 2.0, "provenance": provenance()})
            conn.send((committed_wal, wal.stat().st_size))
            time.sleep(120)  # killed here, inside the transaction


@pytest.mark.parametrize("backend", list(UPDATES_PER_WRITER), indirect=True)
def test_two_writer_processes_on_different_sections_of_the_same_cases_lose_no_update(backend):
    updates = UPDATES_PER_WRITER[backend.name]
    with backend.open("a") as store, store.transaction():
        for i in range(N_CASES):
            store.ensure_case(f"STS-{i:04d}")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_writer, args=(backend.location, section, updates, barrier))
               for section in ("radiology", "pathology")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=180)
    assert [w.exitcode for w in writers] == [0, 0]

    with backend.open("r") as store:
        records = {r.case_id: r for r in store.records()}
        audit = store.history()
    per_case = updates // N_CASES
    for i in range(N_CASES):
        record = records[f"STS-{i:04d}"]
        expected = [u for u in range(updates) if u % N_CASES == i]
        assert record.radiology["updates"] == expected
        assert [s["update"] for s in record.pathology["slides"]] == expected
        assert record.revision("radiology") == record.revision("pathology") == per_case
    for section in ("radiology", "pathology"):
        entries = [e for e in audit if e["section"] == section]
        assert len(entries) == updates
        assert sorted((e["case_id"], e["revision"]) for e in entries) == sorted(
            (f"STS-{i:04d}", r) for i in range(N_CASES) for r in range(1, per_case + 1))
    # The two writers really did run at the same time: their audit entries interleave.
    order = [e["section"] for e in audit if e["section"]]
    switches = sum(a != b for a, b in zip(order, order[1:]))
    assert switches > 10, f"the writers ran one after the other ({switches} switches); concurrency was not exercised"
    if backend.name == "sqlite":
        conn = sqlite3.connect(backend.database)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()


@pytest.mark.parametrize("backend", list(UPDATES_PER_WRITER), indirect=True)
def test_three_writer_processes_of_one_section_take_turns_and_lose_no_update(backend):
    updates = 60
    with backend.open("a"):
        pass  # an empty store for the writers to open
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    writers = [ctx.Process(target=_same_section_writer, args=(backend.location, name, updates, barrier))
               for name in "abc"]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=180)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    with backend.open("r") as store:
        records = list(store.records())
        audit = store.history(section="radiology")
    written = [u for r in records for u in r.radiology["updates"]]
    assert sorted(written) == sorted(f"{n}-{u}" for n in "abc" for u in range(updates))
    for record in records:
        revisions = [e["revision"] for e in audit if e["case_id"] == record.case_id]
        assert revisions == list(range(1, len(record.radiology["updates"]) + 1))


def test_a_writer_killed_inside_a_transaction_leaves_a_consistent_store_without_its_partial_write(tmp_path):
    path = tmp_path / "cases.sqlite"
    with SqliteStore(path, "a") as store:
        store.ensure_case("STS-0000")
        before_audit = len(store.history())
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    child = ctx.Process(target=_writer_killed_mid_transaction, args=(str(path), child_end))
    child.start()
    try:
        assert parent_end.poll(60), "the writer never reached the middle of its transaction"
        committed_wal, mid_transaction_wal = parent_end.recv()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL
    assert mid_transaction_wal > committed_wal + 1_000_000, "no uncommitted pages reached the WAL before the kill"

    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM sections WHERE section = 'pathology'").fetchone()[0] == 0
    finally:
        conn.close()
    with SqliteStore(path, "r+") as store:
        record = store.get("STS-0001")
        assert record.radiology["score"] == 1.0 and record.revision("radiology") == 1  # the commit before survives
        assert store.case_ids() == ["STS-0000", "STS-0001"]  # cases created inside the transaction are gone
        assert len(store.history()) == before_audit + 2  # create-case and create of the committed write only
        # The dead writer's lock went with it: the next write goes through at once.
        store.put_section("STS-0001", "radiology", {"score": 3.0, "provenance": provenance()}, expected_revision=1)
        assert store.get("STS-0001").revision("radiology") == 2
