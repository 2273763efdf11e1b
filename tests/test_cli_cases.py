"""``sarcoma-risk cases list|show|export|history`` called through ``main([...])``."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from sarcoma_risk.cli import main
from sarcoma_risk.provenance import Provenance
from sarcoma_risk.records import open_store


def prov(name: str) -> dict:
    return Provenance(name, "0.1.0", "ab" * 32, parameters={}).to_dict()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """STS-0001: clinical + radiology + fusion; STS-0002: clinical only; STS-0003: pathology only."""
    path = tmp_path / "cases.sqlite"
    values = {"age_years": 63.0, "sex": "male", "tumor_size_cm": 11.5, "margin": "R1", "fnclcc_grade": 3}
    with open_store(path, mode="a") as cases:
        cases.put_section("STS-0001", "clinical", {"values": values, "provenance": prov("clinical-entry")})
        cases.put_section("STS-0001", "radiology", {"score": 0.0, "percentile": 50.0, "sequences": ["t2fs", "t1ce"],
                                                    "provenance": prov("radiology-cbam3d")})
        cases.put_section("STS-0001", "fusion", {"risk": 1.1, "group": "high", "model": "clinical+radiology",
                                                 "survival": {"12": 0.9, "36": 0.75, "60": 0.6},
                                                 "provenance": prov("cox-fusion")})
        cases.put_section("STS-0002", "clinical", {"values": {**values, "age_years": 40.0},
                                                   "provenance": prov("clinical-entry")})
        cases.put_section("STS-0002", "clinical", {"values": {**values, "age_years": 41.0},
                                                   "provenance": prov("clinical-entry")})
        cases.put_section("STS-0003", "pathology", {"slides": [{"slide_sha256": "c" * 64, "score": 0.2}],
                                                    "score": 0.2, "provenance": prov("pathology")})
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_list_shows_one_line_per_case_with_section_revisions(store, capsys):
    assert main(["cases", "list", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["case_id", "clinical", "radiology", "pathology", "fusion", "risk_group", "updated_utc"]
    assert lines[2].split()[:6] == ["STS-0001", "r1", "r1", "-", "r1", "high"]
    assert lines[3].split()[:5] == ["STS-0002", "r2", "-", "-", "-"]
    assert len(lines) == 5


def test_list_json_is_machine_readable(store, capsys):
    assert main(["cases", "list", "--store", str(store), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["case_id"] for r in rows] == ["STS-0001", "STS-0002", "STS-0003"]
    assert rows[2]["pathology"] == "r1" and rows[2]["clinical"] == "-" and rows[2]["risk_group"] is None


def test_list_of_an_empty_store_says_so(tmp_path, capsys):
    path = tmp_path / "empty.sqlite"
    open_store(path, mode="a").close()
    assert main(["cases", "list", "--store", str(path)]) == 0
    assert "no cases in" in capsys.readouterr().out


def test_reading_commands_never_change_the_store(store, tmp_path, capsys):
    before = sha(store)
    for args in (["cases", "list"], ["cases", "show", "STS-0001"], ["cases", "history"],
                 ["cases", "export", "--out", str(tmp_path / "x.csv")]):
        assert main([*args, "--store", str(store)]) == 0
    assert sha(store) == before


def test_show_prints_each_section_with_its_provenance_and_values(store, capsys):
    assert main(["cases", "show", "STS-0001", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("case STS-0001")
    assert "[clinical] revision 1, clinical-entry 0.1.0" in out
    assert "[pathology] missing" in out
    assert "sequences                t2fs, t1ce" in out
    assert "survival                 12=0.9, 36=0.75, 60=0.6" in out


def test_show_json_is_the_full_record(store, capsys):
    assert main(["cases", "show", "STS-0002", "--store", str(store), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["case_id"] == "STS-0002" and record["revisions"] == {"clinical": 2}
    assert record["clinical"]["values"]["age_years"] == 41.0 and record["radiology"] is None


@pytest.mark.parametrize("case_id, message", [("STS-0404", "'STS-0404' is not in the store"),
                                              ("../STS-0001", "case_id"), ("x'; DROP TABLE cases;--", "case_id")])
def test_show_of_an_unknown_or_invalid_case_is_an_error(store, capsys, case_id, message):
    assert main(["cases", "show", case_id, "--store", str(store)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_a_missing_store_is_an_error_that_says_how_one_is_made(tmp_path, capsys):
    assert main(["cases", "list", "--store", str(tmp_path / "nowhere.sqlite")]) == 1
    assert "no case store here yet (the first import creates one" in capsys.readouterr().err
    assert not (tmp_path / "nowhere.sqlite").exists()


def test_export_csv_has_one_row_per_case_and_empty_cells_for_missing_modalities(store, tmp_path, capsys):
    out = tmp_path / "cases.csv"
    assert main(["cases", "export", "--out", str(out), "--store", str(store)]) == 0
    assert "exported 3 case(s)" in capsys.readouterr().err
    with open(out, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = {r["case_id"]: r for r in reader}
        header = reader.fieldnames
    assert header[0] == "case_id" and "fusion.survival.36" in header
    first, second, third = rows["STS-0001"], rows["STS-0002"], rows["STS-0003"]
    assert first["radiology.score"] == "0.0"  # a real zero stays
    assert first["radiology.sequences"] == "t2fs|t1ce" and first["fusion.group"] == "high"
    assert first["radiology.provenance.model"] == "radiology-cbam3d@0.1.0"
    assert second["radiology.score"] == "" and second["fusion.risk"] == "" and second["pathology.n_slides"] == ""
    assert third["age_years"] == "" and third["pathology.n_slides"] == "1" and third["pathology.score"] == "0.2"


def test_export_json_holds_every_full_record(store, tmp_path, capsys):
    out = tmp_path / "cases.json"
    assert main(["cases", "export", "--out", str(out), "--store", str(store)]) == 0
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [r["case_id"] for r in records] == ["STS-0001", "STS-0002", "STS-0003"]
    assert records[0]["fusion"]["survival"]["60"] == 0.6


def test_export_format_can_be_given_when_the_extension_says_nothing(store, tmp_path, capsys):
    out = tmp_path / "cases.txt"
    assert main(["cases", "export", "--out", str(out), "--store", str(store)]) == 1
    assert "add --format csv or json" in capsys.readouterr().err
    assert not out.exists()
    assert main(["cases", "export", "--out", str(out), "--format", "json", "--store", str(store)]) == 0
    assert len(json.loads(out.read_text())) == 3


def test_export_into_a_missing_folder_is_an_error(store, tmp_path, capsys):
    assert main(["cases", "export", "--out", str(tmp_path / "no" / "cases.csv"), "--store", str(store)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_an_exported_csv_imports_back_as_unchanged_clinical_data(tmp_path, capsys):
    from sarcoma_risk.cli.demo import demo_clinical_table

    path = tmp_path / "demo.sqlite"
    assert main(["clinical", "import", str(demo_clinical_table()), "--store", str(path)]) == 0
    out = tmp_path / "export.csv"
    assert main(["cases", "export", "--out", str(out), "--store", str(path)]) == 0
    capsys.readouterr()
    assert main(["clinical", "import", str(out), "--store", str(path), "--dry-run", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["created"], report["updated"], report["unchanged"]) == (0, 0, 6)


def test_history_table_lists_who_changed_what_and_the_content_hashes(store, capsys):
    assert main(["cases", "history", "--case", "STS-0002", "--store", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "at_utc", "user", "host", "case_id", "section", "action", "revision", "old", "new"]
    assert len(lines) == 2 + 3
    assert "create-case" in lines[2] and " create " in lines[3] and " update " in lines[4]
    assert main(["cases", "history", "--case", "STS-0002", "--store", str(store), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert entries[2]["old_sha256"][:12] in lines[4] and entries[2]["new_sha256"][:12] in lines[4]


def test_history_json_filters_by_section_and_limit(store, capsys):
    assert main(["cases", "history", "--section", "clinical", "--limit", "2", "--store", str(store), "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["case_id"], e["action"], e["revision"]) for e in entries] == [
        ("STS-0002", "create", 1), ("STS-0002", "update", 2)]
    assert entries[1]["old_sha256"] == entries[0]["new_sha256"]


def test_history_refuses_a_limit_below_one(store, capsys):
    with pytest.raises(SystemExit) as info:
        main(["cases", "history", "--limit", "0", "--store", str(store)])
    assert info.value.code == 2
    assert "not a whole number >= 1" in capsys.readouterr().err


def test_history_of_a_case_without_entries_says_so(store, capsys):
    assert main(["cases", "history", "--case", "STS-0999", "--store", str(store)]) == 0
    assert "no audit entries for case STS-0999" in capsys.readouterr().out


def test_a_reader_that_stops_early_ends_the_command_quietly(store):
    # `sarcoma-risk cases history | head -1` on a history longer than a pipe's buffer, so the
    # command is still writing when the pipe closes.
    import subprocess
    import sys

    with open_store(store, mode="a") as cases:
        for k in range(1500):
            cases.put_section("STS-0002", "radiology", {"score": k / 1000, "provenance": prov("radiology-cbam3d")})
    command = [sys.executable, "-m", "sarcoma_risk.cli", "cases", "history", "--store", str(store)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        first = process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read().decode()
        status = process.wait(timeout=60)
    assert first.split()[:2] == [b"id", b"at_utc"]
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert status == 141
