"""Reading a clinical CSV: the ways spreadsheets save tables, and every problem reported with its row."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarcoma_risk.clinical.csvimport import read_clinical_csv
from sarcoma_risk.errors import InvalidClinicalData

HEADER = ("case_id,age_years,sex,tumor_size_cm,depth,site,subtype,differentiation,mitotic_count,necrosis,"
          "fnclcc_grade,margin,radiotherapy,chemotherapy,presentation")
GOOD_ROWS = [
    "STS-0001,63,male,11.5,deep,lower_extremity,UPS,3,24,>=50%,,R1,preoperative,no,primary",
    "STS-0002,48,female,4.2,superficial,upper_extremity,myxofibrosarcoma,2,8,none,,R0,none,no,primary",
    "STS-0003,35,male,6.5,deep,trunk,myxoid liposarcoma,,,,2,R0,preoperative,no,primary",
]


def write(tmp_path: Path, text: str, name: str = "clinical.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_a_valid_table_reads_every_case_with_clean_values(tmp_path):
    table = read_clinical_csv(write(tmp_path, "\n".join([HEADER, *GOOD_ROWS]) + "\n"))
    assert table.problems == [] and table.n_rows == 3 and table.ignored_columns == []
    assert [case_id for case_id, _ in table.valid] == ["STS-0001", "STS-0002", "STS-0003"]
    assert table.valid[0][1]["fnclcc_grade"] == 3 and table.valid[2][1]["fnclcc_grade"] == 2


def test_excel_style_semicolons_a_byte_order_mark_and_crlf_are_read(tmp_path):
    text = "\r\n".join(line.replace(",", ";") for line in [HEADER, *GOOD_ROWS]) + "\r\n"
    table = read_clinical_csv(write(tmp_path, text, encoding="utf-8-sig"))
    assert table.problems == [] and len(table.valid) == 3


def test_a_quoted_cell_with_a_line_break_stays_one_row(tmp_path):
    header = HEADER + ",comment"
    rows = [GOOD_ROWS[0] + ',"first line\nsecond line"', GOOD_ROWS[1] + ",ok"]
    table = read_clinical_csv(write(tmp_path, "\n".join([header, *rows]) + "\n"))
    assert table.n_rows == 2 and table.problems == []
    assert table.ignored_columns == ["comment"]


def test_columns_that_are_not_clinical_variables_are_never_read(tmp_path):
    header = HEADER + ",patient_name"
    rows = [GOOD_ROWS[0] + ",Jane Doe"]
    table = read_clinical_csv(write(tmp_path, "\n".join([header, *rows]) + "\n"))
    assert table.ignored_columns == ["patient_name"]
    assert "Jane Doe" not in repr(table.valid)


def test_blank_lines_are_skipped_but_rows_keep_their_spreadsheet_numbers(tmp_path):
    text = "\n".join([HEADER, GOOD_ROWS[0], ",,,,,,,,,,,,,,", GOOD_ROWS[1].replace("R0", "R7")]) + "\n"
    table = read_clinical_csv(write(tmp_path, text))
    assert table.n_rows == 2
    assert [(p.row, p.column) for p in table.problems] == [(3, "margin")]


def test_missing_required_columns_are_all_named_with_a_hint_for_a_misspelt_one(tmp_path):
    header = HEADER.replace("tumor_size_cm", "tumour_size_cm").replace(",margin", "").replace(",depth", "")
    with pytest.raises(InvalidClinicalData) as info:
        read_clinical_csv(write(tmp_path, header + "\n"))
    message = str(info.value)
    assert "clinical.csv: missing required column(s): tumor_size_cm, depth, margin" in message
    assert "'tumor_size_cm' looks like column 'tumour_size_cm'" in message


def test_a_table_without_grade_or_all_its_components_is_refused(tmp_path):
    header = HEADER.replace(",fnclcc_grade", "").replace(",necrosis", "")
    with pytest.raises(InvalidClinicalData, match=r"fnclcc_grade \(or all of differentiation, mitotic_count and necrosis\)"):
        read_clinical_csv(write(tmp_path, header + "\n" + "x\n"))


def test_a_table_without_a_case_id_column_is_refused(tmp_path):
    with pytest.raises(InvalidClinicalData, match="missing required column.*case_id"):
        read_clinical_csv(write(tmp_path, HEADER.replace("case_id", "patient") + "\n"))


def test_a_non_utf8_table_is_refused_with_the_byte_and_the_fix(tmp_path):
    text = "\n".join([HEADER, GOOD_ROWS[0].replace("UPS", "sarcome pléomorphe")]) + "\n"
    path = write(tmp_path, text, encoding="latin-1")
    with pytest.raises(InvalidClinicalData, match=r"not UTF-8 text \(byte \d+ is 0xe9\); save the clinical table as 'CSV UTF-8'"):
        read_clinical_csv(path)


def test_a_utf16_table_from_excel_unicode_text_is_refused(tmp_path):
    path = write(tmp_path, "\n".join([HEADER, *GOOD_ROWS]), encoding="utf-16")
    with pytest.raises(InvalidClinicalData, match="not UTF-8 text"):
        read_clinical_csv(path)


@pytest.mark.parametrize("text, match", [
    ("", "the file is empty"),
    ("\n\n", "the file is empty"),
    (HEADER + "\n", "header but no data rows"),
    (HEADER.replace("sex", "age_years") + "\n", "age_years appear more than once"),
    (HEADER + ",,\n", "empty column name at position"),
])
def test_tables_that_cannot_be_read_as_a_whole_are_refused(tmp_path, text, match):
    with pytest.raises(InvalidClinicalData, match=match):
        read_clinical_csv(write(tmp_path, text))


def test_a_missing_file_or_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(InvalidClinicalData, match="no such clinical table file"):
        read_clinical_csv(tmp_path / "absent.csv")
    with pytest.raises(InvalidClinicalData, match="is a folder"):
        read_clinical_csv(tmp_path)


def test_every_bad_row_is_reported_with_row_column_value_and_expectation(tmp_path):
    rows = [
        GOOD_ROWS[0],
        GOOD_ROWS[1].replace("STS-0002", "x'; DROP TABLE cases;--"),
        GOOD_ROWS[1].replace("STS-0002", "STS-0001"),                      # repeated id
        GOOD_ROWS[2].replace("STS-0003", "STS-0004").replace(",35,", ",250,").replace("trunk", "trunc"),
        GOOD_ROWS[2].replace("STS-0003", "STS-0005") + ",surplus",         # a cell beyond the header
        GOOD_ROWS[2].replace("STS-0003", ""),                              # no id
        GOOD_ROWS[2].replace("STS-0003", "STS-0006"),                      # fine
    ]
    table = read_clinical_csv(write(tmp_path, "\n".join([HEADER, *rows]) + "\n"))
    found = {(p.row, p.column): p for p in table.problems}
    assert set(found) == {(2, "case_id"), (3, "case_id"), (4, "age_years"), (4, "site"),
                          (5, "(beyond the header)"), (6, "case_id")}
    assert "contains" in found[(2, "case_id")].expected
    assert "a unique id (also on row 1)" == found[(3, "case_id")].expected
    assert found[(4, "age_years")].value == "250" and "0 to 110 years" in found[(4, "age_years")].expected
    assert "did you mean 'trunk'?" in found[(4, "site")].expected
    assert found[(5, "(beyond the header)")].value == "surplus"
    assert [case_id for case_id, _ in table.valid] == ["STS-0001", "STS-0006"]
    assert str(found[(4, "site")]) == (
        "row 4 (case STS-0004), column 'site': 'trunc' -> expected one of upper_extremity, lower_extremity, "
        "trunk, retroperitoneum, head_neck (did you mean 'trunk'?)")
