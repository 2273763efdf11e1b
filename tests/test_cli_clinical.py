"""``sarcoma-risk clinical import|set|variables`` called through ``main([...])``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.records import open_store

HEADER = ("case_id,age_years,sex,tumor_size_cm,depth,site,subtype,differentiation,mitotic_count,necrosis,"
          "fnclcc_grade,margin,radiotherapy,chemotherapy,presentation")
ROWS = [
    "STS-0001,63,male,11.5,deep,lower_extremity,UPS,3,24,>=50%,,R1,preoperative,no,primary",
    "STS-0002,48,female,4.2,superficial,upper_extremity,myxofibrosarcoma,2,8,none,,R0,none,no,primary",
    "STS-0003,35,male,6.5,deep,trunk,myxoid liposarcoma,,,,2,R0,preoperative,no,primary",
]
BAD_ROWS = [
    ROWS[0].replace("STS-0001", "STS-0004").replace(",63,", ",630,"),
    ROWS[1].replace("STS-0002", "STS/0005").replace("myxofibrosarcoma", "myxofibrosarcom"),
]


def write_table(folder: Path, rows: list[str], name: str = "clinical.csv") -> Path:
    path = folder / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def dump(path: Path) -> str:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store" / "cases.sqlite"


@pytest.fixture
def imported(tmp_path: Path, store: Path) -> Path:
    assert main(["clinical", "import", str(write_table(tmp_path, ROWS)), "--store", str(store)]) == 0
    return store


# ---- import ---------------------------------------------------------------------------------------


def test_import_writes_every_valid_row_and_keeps_no_file_name_in_the_records(tmp_path, store, capsys):
    table = write_table(tmp_path, ROWS, name="Doe_Jane_clinical.csv")
    assert main(["clinical", "import", str(table), "--store", str(store)]) == 0
    assert "imported 3 case(s) (3 new, 0 changed, 0 unchanged)" in capsys.readouterr().out
    with open_store(store, mode="r") as cases:
        records = {r.case_id: r for r in cases.records()}
    assert sorted(records) == ["STS-0001", "STS-0002", "STS-0003"]
    assert records["STS-0001"].clinical["values"]["ajcc_stage"] == "IIIB"
    provenance = records["STS-0001"].clinical["provenance"]
    assert provenance["inputs"]["table"]["sha256"] and provenance["model_name"] == "clinical-entry"
    stored = json.dumps([r.to_dict() for r in records.values()])
    assert "Doe_Jane" not in stored and str(tmp_path) not in stored


def test_importing_the_same_table_again_writes_nothing(tmp_path, imported, capsys):
    before = dump(imported)
    assert main(["clinical", "import", str(write_table(tmp_path, ROWS)), "--store", str(imported)]) == 0
    assert "(0 new, 0 changed, 3 unchanged)" in capsys.readouterr().out
    assert dump(imported) == before


def test_importing_a_corrected_table_writes_a_new_revision_only_for_changed_rows(tmp_path, imported, capsys):
    rows = [ROWS[0].replace(",R1,", ",R0,"), *ROWS[1:]]
    assert main(["clinical", "import", str(write_table(tmp_path, rows)), "--store", str(imported), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["created"], report["updated"], report["unchanged"], report["imported"]) == (0, 1, 2, 1)
    with open_store(imported, mode="r") as cases:
        assert cases.get("STS-0001").revision("clinical") == 2
        assert cases.get("STS-0002").revision("clinical") == 1


def test_a_table_with_any_invalid_row_imports_nothing_and_lists_every_problem(tmp_path, imported, capsys):
    before = dump(imported)
    table = write_table(tmp_path, [ROWS[0].replace(",R1,", ",R0,"), *BAD_ROWS])
    assert main(["clinical", "import", str(table), "--store", str(imported)]) == 1
    err = capsys.readouterr().err
    assert "clinical.csv: 3 problem(s) in 3 row(s)" in err
    assert "row 2 (case STS-0004), column 'age_years': '630' -> expected a number from 0 to 110 years" in err
    assert "row 3, column 'case_id': 'STS/0005'" in err
    assert "nothing was imported" in err and "--valid-only" in err
    assert dump(imported) == before  # not even the valid corrected first row


def test_a_failed_import_does_not_create_a_store(tmp_path, store):
    assert main(["clinical", "import", str(write_table(tmp_path, BAD_ROWS)), "--store", str(store)]) == 1
    assert not store.exists() and not store.parent.exists()


def test_valid_only_imports_the_valid_rows_and_reports_the_rest(tmp_path, store, capsys):
    table = write_table(tmp_path, [*ROWS, *BAD_ROWS])
    assert main(["clinical", "import", str(table), "--store", str(store), "--valid-only"]) == 0
    captured = capsys.readouterr()
    assert "3 problem(s)" in captured.err
    assert "imported 3 case(s) (3 new, 0 changed, 0 unchanged); 2 invalid row(s) skipped" in captured.out
    with open_store(store, mode="r") as cases:
        assert cases.case_ids() == ["STS-0001", "STS-0002", "STS-0003"]


def test_valid_only_with_no_valid_row_fails_and_creates_nothing(tmp_path, store, capsys):
    assert main(["clinical", "import", str(write_table(tmp_path, BAD_ROWS)), "--store", str(store), "--valid-only"]) == 1
    assert "imported 0 case(s)" in capsys.readouterr().out
    assert not store.exists()


def test_dry_run_reports_what_would_change_and_writes_nothing(tmp_path, imported, capsys):
    before = dump(imported)
    rows = [ROWS[0].replace(",R1,", ",R2,"), ROWS[1], ROWS[2].replace("STS-0003", "STS-0009")]
    assert main(["clinical", "import", str(write_table(tmp_path, rows)), "--store", str(imported), "--dry-run"]) == 0
    assert "dry run, nothing written: would import 3 case(s) (1 new, 1 changed, 1 unchanged)" in capsys.readouterr().out
    assert dump(imported) == before


def test_dry_run_into_a_store_that_does_not_exist_creates_nothing(tmp_path, store, capsys):
    assert main(["clinical", "import", str(write_table(tmp_path, ROWS)), "--store", str(store), "--dry-run"]) == 0
    assert "(3 new, 0 changed, 0 unchanged)" in capsys.readouterr().out
    assert not store.parent.exists()


def test_json_report_lists_problems_with_row_column_value_and_expectation(tmp_path, store, capsys):
    assert main(["clinical", "import", str(write_table(tmp_path, BAD_ROWS)), "--store", str(store), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["imported"] == 0 and report["rows"] == 2 and report["valid"] == 0
    problem = next(p for p in report["problems"] if p["column"] == "subtype")
    assert problem["row"] == 2 and problem["value"] == "myxofibrosarcom"
    assert "did you mean 'myxofibrosarcoma'?" in problem["expected"]


@pytest.mark.parametrize("content, message", [
    ((HEADER.replace(",margin", "") + "\n" + ROWS[0]).encode(), "missing required column(s): margin"),
    ((HEADER + "\n" + ROWS[0].replace("UPS", "sarcome pléomorphe")).encode("latin-1"), "not UTF-8 text"),
    (b"", "the file is empty"),
])
def test_a_table_that_cannot_be_read_is_an_error_and_creates_nothing(tmp_path, store, capsys, content, message):
    path = tmp_path / "clinical.csv"
    path.write_bytes(content)
    assert main(["clinical", "import", str(path), "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not store.parent.exists()


def test_an_unwritable_store_location_is_an_error_and_nothing_is_created(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    assert main(["clinical", "import", str(write_table(tmp_path, ROWS)), "--store", str(blocker / "cases.sqlite")]) == 1
    assert "error: " in capsys.readouterr().err
    assert blocker.read_text() == "x"


def test_the_store_comes_from_SARCOMA_RISK_STORE_when_no_store_is_given(tmp_path, monkeypatch):
    target = tmp_path / "env-store.sqlite"
    monkeypatch.setenv("SARCOMA_RISK_STORE", str(target))
    assert main(["clinical", "import", str(write_table(tmp_path, ROWS))]) == 0
    with open_store(target, mode="r") as cases:
        assert len(cases.case_ids()) == 3


# ---- set ------------------------------------------------------------------------------------------


def test_set_changes_one_value_and_rederives_grade_and_stage(imported, capsys):
    assert main(["clinical", "set", "--case", "STS-0002", "mitotic_count=25", "--store", str(imported)]) == 0
    assert "clinical section now at revision 2" in capsys.readouterr().out
    with open_store(imported, mode="r") as cases:
        values = cases.get("STS-0002").clinical["values"]
        history = cases.history("STS-0002", "clinical")
    assert values["mitotic_count"] == 25 and values["fnclcc_grade"] == 2  # 2 + 3 + 0 = 5
    assert values["ajcc_stage"] == "II"  # T1 (4.2 cm) G2
    assert [h["action"] for h in history] == ["create", "update"]


def test_set_creates_a_new_case_when_every_required_value_is_given(store, capsys):
    args = ["clinical", "set", "--case", "STS-0100", "age_years=50", "sex=F", "tumor_size_cm=3", "depth=deep",
            "site=arm", "subtype=LMS", "fnclcc_grade=1", "margin=R0", "radiotherapy=none", "chemotherapy=no",
            "presentation=primary", "--store", str(store), "--json"]
    assert main(args) == 0
    section = json.loads(capsys.readouterr().out)
    assert section["values"]["site"] == "upper_extremity" and section["values"]["ajcc_stage"] == "IA"
    assert section["provenance"]["parameters"]["source"] == "manual"


def test_set_with_an_invalid_value_changes_nothing(imported, capsys):
    before = dump(imported)
    assert main(["clinical", "set", "--case", "STS-0001", "margin=R4", "--store", str(imported)]) == 1
    assert "column 'margin': 'R4' -> expected one of R0, R1, R2" in capsys.readouterr().err
    assert dump(imported) == before


def test_set_on_a_new_case_with_missing_required_values_lists_them_and_writes_nothing(imported, capsys):
    before = dump(imported)
    assert main(["clinical", "set", "--case", "STS-0200", "age_years=50", "--store", str(imported)]) == 1
    err = capsys.readouterr().err
    for column in ("sex", "tumor_size_cm", "margin", "fnclcc_grade"):
        assert f"column {column!r}" in err
    assert dump(imported) == before


@pytest.mark.parametrize("args, message", [
    (["--case", "STS-0001", "marign=R1"], "'marign' is not a clinical variable; known: age_years"),
    (["--case", "STS-0001", "marign=R1"], "Did you mean 'margin'?"),
    (["--case", "STS-0001", "R1"], "expected NAME=VALUE"),
    (["--case", "x'; DROP TABLE cases;--", "margin=R1"], "case_id"),
    (["--case", "../../etc", "margin=R1"], "case_id"),
])
def test_set_refuses_bad_names_and_case_ids_without_writing(imported, capsys, args, message):
    before = dump(imported)
    assert main(["clinical", "set", *args, "--store", str(imported)]) == 1
    assert message in capsys.readouterr().err
    assert dump(imported) == before


def test_an_empty_value_removes_an_optional_variable(imported):
    assert main(["clinical", "set", "--case", "STS-0001", "necrosis=", "fnclcc_grade=3", "--store", str(imported)]) == 0
    with open_store(imported, mode="r") as cases:
        values = cases.get("STS-0001").clinical["values"]
    assert "necrosis" not in values and values["fnclcc_grade"] == 3


# ---- variables ------------------------------------------------------------------------------------


def test_variables_lists_names_ranges_and_categories(capsys):
    assert main(["clinical", "variables", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["tumor_size_cm"]["expected"] == "a number from 0.1 to 60 cm" and rows["tumor_size_cm"]["required"]
    assert rows["margin"]["expected"] == "one of R0, R1, R2"
    assert main(["clinical", "variables"]) == 0
    assert "necrosis" in capsys.readouterr().out
