"""Project files without QuPath: finding the project, image paths, backups, signs of an open project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qupath_bridge.projectfiles import (
    backup_project_files,
    check_image_reachable,
    open_project_signs,
    open_project_warning,
    path_from_uri,
    project_file,
)
from sarcoma_risk.errors import InvalidInput, OutputError
from sarcoma_risk.provenance import sha256_file


def test_the_project_file_is_found_from_the_folder_or_refused_with_a_hint(project_layout, tmp_path):
    assert project_file(project_layout) == project_layout / "project.qpproj"
    assert project_file(project_layout / "project.qpproj") == project_layout / "project.qpproj"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no QuPath project here"):
        project_file(tmp_path / "empty")
    with pytest.raises(InvalidInput, match="not a QuPath project"):
        project_file(project_layout / "classifiers" / "classes.json")


@pytest.mark.parametrize(("uri", "expected"), [
    ("file:/data/slides/a%20b.svs", "/data/slides/a b.svs"),
    ("file:///data/slides/x.ndpi", "/data/slides/x.ndpi"),
    ("file://localhost/data/x.svs", "/data/x.svs"),
])
def test_posix_file_uris_become_paths(uri, expected):
    assert path_from_uri(uri) == Path(expected)


def test_windows_and_share_uris_keep_their_drive_or_server():
    assert str(path_from_uri("file:/C:/Slides/case%201.svs")).replace("\\", "/") == "C:/Slides/case 1.svs"
    assert str(path_from_uri("file://server/share/x.svs")).replace("\\", "/") == "//server/share/x.svs"
    assert path_from_uri("https://omero.example.org/webclient/img_detail/5") is None


def test_an_image_whose_file_moved_is_refused_naming_the_image(tmp_path, phantom_slides):
    slide = phantom_slides["plain"].slide
    assert check_image_reachable(slide.resolve().as_uri(), "'plain.svs' (entry 2)") == slide.resolve()
    with pytest.raises(InvalidInput, match=r"'moved.svs' \(entry 3\): the slide file .*moved.svs is missing") as info:
        check_image_reachable((tmp_path / "moved.svs").as_uri(), "'moved.svs' (entry 3)")
    assert "Check project URIs" in str(info.value)
    with pytest.raises(InvalidInput, match="local slide files only"):
        check_image_reachable("https://omero.example.org/img/5", "'remote' (entry 4)")


def test_the_backup_copies_every_file_a_run_may_change_and_lists_their_sha256(project_layout):
    backup = backup_project_files(project_layout, ["1"], "20250101T000000Z")
    assert backup == project_layout / "sarcoma-risk" / "backups" / "20250101T000000Z"
    listing = json.loads((backup / "backup.json").read_text())
    files = {item["file"]: item["sha256"] for item in listing["files"]}
    assert set(files) == {"project.qpproj", "classifiers/classes.json", "data/1/data.qpdata",
                          "data/1/server.json", "data/1/summary.json"}  # entry 2 and thumbnails are not touched
    for relative, digest in files.items():
        assert sha256_file(backup / relative) == digest == sha256_file(project_layout / relative)
    assert not [p for p in backup.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_backup_never_overwrites_an_earlier_one(project_layout):
    first = backup_project_files(project_layout, ["1"], "stamp")
    before = sha256_file(first / "project.qpproj")
    (project_layout / "project.qpproj").write_text("{}")
    with pytest.raises(OutputError, match="already exists"):
        backup_project_files(project_layout, ["1"], "stamp")
    assert sha256_file(first / "project.qpproj") == before


def test_a_backup_that_cannot_be_written_leaves_the_project_unchanged(project_layout):
    before = {p: sha256_file(p) for p in project_layout.rglob("*") if p.is_file()}
    (project_layout / "sarcoma-risk").mkdir()
    (project_layout / "sarcoma-risk" / "backups").write_text("a file where the backup folder should be")
    with pytest.raises(OutputError, match="cannot create the backup folder.*nothing was written to the project"):
        backup_project_files(project_layout, ["1"], "stamp")
    assert {p: sha256_file(p) for p in before} == before


def test_recent_writes_are_signs_of_an_open_project_and_old_ones_are_not(project_layout):
    now = time.time()
    old = now - 3600
    for path in [project_layout / "project.qpproj", *project_layout.glob("data/*/data.qpdata")]:
        os.utime(path, (old, old))
    assert [s for s in open_project_signs(project_layout, ["1", "2"], now=now) if s.kind == "recent-write"] == []
    os.utime(project_layout / "data" / "2" / "data.qpdata", (now - 30, now - 30))
    signs = [s for s in open_project_signs(project_layout, ["1", "2"], now=now) if s.kind == "recent-write"]
    assert [s.detail for s in signs] == ["data/2/data.qpdata was written 30 s ago"]
    warning = open_project_warning(signs)
    assert "close the project in QuPath" in warning and "data/2/data.qpdata was written 30 s ago" in warning


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="QuPath processes are looked up in /proc (Linux)")
def test_a_running_qupath_process_is_a_sign_of_an_open_project(project_layout, tmp_path):
    launcher = tmp_path / "QuPath"
    shutil.copy(shutil.which("sleep"), launcher)
    process = subprocess.Popen([str(launcher), "30"])
    try:
        deadline = time.time() + 5
        while True:  # the kernel fills /proc/<pid>/cmdline once exec has happened
            signs = [s for s in open_project_signs(project_layout) if s.kind == "process"]
            if any(f"process {process.pid}" in s.detail for s in signs) or time.time() > deadline:
                break
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    assert any(f"process {process.pid}" in s.detail and "QuPath" in s.detail for s in signs)
    assert "QuPath is running" in open_project_warning(signs)
