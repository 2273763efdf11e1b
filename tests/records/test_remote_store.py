"""The HTTP client's token: found in the environment or a private per-user file, never shown."""

from __future__ import annotations

import os
import stat

import pytest

from sarcoma_risk.errors import AuthenticationRequired, InvalidInput
from sarcoma_risk.records.credentials import check_token_text, default_token_file, find_token, save_token
from sarcoma_risk.records.remote import HttpStore

TOKEN = "srk_" + "T" * 43


@pytest.fixture
def no_env_token(monkeypatch, tmp_path):
    monkeypatch.delenv("SARCOMA_RISK_TOKEN", raising=False)
    monkeypatch.setenv("SARCOMA_RISK_TOKEN_FILE", str(tmp_path / "config" / "token"))
    return tmp_path / "config" / "token"


def test_the_token_comes_from_the_environment_first(monkeypatch, no_env_token):
    save_token("srk_" + "F" * 43)
    monkeypatch.setenv("SARCOMA_RISK_TOKEN", TOKEN)
    assert find_token("https://records:8443") == TOKEN


def test_a_saved_token_is_private_to_its_owner_and_read_back(no_env_token):
    path = save_token(TOKEN)
    assert path == no_env_token == default_token_file()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert find_token("https://records:8443") == TOKEN
    assert not any(p.name.endswith(".tmp") for p in path.parent.iterdir())


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_token_file_others_may_read_is_refused_without_showing_the_token(no_env_token):
    path = save_token(TOKEN)
    path.chmod(0o644)
    with pytest.raises(AuthenticationRequired, match="chmod 600") as info:
        find_token("https://records:8443")
    assert TOKEN not in str(info.value)


def test_text_that_is_not_a_token_is_refused_without_being_echoed(no_env_token, monkeypatch):
    monkeypatch.setenv("SARCOMA_RISK_TOKEN", "my password 123")
    with pytest.raises(InvalidInput, match=r"\$SARCOMA_RISK_TOKEN: this is not a SarcomaRisk API token") as info:
        find_token("https://records:8443")
    assert "password" not in str(info.value)
    with pytest.raises(InvalidInput):
        check_token_text("srk_short", "token")


def test_the_token_never_shows_in_the_store_or_its_errors(no_env_token):
    store = HttpStore("http://127.0.0.1:9/", "r", token=TOKEN, timeout=2)
    assert TOKEN not in repr(store) and TOKEN not in str(vars(store).get("location"))
    with pytest.raises(Exception) as info:
        store.open()
    assert TOKEN not in str(info.value)


def test_exclusive_mode_is_refused_for_a_server(no_env_token):
    with pytest.raises(InvalidInput, match="created by the server"):
        HttpStore("https://records:8443", "x", token=TOKEN).open()
