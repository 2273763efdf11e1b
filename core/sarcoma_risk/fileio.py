"""Atomic file output: write beside the target, then rename, so a crash never leaves half a file.

The one place that writes files this way: :func:`atomic_path` for writers that need a path (SimpleITK,
torch), :func:`atomic_open` for a text handle (csv), :func:`atomic_write_bytes`,
:func:`atomic_write_text` and :func:`atomic_write_json` for data in memory. A file filled over a long
time (the HDF5 tile cache) takes :func:`temporary_beside` and, once complete, :func:`publish`.

The temporary file gets the permissions an ordinary new file would get (0666 minus the umask), not
the 0600 of :func:`tempfile.mkstemp`: annotations and reports in a shared folder must stay readable
by colleagues. A secret (an API token) is written through ``atomic_path(..., private=True)`` and keeps
0600 throughout.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, TextIO


def default_file_mode() -> int:
    """The permissions an ordinary new file gets: 0666 minus the process umask."""
    mask = os.umask(0)  # the only portable way to read the umask is to set it and put it back
    os.umask(mask)
    return 0o666 & ~mask


def temporary_beside(path: str | Path, suffix: str = ".tmp") -> Path:
    """A new empty file in ``path``'s folder (created, with its folder), named ``.<name>.<random><suffix>``.

    The caller fills it, then calls :func:`publish`, or removes it on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    return Path(name)


def publish(tmp: str | Path, path: str | Path, *, private: bool = False) -> Path:
    """Give ``tmp`` an ordinary new file's permissions (or, ``private``, keep its owner-only 0600) and
    rename it onto ``path`` (atomic on one file system)."""
    if not private:
        os.chmod(tmp, default_file_mode())
    os.replace(tmp, path)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", *, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` when the block succeeds.

    When the block raises, the temporary file is removed and ``path`` is left as it was. ``suffix``
    matters to writers that pick the format from the extension (SimpleITK). ``private``: see :func:`publish`.
    """
    tmp = temporary_beside(path, suffix)
    try:
        yield tmp
        publish(tmp, path, private=private)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text handle (no newline translation) whose content replaces ``path`` when the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        yield handle


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given); returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, *, indent: int = 2) -> Path:
    """Write ``data`` as JSON (sorted keys, no NaN, a final newline) to ``path`` atomically; returns ``path``.

    NaN or infinity is refused (:class:`ValueError`): JSON has neither; write None for an undefined figure.
    """
    return atomic_write_text(path, json.dumps(data, indent=indent, sort_keys=True, allow_nan=False) + "\n")
