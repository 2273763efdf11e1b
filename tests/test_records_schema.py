"""The case record schema: pseudonymous ids, section checks, JSON round trip, spreadsheet flattening."""

from __future__ import annotations

import json

import pytest

from sarcoma_risk.errors import InvalidCaseId, InvalidInput
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records.schema import (
    SCHEMA_VERSION,
    CaseRecord,
    export_columns,
    flatten_record,
    spreadsheet_safe,
    validate_case_id,
    validate_section,
)

PROVENANCE = Provenance("unit-test", "1.0", None, parameters={"seed": 1}).to_dict()

#: Ids that must never reach the store: each names why.
BAD_CASE_IDS = {
    "empty": "",
    "only spaces": "   ",
    "posix path separator": "STS/0001",
    "parent folder": "../etc/passwd",
    "windows path separator": "STS\\0001",
    "sql injection": "x'; DROP TABLE cases;--",
    "double quote": 'STS"1',
    "too long": "S" * 33,
    "unicode letter": "STS-Ä001",
    "fullwidth digits": "STS-０１",
    "emoji": "STS-😀",
    "space inside": "STS 0001",
    "leading dash (a command-line option)": "-rf",
    "leading underscore": "_hidden",
    "newline": "STS-1\n",
    "nul byte": "STS\x001",
    "not a string": 1234,
    "none": None,
}


@pytest.mark.parametrize("case_id", ["STS-0001", "A", "a_b-C9", "S" * 32, "0001"])
def test_pseudonymous_case_ids_are_accepted(case_id):
    assert validate_case_id(case_id) == case_id


@pytest.mark.parametrize("case_id", list(BAD_CASE_IDS.values()), ids=list(BAD_CASE_IDS))
def test_invalid_case_ids_are_refused_with_the_pattern_in_the_message(case_id):
    with pytest.raises(InvalidCaseId, match="case_id") as info:
        validate_case_id(case_id)
    message = str(info.value)
    assert "empty" in message or "32" in message or "letters, digits" in message


def test_a_too_long_case_id_says_how_long_it_is():
    with pytest.raises(InvalidCaseId, match="33 characters; at most 32"):
        validate_case_id("S" * 33)


def test_an_invalid_case_id_names_the_offending_characters():
    with pytest.raises(InvalidCaseId, match=r"contains .*;"):
        validate_case_id("x'; DROP TABLE cases;--")


def section(name: str, **content) -> dict:
    return {**content, "provenance": PROVENANCE}


def test_a_section_without_its_required_keys_is_refused():
    with pytest.raises(InvalidInput, match="fusion: missing key.*group.*model"):
        validate_section("fusion", section("fusion", risk=0.3))


def test_a_section_without_provenance_is_refused():
    with pytest.raises(InvalidInput, match="radiology: missing key.*provenance"):
        validate_section("radiology", {"score": 0.1})


def test_a_provenance_block_missing_fields_is_refused():
    with pytest.raises(InvalidInput, match="provenance: missing field.*weights_sha256"):
        validate_section("radiology", {"score": 0.1, "provenance": {"model_name": "m"}})


@pytest.mark.parametrize("name, content, match", [
    ("radiology", {"score": "high"}, "radiology.score: 'high' is not a number"),
    ("radiology", {"score": True}, "radiology.score: True is not a number"),
    ("radiology", {"score": 0.2, "percentile": 140}, "percentile.*0 to 100"),
    ("pathology", {"slides": {"a": 1}}, "pathology.slides.*list of slide objects"),
    ("fusion", {"risk": 0.1, "group": "", "model": "clinical"}, "fusion.group"),
    ("clinical", {"values": [1, 2]}, "clinical.values"),
])
def test_section_keys_that_other_tools_read_must_have_the_right_type(name, content, match):
    with pytest.raises(InvalidInput, match=match):
        validate_section(name, section(name, **content))


