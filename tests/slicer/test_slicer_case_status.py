"""The case-record summary the module shows, read from a real case store."""

from __future__ import annotations

import pytest

from sarcoma_risk.errors import InvalidCaseId
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store


def provenance(timestamp: str) -> dict:
    return Provenance("test", "0", None, timestamp_utc=timestamp).to_dict()


def fusion_section(timestamp: str, used=("clinical", "radiology", "pathology")) -> dict:
    return {"risk": 0.81, "group": "high", "model": "+".join(used), "modalities_used": list(used),
            "survival": {"12": 0.93, "36": 0.71, "60": 0.55}, "provenance": provenance(timestamp)}


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "cases.sqlite"
    with open_store(path, mode="a") as s:
        s.put_section("STS-0001", "clinical", {"values": {"age": 61}, "provenance": provenance("2026-01-01T10:00:00Z")})
        s.put_section("STS-0001", "radiology", {"score": 0.4, "provenance": provenance("2026-01-02T10:00:00Z")})
    return path


def test_a_store_that_does_not_exist_yet_is_not_created_by_reading_it(tmp_path):
    from SarcomaRiskLib import list_case_ids, read_case_status

    path = tmp_path / "cases.sqlite"
    status = read_case_status(path, "STS-0001")
    assert not status.in_store and list_case_ids(path) == []
    assert status.lines() == ["Case STS-0001 is not in the store yet; Compute creates it."]
    assert not path.exists()


def test_missing_modalities_are_listed_with_what_to_do(store):
    from SarcomaRiskLib import read_case_status

    status = read_case_status(store, "STS-0001")
    assert status.present == ("clinical", "radiology") and status.missing == ("pathology",)
    assert not status.ready_for_fusion
    lines = status.lines()
    assert lines[:2] == ["Clinical: present (revision 1)", "Radiology: present (revision 1)"]
    assert lines[2] == "Pathology: missing; score the H&E slide in QuPath (sarcoma-qupath)"
    assert lines[3] == "Fused risk: not computed (missing: pathology)"


def test_the_radiology_line_names_the_model_that_scored_the_case(store):
    from SarcomaRiskLib import read_case_status

    with open_store(store, mode="a") as s:
        s.put_section("STS-0001", "radiology", {"score": 0.4, "sequences": ["t2fs"], "model": "radiology-t2fs",
                                                "provenance": provenance("2026-01-02T11:00:00Z")})
    assert read_case_status(store, "STS-0001").lines()[1] == ("Radiology: present (revision 2; scored by the "
                                                              "radiology-t2fs model)")


def test_a_current_fusion_shows_risk_group_and_survival(store):
    from SarcomaRiskLib import read_case_status

    with open_store(store, mode="a") as s:
        s.put_section("STS-0001", "pathology", {"slides": [], "score": -0.2, "provenance": provenance("2026-01-03T10:00:00Z")})
        s.put_section("STS-0001", "fusion", fusion_section("2026-01-03T10:00:05Z"))
    status = read_case_status(store, "STS-0001")
    assert status.ready_for_fusion and status.fusion_current
    assert status.lines()[-1] == ("Fused risk: HIGH risk group; log relative hazard 0.81; model "
                                  "clinical+radiology+pathology; recurrence-free survival 1 y 93%, 3 y 71%, 5 y 55%")


def test_a_fusion_older_than_a_modality_or_from_other_modalities_is_out_of_date(store):
    from SarcomaRiskLib import read_case_status

    with open_store(store, mode="a") as s:
        s.put_section("STS-0001", "fusion", fusion_section("2026-01-02T12:00:00Z", used=("clinical", "radiology")))
    assert read_case_status(store, "STS-0001").fusion_current
    with open_store(store, mode="a") as s:  # a new radiology score after the fusion
        s.put_section("STS-0001", "radiology", {"score": 0.9, "provenance": provenance("2026-01-05T10:00:00Z")})
    status = read_case_status(store, "STS-0001")
    assert not status.fusion_current
    assert status.lines()[-1].startswith("Fused risk: out of date")
    with open_store(store, mode="a") as s:  # fusion recomputed, but pathology arrived since
        s.put_section("STS-0001", "fusion", fusion_section("2026-01-05T10:00:01Z", used=("clinical", "radiology")))
        s.put_section("STS-0001", "pathology", {"slides": [], "score": 0.1, "provenance": provenance("2026-01-04T10:00:00Z")})
    assert not read_case_status(store, "STS-0001").fusion_current


def test_reading_the_status_changes_nothing_and_lists_the_cases(store):
    from SarcomaRiskLib import list_case_ids, read_case_status

    before = store.read_bytes()
    read_case_status(store, "STS-0001")
    read_case_status(store, "STS-0404")
    assert list_case_ids(store) == ["STS-0001"]
    assert store.read_bytes() == before


def test_an_invalid_case_id_gets_the_core_message(store):
    from SarcomaRiskLib import read_case_status

    with pytest.raises(InvalidCaseId, match="case_id: 'John Smith' contains ' '"):
        read_case_status(store, "John Smith")


def test_on_the_departments_server_a_radiologist_sees_the_record_but_leaves_fusion_to_the_coordinator(
        store, monkeypatch):
    from SarcomaRiskLib import list_case_ids, read_case_status
    from serverutil import server_in_thread

    with open_store(store, mode="a") as s:
        s.put_section("STS-0001", "pathology", {"slides": [], "score": -0.2, "provenance": provenance("2026-01-03T10:00:00Z")})
        radiologist, coordinator = s.add_user("r.one", "radiologist"), s.add_user("c.one", "coordinator")
    with server_in_thread(str(store)) as url:
        monkeypatch.setenv("SARCOMA_RISK_TOKEN", radiologist)
        status = read_case_status(url, "STS-0001")
        assert list_case_ids(url) == ["STS-0001"] and status.in_store and not status.missing
        assert not status.fusion_allowed and not status.ready_for_fusion
        assert status.lines()[-1] == "Fused risk: not computed; the coordinator computes it"
        monkeypatch.setenv("SARCOMA_RISK_TOKEN", coordinator)
        assert read_case_status(url, "STS-0001").ready_for_fusion
