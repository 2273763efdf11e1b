"""The files of a QuPath project on disk: where they are, backing them up, signs that QuPath has it open.

A QuPath project (0.2-0.6) is a folder::

    project.qpproj                  JSON: the image list, each image's name, URI and metadata
    classifiers/classes.json        the project's classes
    data/<entry id>/data.qpdata     one image's objects (annotations, tiles...), Java-serialised
    data/<entry id>/server.json     how to open the image; summary.json, thumbnail.jpg

QuPath keeps an open project's data in memory and writes it back on its next save, so changes made
behind an open project are overwritten: the bridge asks for QuPath to be closed, looks for signs
that it is not (:func:`open_project_signs`), and copies every file it is about to change into a
backup folder before its first write (:func:`backup_project_files`). QuPath leaves no lock file, so
the signs are a QuPath process running on this computer and project files written in the last
minutes.

Nothing here needs QuPath or paquo.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable
from urllib.parse import unquote, urlsplit

from sarcoma_risk.errors import InvalidInput, OutputError
from sarcoma_risk.provenance import sha256_file

PROJECT_FILE = "project.qpproj"
#: The bridge's own folder inside a project: backups, run metadata, resume state, scoring inputs.
BRIDGE_FOLDER = "sarcoma-risk"
#: Per-image files QuPath may rewrite when an image's data is saved.
ENTRY_FILES = ("data.qpdata", "server.json", "summary.json")
#: Project files changed this recently suggest that QuPath is still working on the project.
RECENT_WRITE_S = 120.0


def project_file(path: str | Path) -> Path:
    """The ``project.qpproj`` of a project folder (or the file itself); :class:`InvalidInput` if none."""
    path = Path(path).expanduser()
    candidate = path / PROJECT_FILE if path.is_dir() else path
    if candidate.suffix != ".qpproj":
        raise InvalidInput(f"{path}: not a QuPath project; give the project folder (the one holding "
                           f"{PROJECT_FILE})")
    if not candidate.is_file():
        raise InvalidInput(f"{path}: no QuPath project here ({candidate.name} not found); give the folder "
                           "QuPath created with File > Project... > Create project")
    return candidate


def bridge_folder(project: Path) -> Path:
    """``<project folder>/sarcoma-risk``: where the bridge keeps its own files (QuPath ignores it)."""
    return project_file(project).parent / BRIDGE_FOLDER


def path_from_uri(uri: str) -> Path | None:
    """The local file of a QuPath image URI (``file:/...``), or None for other schemes (OMERO, http).

    QuPath writes ``file:/C:/slides/a%20b.svs`` on Windows and ``file:/data/a%20b.svs`` elsewhere.
    """
    parts = urlsplit(uri)
    if parts.scheme.lower() != "file":
        return None
    text = unquote(parts.path)
    if parts.netloc and parts.netloc.lower() != "localhost":  # a UNC share: file://server/share/x
        return Path(str(PureWindowsPath(f"//{parts.netloc}{text}")))
    if len(text) >= 3 and text[0] == "/" and text[2] == ":" and text[1].isalpha():  # /C:/...
        return Path(str(PureWindowsPath(text[1:])))
    return Path(str(PurePosixPath(text)))


def check_image_reachable(uri: str, label: str) -> Path:
    """The image's local file, or :class:`InvalidInput` saying it moved (paquo would silently not save)."""
    path = path_from_uri(uri)
    if path is None:
        raise InvalidInput(f"image {label}: served from {uri.split(':', 1)[0]!r} ({uri}); SarcomaRisk scores "
                           "local slide files only")
    if not path.exists():
        raise InvalidInput(f"image {label}: the slide file {path} is missing (moved, renamed or on a drive that "
                           "is not connected); nothing was written for it. Reconnect the drive, or fix the path "
                           "in QuPath with File > Project... > Check project URIs, then score again")
    return path


@dataclass(frozen=True)
class OpenSign:
    """One reason to think QuPath has the project open."""

    kind: str  # "process" or "recent-write"
    detail: str


