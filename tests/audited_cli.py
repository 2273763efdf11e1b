"""Run ``sarcoma-risk`` and record which files this process writes under a folder (for distributed tests).

Usage (one process per rank, as torchrun starts them)::

    python audited_cli.py WATCHED_DIR AUDIT_DIR sarcoma-risk-arguments...

Python's audit hooks see every file the interpreter opens for writing, creates, renames or
removes, whichever library asks for it (torch.save through a Python file object included; C
libraries writing on their own, such as HDF5, are not seen). Each write under ``WATCHED_DIR`` is
recorded, and at the end ``AUDIT_DIR/rank-<RANK>.json`` lists them, so a test can tell which rank
wrote what.
"""

from __future__ import annotations

import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def main() -> int:
    watched = os.path.abspath(sys.argv[1])
    audit_dir = sys.argv[2]
    writes: list[list[str]] = []

    def under(path: object) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None  # a file descriptor
        text = os.path.abspath(os.fsdecode(path))
        return text if text == watched or text.startswith(watched + os.sep) else None

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
            if writing and (target := under(path)):
                writes.append([event, target])
        elif event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.copyfile", "tempfile.mkstemp"):
            targets = args[1:2] if event in ("os.rename", "shutil.copyfile") else args[:1]
            writes.extend([event, t] for t in map(under, targets) if t)

    sys.addaudithook(hook)
    from sarcoma_risk.cli import main as sarcoma_risk

    status = sarcoma_risk(sys.argv[3:])
    with open(os.path.join(audit_dir, f"rank-{os.environ.get('RANK', '0')}.json"), "w", encoding="utf-8") as handle:
        json.dump(writes, handle)
    return status


if __name__ == "__main__":
    sys.exit(main())
