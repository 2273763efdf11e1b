"""Atomic file output: write beside the target, then rename, so a crash never leaves half a file.

The temporary file gets the permissions an ordinary new file would get (0666 minus the umask), not
the 0600 of :func:`tempfile.mkstemp`: annotations and reports in a shared folder must stay readable
by colleagues.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def default_file_mode() -> int:
    """The permissions an ordinary new file gets: 0666 minus the process umask."""
    mask = os.umask(0)  # the only portable way to read the umask is to set it and put it back
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; rename it onto ``path`` when the block succeeds.

    When the block raises, the temporary file is removed and ``path`` is left as it was. ``suffix``
    matters to writers that pick the format from the extension (SimpleITK).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given); returns ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"))
