import json
import os
import stat

import pytest

from sarcoma_risk.fileio import (
    atomic_open,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    default_file_mode,
    publish,
    temporary_beside,
)


def test_an_atomic_write_gets_ordinary_file_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "tiles.geojson", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failing_block_leaves_the_earlier_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("new, half written")
            raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_the_default_mode_follows_the_umask():
    old = os.umask(0o077)
    try:
        assert default_file_mode() == 0o600
    finally:
        os.umask(old)


def test_json_is_written_with_sorted_keys_the_given_indent_and_a_final_newline(tmp_path):
    path = atomic_write_json(tmp_path / "run.json", {"b": [1, None], "a": 0.5}, indent=1)
    assert path.read_text() == '{\n "a": 0.5,\n "b": [\n  1,\n  null\n ]\n}\n'
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [1, None]}


def test_json_with_nan_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        atomic_write_json(tmp_path / "run.json", {"c_index": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_a_text_handle_writes_newlines_as_given_and_replaces_the_file_at_the_end(tmp_path):
    target = tmp_path / "scores.csv"
    target.write_text("old")
    with atomic_open(target) as handle:
        handle.write("a\r\nb\n")
        assert target.read_text() == "old"
    assert target.read_bytes() == b"a\r\nb\n"


def test_a_temporary_file_filled_over_time_becomes_the_target_only_when_published(tmp_path):
    target = tmp_path / "cache" / "tiles.h5"
    tmp = temporary_beside(target)
    assert tmp.parent == target.parent and tmp.name.startswith(".tiles.h5.") and tmp.name.endswith(".tmp")
    tmp.write_bytes(b"complete")
    assert not target.exists()
    old = os.umask(0o022)
    try:
        publish(tmp, target)
    finally:
        os.umask(old)
    assert target.read_bytes() == b"complete" and not tmp.exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
