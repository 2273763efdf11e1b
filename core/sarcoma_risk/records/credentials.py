"""Where a client finds its API token for the case-record server, and how it is kept.

In this order: ``$SARCOMA_RISK_TOKEN``; the file named by ``$SARCOMA_RISK_TOKEN_FILE``; the per-user
token file (on Linux ``~/.config/SarcomaRisk/token``; ``sarcoma-risk users save-token`` writes it).
A token file must be readable by its owner only (as ssh keys must be): one that others may read is
refused. Tokens are never printed or logged; messages name the file, never its content.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from platformdirs import user_config_dir

from sarcoma_risk.errors import AuthenticationRequired, InvalidInput
from sarcoma_risk.fileio import atomic_path
from sarcoma_risk.records.accounts import TOKEN_PREFIX

TOKEN_ENV = "SARCOMA_RISK_TOKEN"
TOKEN_FILE_ENV = "SARCOMA_RISK_TOKEN_FILE"


def default_token_file() -> Path:
    """``$SARCOMA_RISK_TOKEN_FILE``, else ``token`` in the per-user configuration folder."""
    env = os.environ.get(TOKEN_FILE_ENV, "").strip()
    if env:
        return Path(env).expanduser()

    return Path(user_config_dir("SarcomaRisk", appauthor=False)) / "token"


def find_token(server: str) -> str:
    """The token to send to ``server`` (named in messages only); raises :class:`AuthenticationRequired`."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return check_token_text(token, f"${TOKEN_ENV}")
    path = default_token_file()
    if not path.is_file():
        raise AuthenticationRequired(
            f"{server}: no API token; set {TOKEN_ENV}, or save the token your administrator gave you with "
            f"'sarcoma-risk users save-token --store {server}' (it goes to {path})")
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuthenticationRequired(f"{path}: the token file may be read by other users; make it private "
                                     f"(chmod 600 {path}) and ask for a new token if others could have read it")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise AuthenticationRequired(f"{path}: the token file is empty; save the token again")
    return check_token_text(lines[0], str(path))


def check_token_text(token: str, source: str) -> str:
    """``token`` if it looks like one of ours (the value itself never appears in the message)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) < 40 or not token.isascii() or any(c.isspace() for c in token):
        raise InvalidInput(f"{source}: this is not a SarcomaRisk API token (those start with {TOKEN_PREFIX!r} "
                           "and are about 47 characters long)")
    return token


def save_token(token: str, path: Path | None = None) -> Path:
    """Write ``token`` to the per-user token file (or ``path``), readable by its owner only."""
    check_token_text(token, "token")
    path = path or default_token_file()
    with atomic_path(path, private=True) as tmp:  # owner-only from creation on, never briefly readable by others
        tmp.write_text(token + "\n", encoding="utf-8")
    return path
