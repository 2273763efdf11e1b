"""Every store backend keeps the same promises: revisions, stale writes refused, merges, transactions,
an append-only audit log, read-only mode, exports and API tokens (SQLite, PostgreSQL, and the server
over each)."""

from __future__ import annotations

import csv
import json

import pytest

from records.conftest import Backend, content
from sarcoma_risk.errors import CaseNotFound, InvalidCaseId, InvalidInput, ReadOnlyStore, StaleRevision
from sarcoma_risk.provenance import current_user
from sarcoma_risk.records.schema import CaseRecord, content_sha256


@pytest.fixture
def filled(backend: Backend) -> Backend:
    """STS-0001 (clinical r1, radiology r2) and STS-0002 (clinical r1)."""
    with backend.open("a") as store:
        store.put_section("STS-0001", "clinical", content("clinical"))
        store.put_section("STS-0001", "radiology", content("radiology", score=0.1))
        store.put_section("STS-0001", "radiology", content("radiology", score=0.2))
        store.put_section("STS-0002", "clinical", content("clinical", values={"age_years": 45.0}))
    return backend


# ---- revisions, stale writes, merges -------------------------------------------------------------


def test_a_written_section_reads_back_with_revision_one(backend):
    with backend.open("a") as store:
        assert store.put_section("STS-0001", "radiology", content("radiology", score=0.7)) == 1
        record = store.get("STS-0001")
        assert store.read_section("STS-0001", "radiology") == (record.radiology, 1)
        assert store.read_section("STS-0001", "pathology") == (None, 0)
    assert record.radiology["score"] == 0.7
    assert record.revision("radiology") == 1 and record.revision("pathology") == 0
    assert record.clinical is None and record.created_utc and record.updated_utc


def test_each_write_raises_the_revision_and_logs_old_and_new_hashes_with_the_writer(filled):
    with filled.open("r") as store:
        record = store.get("STS-0001")
        entries = store.history("STS-0001", "radiology")
    assert record.revision("radiology") == 2
    assert [e["action"] for e in entries] == ["create", "update"]
    assert entries[1]["old_sha256"] == entries[0]["new_sha256"]
    assert entries[1]["new_sha256"] == content_sha256(record.radiology)
    assert all(e["host"] and e["at_utc"].endswith("Z") for e in entries)
    # Through the server, the authenticated user; on a database, the login of the process.
    assert {e["user"] for e in entries} == {"admin.test" if filled.remote else current_user()}


def test_a_stale_update_is_refused_and_changes_nothing(filled):
    with filled.open("r+") as alice, filled.open("r+") as bob:
        read = alice.get("STS-0001").revision("radiology")
        bob.put_section("STS-0001", "radiology", content("radiology", score=0.9), expected_revision=read)
        before = filled.dump()
        with pytest.raises(StaleRevision, match="you read revision 2 but the store now holds revision 3"):
            alice.put_section("STS-0001", "radiology", content("radiology", score=-1.0), expected_revision=read)
        assert alice.get("STS-0001").radiology["score"] == 0.9
    assert filled.dump() == before


def test_expected_revision_zero_refuses_to_overwrite_an_existing_section(filled):
    with filled.open("r+") as store:
        with pytest.raises(StaleRevision, match="revision 0 .* revision 1"):
            store.put_section("STS-0002", "clinical", content("clinical"), expected_revision=0)
        assert store.put_section("STS-0002", "radiology", content("radiology"), expected_revision=0) == 1


def test_update_section_merges_on_the_current_content(filled):
    with filled.open("r+") as store:
        for sha in ("a" * 64, "b" * 64):
            store.update_section("STS-0002", "pathology", lambda cur, sha=sha: content(
                "pathology", slides=[*(cur or {"slides": []})["slides"], {"slide_sha256": sha}]))
        record = store.get("STS-0002")
    assert [s["slide_sha256"][0] for s in record.pathology["slides"]] == ["a", "b"]
    assert record.revision("pathology") == 2


def test_an_error_inside_update_section_writes_nothing(filled):
    before = filled.dump()

    def broken(current):
        raise ValueError("merge failed")

    with filled.open("r+") as store, pytest.raises(ValueError, match="merge failed"):
        store.update_section("STS-0003", "radiology", broken)
    assert filled.dump() == before


def test_a_transaction_writes_everything_or_nothing_and_an_inner_one_undoes_only_its_own(backend):
    with backend.open("a") as store:
        with store.transaction():
            store.put_section("STS-0001", "clinical", content("clinical"))
            with pytest.raises(StaleRevision):
                with store.transaction():
                    store.put_section("STS-0002", "clinical", content("clinical"))
                    store.put_section("STS-0002", "clinical", content("clinical"), expected_revision=0)
            # Inside the transaction its own writes are visible.
            assert store.get("STS-0001").revision("clinical") == 1
        assert store.case_ids() == ["STS-0001"]
        before = backend.dump()
        with pytest.raises(RuntimeError), store.transaction():
            store.put_section("STS-0003", "clinical", content("clinical"))
            store.update_section("STS-0001", "radiology", lambda cur: content("radiology"))
            raise RuntimeError("abort the whole import")
        assert store.case_ids() == ["STS-0001"]
        assert store.get("STS-0001").radiology is None
    assert backend.dump() == before


