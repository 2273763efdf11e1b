"""``sarcoma-risk synth``: arguments, output folder rules, errors of a full or unwritable disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from sarcoma_risk import fileio
from sarcoma_risk.cli import main
from sarcoma_risk.cohort import read_manifest
from sarcoma_risk.synthetic import cohort as cohort_module


def synth(out, *extra):
    return main(["synth", "--out", str(out), "--cases", "6", "--seed", "3", "--table-only", *extra])


def test_synth_writes_a_manifest_that_the_cohort_reader_accepts(tmp_path, capsys):
    assert synth(tmp_path / "c") == 0
    out, err = capsys.readouterr()
    manifest = read_manifest(tmp_path / "c" / "manifest.csv", require_clinical=True)
    assert [c.case_id for c in manifest.cases] == [f"SYN-{c}-000{i}" for c in "AB" for i in (1, 2, 3)]
    assert {c.centre: c.split.value for c in manifest.cases} == {"A": "development", "B": "validation"}
    assert "wrote 6 phantom cases" in out and "oracle C-index" in out
    assert "synth: 6/6 cases" in err  # progress goes to stderr
    assert not (tmp_path / "c" / cohort_module.INCOMPLETE_MARKER).exists()


def test_synth_json_summary_gives_oracle_c_index_per_group(tmp_path, capsys):
    assert synth(tmp_path / "c", "--json", "--centres", "X1,Y2,Z3") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["cases"] == 6
    assert set(summary["groups"]) == {"all", "centre:X1", "centre:Y2", "centre:Z3", "split:development", "split:validation"}
    truth = json.loads((tmp_path / "c" / "truth.json").read_text())
    assert summary["groups"]["all"]["oracle_c_index"] == truth["oracle_c_index"]["all"]


def test_random_split_rule_from_the_command_line(tmp_path):
    assert main(["synth", "--out", str(tmp_path / "c"), "--cases", "200", "--centres", "A", "--split", "random",
                 "--validation-fraction", "0.5", "--table-only"]) == 0
    splits = {c.split.value for c in read_manifest(tmp_path / "c" / "manifest.csv").cases}
    assert splits == {"development", "validation"}


@pytest.mark.parametrize("args, message", [
    (["--cases", "0"], "cases: 0 must be an integer >= 1"),
    (["--cases", "-5"], "cases: -5 must be an integer >= 1"),
    (["--cases", "4", "--size", "huge"], "size: 'huge' is not valid; expected one of tiny, small, medium"),
    (["--cases", "4", "--size", "smal"], "Did you mean 'small'?"),
    (["--cases", "4", "--centres", "A,B,A"], "'A' is given twice"),
    (["--cases", "4", "--centres", "A,Hôpital"], "'Hôpital' is not a valid centre code"),
    (["--cases", "4", "--centres", "A,"], "'' is not a valid centre code"),
    (["--cases", "4", "--seed", "-1"], "seed: -1 must be an integer >= 0"),
    (["--cases", "4", "--workers", "0"], "workers: 0 must be an integer >= 1"),
    (["--cases", "4", "--missing-rate", "2"], "missing_rate"),
    (["--cases", "4", "--split", "hospital"], "split: 'hospital' is not valid; expected one of centre, random"),
    (["--cases", "4", "--modalities", "mri,ct"], "modalities: 'mri,ct'; choose one or both of mri, slides"),
])
def test_bad_arguments_are_refused_with_the_valid_values(tmp_path, capsys, args, message):
    assert main(["synth", "--out", str(tmp_path / "c"), "--table-only", *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c").exists()  # nothing written


def test_non_numeric_case_count_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synth", "--out", str(tmp_path / "c"), "--cases", "many"])
    assert exit_info.value.code == 2
    assert "--cases: invalid int value: 'many'" in capsys.readouterr().err


def test_an_existing_non_empty_folder_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "c"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert synth(out) == 1
    err = capsys.readouterr().err
    assert "exists and is not empty (notes.txt)" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_overwrite_replaces_the_previous_cohort_and_keeps_other_files(tmp_path):
    out = tmp_path / "c"
    assert synth(out) == 0
    (out / "cases").mkdir()
    (out / "cases" / "stale.txt").write_text("from an older run")
    (out / "notes.txt").write_text("mine")
    assert synth(out, "--overwrite", "--cases", "4") == 0
    assert len(read_manifest(out / "manifest.csv").cases) == 4
    assert not (out / "cases" / "stale.txt").exists()
    assert (out / "notes.txt").read_text() == "mine"


def test_an_empty_existing_folder_is_used(tmp_path):
    (tmp_path / "c").mkdir()
    assert synth(tmp_path / "c") == 0


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "c").write_text("x")
    assert synth(tmp_path / "c") == 1
    assert "is a file; expected a folder" in capsys.readouterr().err


def _fail_with(code):
    def fail(path, data, **options):
        raise OSError(code, os.strerror(code), str(path))
    return fail


def test_disk_full_is_reported_and_the_partial_output_removed(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fileio, "atomic_write_bytes", _fail_with(errno.ENOSPC))
    assert synth(tmp_path / "c") == 1
    err = capsys.readouterr().err
    assert "no space left on the device" in err and "the partial output was removed" in err
    assert not (tmp_path / "c").exists()


def test_permission_denied_in_an_existing_folder_removes_only_what_the_run_wrote(tmp_path, capsys, monkeypatch):
    out = tmp_path / "c"
    out.mkdir()
    monkeypatch.setattr(fileio, "atomic_write_bytes", _fail_with(errno.EACCES))
    assert synth(out) == 1
    assert "permission denied" in capsys.readouterr().err
    assert out.is_dir() and list(out.iterdir()) == []


def test_partial_output_that_cannot_be_removed_stays_clearly_marked(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fileio, "atomic_write_bytes", _fail_with(errno.ENOSPC))
    monkeypatch.setattr(cohort_module, "_cleanup", lambda root, created: False)
    assert synth(tmp_path / "c") == 1
    err = capsys.readouterr().err
    assert f"marked by {cohort_module.INCOMPLETE_MARKER}" in err
    assert "again with --overwrite" in (tmp_path / "c" / cohort_module.INCOMPLETE_MARKER).read_text()


def test_a_read_only_parent_folder_gives_a_permission_error(capsys, run_unprivileged):
    import shutil
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="sarcoma-ro-"))
    base.chmod(0o755)  # mkdtemp makes it 0700; 'nobody' (the user as root runs this) must look inside
    parent = base / "ro"
    parent.mkdir(mode=0o555)
    parent.chmod(0o555)

    def attempt():
        status = synth(parent / "c")
        return {"status": status, "err": capsys.readouterr().err}

    try:
        outcome = run_unprivileged(attempt)
    finally:
        shutil.rmtree(base)
    assert outcome["status"] == 1
    assert "permission denied" in outcome["err"] and str(parent / "c") in outcome["err"]