def test_nan_anywhere_in_a_section_is_refused_with_its_location():
    content = section("pathology", slides=[{"score": 0.1}, {"score": float("nan")}])
    with pytest.raises(InvalidInput, match=r"pathology.slides\[1\].score: nan is not a finite number"):
        validate_section("pathology", content)


def test_an_unknown_section_is_refused():
    with pytest.raises(InvalidInput, match="'genomics' is not one of clinical, radiology, pathology, fusion"):
        validate_section("genomics", section("genomics"))


def test_a_record_survives_a_json_round_trip():
    record = CaseRecord("STS-0001", clinical=section("clinical", values={"age_years": 60.0}),
                        radiology=section("radiology", score=0.5), revisions={"clinical": 2, "radiology": 1},
                        created_utc="2026-01-01T00:00:00Z", updated_utc="2026-01-02T00:00:00Z")
    data = json.loads(json.dumps(record.to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION
    assert CaseRecord.from_dict(data) == record


def test_a_record_of_another_schema_version_is_refused():
    data = CaseRecord("STS-0001").to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(InvalidInput, match="schema_version"):
        CaseRecord.from_dict(data)


def test_modalities_lists_the_sections_that_hold_data():
    record = CaseRecord("STS-0001", clinical=section("clinical", values={}), pathology=section("pathology", slides=[]))
    assert record.modalities() == ["clinical", "pathology"]


def full_record() -> CaseRecord:
    return CaseRecord(
        "STS-0002",
        clinical=section("clinical", values={"age_years": 61.0, "margin": "R1", "fnclcc_grade": 3}),
        radiology=section("radiology", score=-0.25, percentile=40.0, sequences=["t2fs", "t1ce"], tumor_volume_ml=0.0),
        pathology=section("pathology", score=0.0, slides=[{"slide_sha256": "a"}, {"slide_sha256": "b"}]),
        fusion=section("fusion", risk=1.2, group="high", model="clinical+radiology+pathology",
                       modalities_used=["clinical", "radiology", "pathology"],
                       survival={"12": 0.9, "36": 0.7, "60": 0.6}),
    )


def test_flattening_names_columns_by_section_and_keeps_real_zeros():
    row = flatten_record(full_record())
    assert row["age_years"] == 61.0 and row["margin"] == "R1"
    assert row["radiology.score"] == -0.25
    assert row["radiology.tumor_volume_ml"] == 0.0  # a measured zero stays zero
    assert row["pathology.score"] == 0.0
    assert row["radiology.sequences"] == "t2fs|t1ce"
    assert row["pathology.n_slides"] == 2
    assert row["fusion.model"] == "clinical+radiology+pathology"  # not overwritten by provenance
    assert row["fusion.provenance.model"] == "unit-test@1.0"
    assert row["fusion.survival.36"] == 0.7
    assert row["fusion.modalities_used"] == "clinical|radiology|pathology"


def test_flattening_leaves_missing_modalities_out_so_they_export_as_empty_cells():
    row = flatten_record(CaseRecord("STS-0003", clinical=section("clinical", values={"age_years": 50.0})))
    assert set(row) == {"case_id", "age_years", "clinical.provenance.model", "clinical.provenance.timestamp_utc"}


def test_export_columns_are_fixed_first_then_extra_keys_by_section():
    rows = [flatten_record(full_record()), {"case_id": "X", "radiology.zeta": 1, "clinical.note": "n"}]
    columns = export_columns(rows)
    assert columns[:2] == ["case_id", "age_years"]
    for fixed in ("radiology.score", "pathology.n_slides", "fusion.risk", "fusion.survival.60"):
        assert fixed in columns
    assert columns[-2:] == ["clinical.note", "radiology.zeta"]
    assert len(columns) == len(set(columns))


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tx"])
def test_text_a_spreadsheet_would_run_as_a_formula_is_quoted(text):
    assert spreadsheet_safe(text) == "'" + text


@pytest.mark.parametrize("value", [-0.5, 3, "R1", "", None])
def test_numbers_and_ordinary_text_pass_through_unquoted(value):
    assert spreadsheet_safe(value) == value