def test_invalid_case_ids_are_refused_by_every_call_and_nothing_is_written(filled):
    before = filled.dump()
    with filled.open("r+") as store:
        for case_id in ["", "../STS-0001", "STS/1", "x'; DROP TABLE cases;--", "S" * 33, "STS-Ä1", "John Smith"]:
            with pytest.raises(InvalidCaseId):
                store.put_section(case_id, "clinical", content("clinical"))
            with pytest.raises(InvalidCaseId):
                store.update_section(case_id, "clinical", lambda cur: content("clinical"))
            with pytest.raises(InvalidCaseId):
                store.ensure_case(case_id)
            with pytest.raises(InvalidCaseId):
                store.get(case_id)
    assert filled.dump() == before


def test_invalid_section_content_is_refused_and_nothing_is_written(filled):
    before = filled.dump()
    with filled.open("r+") as store:
        with pytest.raises(InvalidInput, match="provenance"):
            store.put_section("STS-0009", "radiology", {"score": 0.1})
        with pytest.raises(InvalidInput, match="genomics"):
            store.update_section("STS-0009", "genomics", lambda cur: {})
        with pytest.raises(InvalidInput, match="not a finite number"):
            store.put_section("STS-0009", "radiology", content("radiology", score=float("nan")))
    assert filled.dump() == before


def test_an_unknown_case_is_reported_as_not_found(filled):
    with filled.open("r") as store:
        with pytest.raises(CaseNotFound, match="'STS-0404' is not in the store"):
            store.get("STS-0404")
        assert not store.exists("STS-0404") and store.exists("STS-0001")


# ---- the audit log -------------------------------------------------------------------------------


@pytest.mark.parametrize("statement", ["UPDATE audit SET host = 'elsewhere'", "DELETE FROM audit"])
def test_the_audit_log_behind_the_store_refuses_updates_and_deletes(filled, statement):
    before = filled.dump()
    with filled.sql() as conn, pytest.raises(Exception, match="append-only"):
        conn.execute(statement)
    assert filled.dump() == before


def test_history_filters_by_case_and_section_and_keeps_the_newest_n(filled):
    with filled.open("r") as store:
        everything = store.history()
        assert [e["id"] for e in everything] == sorted(e["id"] for e in everything)
        assert [e["action"] for e in everything if e["case_id"] == "STS-0002"] == ["create-case", "create"]
        assert {e["case_id"] for e in store.history("STS-0002")} == {"STS-0002"}
        assert len(store.history(section="radiology")) == 2
        assert store.history(limit=2) == everything[-2:]
        with pytest.raises(InvalidInput, match="limit"):
            store.history(limit=0)


# ---- modes -----------------------------------------------------------------------------------


def test_read_mode_reads_everything_writes_nothing_and_refuses_writes(filled):
    before = filled.dump()
    with filled.open("r") as store:
        assert store.case_ids() == ["STS-0001", "STS-0002"]
        assert [r.case_id for r in store.records()] == ["STS-0001", "STS-0002"]
        store.history()
        with pytest.raises(ReadOnlyStore, match="read-only"):
            store.put_section("STS-0003", "clinical", content("clinical"))
        with pytest.raises(ReadOnlyStore):
            store.update_section("STS-0001", "clinical", lambda cur: content("clinical"))
        with pytest.raises(ReadOnlyStore):
            store.ensure_case("STS-0003")
        with pytest.raises(ReadOnlyStore), store.transaction():
            pass
    assert filled.dump() == before


# ---- export --------------------------------------------------------------------------------------


def test_csv_export_has_one_row_per_case_and_empty_cells_for_missing_modalities(filled, tmp_path):
    with filled.open("r+") as store:
        store.put_section("STS-0002", "radiology", content("radiology", score=0.0))
        assert store.write_csv(tmp_path / "cases.csv") == 2
    with open(tmp_path / "cases.csv", newline="", encoding="utf-8") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle)}
    assert rows["STS-0001"]["radiology.score"] == "0.2"
    assert rows["STS-0002"]["radiology.score"] == "0.0"  # a real zero
    for column in ("pathology.score", "pathology.n_slides", "fusion.risk", "fusion.group"):
        assert rows["STS-0001"][column] == ""  # missing, not zero
    assert rows["STS-0002"]["age_years"] == "45.0"
    assert rows["STS-0001"]["clinical.provenance.model"] == "unit-test@1.0"


def test_json_export_holds_full_records_that_read_back(filled, tmp_path):
    with filled.open("r") as store:
        assert store.write_json(tmp_path / "cases.json") == 2
        expected = [r.to_dict() for r in store.records()]
    data = json.loads((tmp_path / "cases.json").read_text(encoding="utf-8"))
    assert data == expected
    assert CaseRecord.from_dict(data[0]).revision("radiology") == 2


# ---- API tokens ----------------------------------------------------------------------------------


def test_a_token_is_issued_once_listed_without_itself_and_revoked(backend):
    with backend.open("a") as store:
        token = store.add_user("r.jones", "radiologist", expires_days=30)
        assert token.startswith("srk_") and len(token) >= 40
        with pytest.raises(InvalidInput, match="already has a valid token"):
            store.add_user("r.jones", "pathologist")
        listed = {a.name: a for a in store.users()}
        assert listed["r.jones"].role.value == "radiologist"
        assert token not in repr(listed) and token not in backend.dump()  # only its hash is kept
        assert store.revoke_user("r.jones") == 1
        assert "r.jones" not in {a.name for a in store.users()}
        assert [a.status("2000-01-01T00:00:00Z") for a in store.users(include_past=True) if a.name == "r.jones"] == [
            "revoked"]
        assert store.add_user("r.jones", "radiologist") != token  # a new token after revoking the old one
        with pytest.raises(InvalidInput, match="role"):
            store.add_user("someone", "surgeon")
        with pytest.raises(InvalidInput, match="user name"):
            store.add_user("Robert Jones", "radiologist")