def qupath_processes() -> list[tuple[int, str]]:
    """(pid, command line) of QuPath processes of this computer (Linux /proc; elsewhere nothing)."""
    proc = Path("/proc")
    if not sys.platform.startswith("linux") or not proc.is_dir():
        return []
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended, or belongs to someone we may not look at
            continue
        argv = [a for a in raw.decode("utf-8", "replace").split("\0") if a]
        # The launcher (QuPath, QuPath-0.5.1) or the Java process running qupath.QuPath.
        if argv and (Path(argv[0]).name.lower().startswith("qupath") or "qupath.QuPath" in argv):
            found.append((int(entry.name), " ".join(argv)[:200]))
    return sorted(found)


def open_project_signs(project: Path, entry_ids: Iterable[str] = (), *, now: float | None = None,
                       recent_s: float = RECENT_WRITE_S) -> list[OpenSign]:
    """Signs that QuPath has ``project`` open: a QuPath process, or project files written lately."""
    qpproj = project_file(project)
    now = time.time() if now is None else now
    signs = [OpenSign("process", f"QuPath is running (process {pid}: {command})")
             for pid, command in qupath_processes()]
    files = [qpproj] + [qpproj.parent / "data" / str(e) / "data.qpdata" for e in entry_ids]
    for path in files:
        try:
            age = now - path.stat().st_mtime
        except FileNotFoundError:
            continue
        if -5.0 <= age <= recent_s:  # a little slack for clocks of network drives
            signs.append(OpenSign("recent-write", f"{path.relative_to(qpproj.parent).as_posix()} was written "
                                                  f"{max(age, 0.0):.0f} s ago"))
    return signs


def open_project_warning(signs: list[OpenSign]) -> str:
    """The message shown before writing into a project."""
    head = ("QuPath overwrites changes made behind an open project: close the project in QuPath (File > "
            "Project... > Close project) before scoring, and reopen it afterwards")
    if not signs:
        return head + "."
    return head + ". Signs that it may be open: " + "; ".join(s.detail for s in signs) + "."


def project_data_files(project: Path, entry_ids: Iterable[str]) -> list[Path]:
    """The files a write of ``entry_ids`` may change: project.qpproj, classes and the entries' data."""
    qpproj = project_file(project)
    root = qpproj.parent
    files = [qpproj, root / "classifiers" / "classes.json"]
    for entry_id in entry_ids:
        files += [root / "data" / str(entry_id) / name for name in ENTRY_FILES]
    return [f for f in files if f.is_file()]


def backup_project_files(project: Path, entry_ids: Iterable[str], stamp: str) -> Path:
    """Copy the files a run may change into ``<project>/sarcoma-risk/backups/<stamp>/``.

    The copies keep their paths relative to the project folder, so restoring is copying them back
    (with QuPath closed). A ``backup.json`` lists each file with its sha256. The backup is built in
    a temporary folder and renamed when complete and verified, so it is never half there.
    """
    qpproj = project_file(project)
    root = qpproj.parent
    target = root / BRIDGE_FOLDER / "backups" / stamp
    if target.exists():
        raise OutputError(f"{target}: a backup with this name already exists; refusing to overwrite it")
    files = project_data_files(project, entry_ids)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{stamp}.", suffix=".tmp"))
    except OSError as exc:
        raise OutputError(f"{target.parent}: cannot create the backup folder ({exc.strerror}); nothing was "
                          "written to the project") from None
    try:
        listing = []
        for path in files:
            relative = path.relative_to(root)
            copy = staging / relative
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
            digest = sha256_file(path)
            if sha256_file(copy) != digest:
                raise OutputError(f"{copy}: the backup copy differs from {path}; is the disk failing?")
            listing.append({"file": relative.as_posix(), "sha256": digest, "bytes": path.stat().st_size})
        (staging / "backup.json").write_text(json.dumps(
            {"format": "sarcoma-qupath-backup/1", "project": PROJECT_FILE, "files": listing,
             "restore": "close QuPath, then copy these files back into the project folder"}, indent=2) + "\n",
            encoding="utf-8")
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{target}: the backup failed ({exc.strerror or exc}); nothing was written to the "
                          "project") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
