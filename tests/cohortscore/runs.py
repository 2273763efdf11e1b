"""Running ``score-cohort`` in the tests and reading what it left: the command's output, run metadata, records."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

#: Cases of the session's tiny phantom cohort used by the small cohort (see conftest.py).
GOOD = ("SYN-A-0001", "SYN-B-0001")
BAD_SLIDE, BAD_MASK = "SYN-A-0002", "SYN-B-0002"
PATH_COLUMNS = ("mri_t2fs", "mri_t1ce", "tumor_seg", "slides", "annotations")
WEIGHTS = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class Run:
    """One ``sarcoma-risk score-cohort`` call: exit status, output, and the run metadata it wrote."""

    status: int
    stdout: str
    stderr: str
    store: Path
    out: Path

    @property
    def metadata(self) -> dict:
        path = [word for word in self.stdout.split() if word.endswith(".json")][-1]  # "run metadata: PATH"
        return json.loads(Path(path).read_text(encoding="utf-8"))

    def units(self) -> dict[tuple[str, str], dict]:
        return {(u["case_id"], u["modality"]): u for u in self.metadata["units"]}


def score_cohort_cli(manifest: Path, store: Path, out: Path, *extra: str) -> Run:
    """Run the command as a user would (its main), capturing what it prints."""
    from sarcoma_risk.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(["score-cohort", str(manifest), "--store", str(store), "--out", str(out), *extra])
    return Run(status, stdout.getvalue(), stderr.getvalue(), store, out)


def sections(store: Path) -> dict[str, dict]:
    """Case id -> {section: content} of every record, read-only."""
    from sarcoma_risk.records import open_store

    with open_store(store, mode="r") as cases:
        return {r.case_id: {"radiology": r.radiology, "pathology": r.pathology, "revisions": dict(r.revisions)}
                for r in cases.records()}


def copy_store(store: Path, to: Path) -> Path:
    """A copy of a SQLite store (through SQLite's backup, so nothing in its WAL is missed)."""
    source, target = sqlite3.connect(store), sqlite3.connect(to)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return to


def history_length(store: Path) -> int:
    """How many entries the store's audit log holds."""
    from sarcoma_risk.records import open_store

    with open_store(store, mode="r") as cases:
        return len(cases.history())
