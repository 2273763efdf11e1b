"""Faults around the real ``sarcoma-risk serve`` process on PostgreSQL: the database stopped while the
server runs (clear 503, nothing half-written, recovery when it returns) and the server killed in the
middle of writes (every record whole afterwards)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from records.conftest import content
from sarcoma_risk.errors import SarcomaRiskError, StoreUnavailable
from sarcoma_risk.records.postgres import PostgresStore
from sarcoma_risk.records.remote import HttpStore
from sarcoma_risk.records.schema import content_sha256
from serverutil import ServerProcess, health, request

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


@pytest.fixture
def served(postgres_url, tmp_path):
    """A PostgreSQL database with a radiologist's token, and a server process for it (not started)."""
    with PostgresStore(postgres_url, "a") as store:
        token = store.add_user("rad.fault", "radiologist")
    server = ServerProcess(postgres_url, tmp_path / "server.log", "--transaction-idle-s", "5")
    yield postgres_url, token, server
    server.kill()


def wait_for_health(url: str, status: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = health(url)
        if answer is not None and answer[0] == status:
            return answer[1]
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s (last: {health(url)})")


def test_postgresql_stopped_while_the_server_runs_gives_a_clear_503_writes_nothing_half_and_recovers(
        served, postgres_cluster):
    database, token, server = served
    server.start()
    with HttpStore(server.url, "a", token=token) as client:
        client.put_section("STS-0001", "radiology", content("radiology", score=1.0))
        pending = client.transaction()
        pending.__enter__()  # a client in the middle of a two-case write when the database goes away
        client.put_section("STS-0002", "radiology", content("radiology", score=2.0))
        client.put_section("STS-0003", "radiology", content("radiology", score=3.0))
        postgres_cluster.stop("fast")
        try:
            status, headers, body = request(f"{server.url}/api/v1/cases/STS-0001", token=token)
            error = json.loads(body)["error"]
            assert status == 503 and headers["Retry-After"]
            assert error["type"] == "StoreUnavailable" and "PostgreSQL server cannot be reached" in error["message"]
            assert health(server.url)[0] == 503
            with pytest.raises(StoreUnavailable, match="nothing was written"):
                client.put_section("STS-0004", "radiology", content("radiology"))
            with pytest.raises(SarcomaRiskError):
                pending.__exit__(None, None, None)  # its commit cannot succeed
        finally:
            postgres_cluster.start()
        wait_for_health(server.url, 200)  # the same server process recovers on its own
        assert client.case_ids() == ["STS-0001"]  # nothing of the interrupted transaction, nor of the refused write
        assert client.get("STS-0001").radiology["score"] == 1.0
        assert client.put_section("STS-0001", "radiology", content("radiology", score=5.0), expected_revision=1) == 2
    assert server.process.poll() is None


def _hammer(url: str, token: str, worker: int, stop: threading.Event, done: list[int]) -> None:
    """Append numbered updates to the radiology section of a few cases until the server goes away."""
    try:
        with HttpStore(url, "a", token=token, timeout=10) as client:
            n = 0
            while not stop.is_set():
                case_id = f"STS-{n % 5:04d}"
                client.update_section(case_id, "radiology", lambda cur, n=n: content(
                    "radiology", updates=[*(cur or {}).get("updates", []), f"{worker}-{n}"]))
                done.append(n)
                n += 1
    except SarcomaRiskError:
        return  # the server was killed under this writer


def test_the_server_killed_in_the_middle_of_writes_leaves_every_record_whole(served):
    database, token, server = served
    server.start()
    client = HttpStore(server.url, "a", token=token).open()
    client.put_section("STS-0009", "radiology", content("radiology", score=9.0))
    pending = client.transaction()
    pending.__enter__()  # a transaction with writes, open when the server dies
    client.put_section("STS-0009", "radiology", content("radiology", score=-9.0))
    client.put_section("STS-0010", "radiology", content("radiology", score=10.0))
    stop, done = threading.Event(), []
    writers = [threading.Thread(target=_hammer, args=(server.url, token, w, stop, done)) for w in range(3)]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 30
    while len(done) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill(signal.SIGKILL)  # while three writers are in full flight
    stop.set()
    for w in writers:
        w.join(timeout=30)
    assert len(done) >= 60, "the writers never got going"
    with pytest.raises(StoreUnavailable):
        pending.__exit__(None, None, None)  # the commit finds no server

    with PostgresStore(database, "r") as store:
        assert store.get("STS-0009").radiology["score"] == 9.0 and not store.exists("STS-0010")
        records = {r.case_id: r for r in store.records()}
        audit = store.history()
    for case_id, record in records.items():
        entries = [e for e in audit if e["case_id"] == case_id and e["section"] == "radiology"]
        # Every revision has exactly one audit entry, the last one hashes the stored content, and each
        # update appended exactly one item: nothing half-applied, nothing logged without its write.
        assert [e["revision"] for e in entries] == list(range(1, record.revision("radiology") + 1))
        assert entries[-1]["new_sha256"] == content_sha256(record.radiology)
        if case_id != "STS-0009":
            assert len(record.radiology["updates"]) == record.revision("radiology")
    restarted = ServerProcess(database, server.log).start()
    try:
        with HttpStore(restarted.url, "a", token=token) as client:
            assert client.update_section("STS-0000", "radiology", lambda cur: content(
                "radiology", updates=[*cur["updates"], "after"])) == records["STS-0000"].revision("radiology") + 1
    finally:
        restarted.kill()
