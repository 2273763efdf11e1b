"""Imaging score tables: reading, checking, and the out-of-fold rule for honest training."""

from __future__ import annotations

import pytest

from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.survival.scores import (
    InSampleScoresWarning,
    ScoreEntry,
    ScoreTable,
    check_out_of_fold,
    check_splits,
    read_score_file,
    read_score_tables,
    write_score_file,
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_score_table_is_read_with_its_modality_and_empty_scores_as_missing(tmp_path):
    path = write(tmp_path, "radiology_scores.csv",
                 "case_id,split,radiology_score,source\nSTS-1,development,0.5,out_of_fold\n"
                 "STS-2,validation,,final_model\n")
    [table] = read_score_file(path)
    assert table.modality == "radiology" and table.sequences is None and table.column == "radiology_score"
    assert table.score("STS-1") == 0.5 and table.score("STS-2") is None and table.score("STS-3") is None


def test_a_written_table_reads_back_with_six_decimals_and_empty_cells_for_missing_scores(tmp_path):
    table = ScoreTable("pathology", {"STS-2": ScoreEntry("development", 0.12345678, "out_of_fold"),
                                     "STS-1": ScoreEntry("validation", None, "final_model")})
    [back] = read_score_file(write_score_file(tmp_path / "pathology_scores.csv", [table]))
    assert back.modality == "pathology" and list(back.entries) == ["STS-2", "STS-1"]
    assert back.entries["STS-2"] == ScoreEntry("development", 0.123457, "out_of_fold")
    assert back.score("STS-1") is None


def test_rows_end_as_the_writer_is_told(tmp_path):
    table = ScoreTable("radiology", {"STS-1": ScoreEntry("development", -1.5, "out_of_fold")})
    lf = write_score_file(tmp_path / "lf.csv", [table])
    crlf = write_score_file(tmp_path / "crlf.csv", [table], line_end="\r\n")
    assert lf.read_bytes() == b"case_id,split,radiology_score,source\nSTS-1,development,-1.500000,out_of_fold\n"
    assert crlf.read_bytes() == lf.read_bytes().replace(b"\n", b"\r\n")
    assert read_score_file(crlf)[0].entries == read_score_file(lf)[0].entries


def test_radiology_scores_of_each_sequence_set_are_tables_of_their_own(tmp_path):
    both = ScoreTable("radiology", {"STS-1": ScoreEntry("development", 0.5, "out_of_fold"),
                                    "STS-2": ScoreEntry("validation", -0.2, "final_model")}, sequences="t2fs+t1ce")
    t2 = ScoreTable("radiology", {"STS-1": ScoreEntry("development", 0.7, "out_of_fold")}, sequences="t2fs")
    path = write_score_file(tmp_path / "radiology_scores.csv", [both, t2])
    assert path.read_text().splitlines() == [
        "case_id,split,sequences,radiology_score,source", "STS-1,development,t2fs+t1ce,0.500000,out_of_fold",
        "STS-2,validation,t2fs+t1ce,-0.200000,final_model", "STS-1,development,t2fs,0.700000,out_of_fold"]
    tables = read_score_tables([path])
    assert sorted(tables) == ["radiology_score[t2fs+t1ce]", "radiology_score[t2fs]"]
    assert tables["radiology_score[t2fs]"].score("STS-1") == 0.7 and tables["radiology_score[t2fs]"].score("STS-2") is None
    assert tables["radiology_score[t2fs+t1ce]"].score("STS-1") == 0.5


def test_a_sequence_set_must_be_known_and_a_case_scored_once_per_set(tmp_path):
    path = write(tmp_path, "r.csv", "case_id,split,sequences,radiology_score,source\n"
                                    "STS-1,development,t2,0.5,out_of_fold\nSTS-1,development,t1ce,0.5,out_of_fold\n"
                                    "STS-1,development,t1ce,0.6,out_of_fold\n")
    with pytest.raises(InvalidInput) as info:
        read_score_file(path)
    assert "row 1, column 'sequences': 't2' -> expected one of t2fs+t1ce, t2fs, t1ce" in str(info.value)
    assert "row 3, column 'case_id': 'STS-1' appears twice for the sequence set t1ce" in str(info.value)
    pathology = write(tmp_path, "p.csv", "case_id,split,sequences,pathology_score,source\n"
                                         "STS-1,development,t2fs,0.5,out_of_fold\n")
    with pytest.raises(InvalidInput, match="a 'sequences' column in a pathology score table"):
        read_score_file(pathology)


def test_a_table_of_an_unknown_modality_is_not_written(tmp_path):
    with pytest.raises(InvalidInput, match=r"modalities \['genomics'\]; expected tables of one of radiology, pathology"):
        write_score_file(tmp_path / "g.csv", [ScoreTable("genomics", {})])
    with pytest.raises(InvalidInput, match="only radiology tables name a sequence set"):
        write_score_file(tmp_path / "g.csv", [ScoreTable("pathology", {}, sequences="t2fs")])
    assert not (tmp_path / "g.csv").exists()


def test_every_bad_row_is_listed(tmp_path):
    path = write(tmp_path, "p.csv",
                 "case_id,split,pathology_score,source\nSTS-1,dev,0.5,out_of_fold\nSTS-1,development,abc,oof\n"
                 "bad id!,development,1,out_of_fold\n")
    with pytest.raises(InvalidInput) as info:
        read_score_file(path)
    message = str(info.value)
    for expected in ("5 problem(s)", "row 1, column 'split'", "appears twice", "'abc' -> expected a finite number",
                     "row 2, column 'source': 'oof'", "row 3, column 'case_id'"):
        assert expected in message


def test_the_score_column_names_the_modality(tmp_path):
    path = write(tmp_path, "x.csv", "case_id,split,genomics_score,source\nSTS-1,development,0.5,out_of_fold\n")
    with pytest.raises(InvalidInput, match="expected columns case_id, split, <modality>_score, source"):
        read_score_file(path)
    with pytest.raises(InvalidInput, match="no such score table file"):
        read_score_file(tmp_path / "absent.csv")


def test_two_tables_of_one_modality_are_refused(tmp_path):
    text = "case_id,split,radiology_score,source\nSTS-1,development,0.5,out_of_fold\n"
    with pytest.raises(InvalidInput, match=r"a second table of radiology_score \(the first was in .*a.csv\)"):
        read_score_tables([write(tmp_path, "a.csv", text), write(tmp_path, "b.csv", text)])


def test_a_split_that_disagrees_with_the_manifest_is_refused(tmp_path):
    tables = read_score_tables([write(tmp_path, "r.csv",
                                      "case_id,split,radiology_score,source\nSTS-1,validation,0.5,final_model\n")])
    with pytest.raises(InvalidInput, match="STS-1: split 'validation' .* but 'development' in the manifest"):
        check_splits(tables, {"STS-1": "development"})


def test_development_scores_must_be_out_of_fold_unless_explicitly_accepted(tmp_path):
    tables = read_score_tables([write(
        tmp_path, "r.csv", "case_id,split,radiology_score,source\nSTS-1,development,0.5,final_model\n"
                           "STS-2,development,0.1,out_of_fold\nSTS-3,validation,0.2,final_model\n")])
    with pytest.raises(InvalidInput, match="not out-of-fold \\(radiology_score: 1 case.*--allow-in-sample-scores"):
        check_out_of_fold(tables, ["STS-1", "STS-2"])
    with pytest.warns(InSampleScoresWarning, match="optimistic"):
        assert check_out_of_fold(tables, ["STS-1", "STS-2"], allow_in_sample=True) == {"radiology_score": 1}
    assert check_out_of_fold(tables, ["STS-2"]) == {"radiology_score": 0}


def test_semicolon_separated_tables_from_spreadsheets_are_read(tmp_path):
    path = write(tmp_path, "r.csv", "\ufeffcase_id;split;radiology_score;source\nSTS-1;development;-0.25;out_of_fold\n")
    assert read_score_file(path)[0].score("STS-1") == -0.25
