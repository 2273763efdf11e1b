"""Store locations: a path or a store URL picks the backend; passwords and tokens never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from sarcoma_risk.errors import AuthenticationRequired, InvalidInput, StoreUnavailable
from sarcoma_risk.records import open_store
from sarcoma_risk.records.location import StoreKind, StoreLocation
from sarcoma_risk.records.sqlite import SqliteStore


@pytest.mark.parametrize("text, kind, target", [
    ("cases.sqlite", StoreKind.SQLITE, "cases.sqlite"),
    ("/data/team/cases.sqlite", StoreKind.SQLITE, "/data/team/cases.sqlite"),
    ("C:\\Users\\me\\cases.sqlite", StoreKind.SQLITE, "C:\\Users\\me\\cases.sqlite"),
    ("sqlite:///relative/cases.sqlite", StoreKind.SQLITE, "relative/cases.sqlite"),
    ("sqlite:////absolute/cases.sqlite", StoreKind.SQLITE, "/absolute/cases.sqlite"),
    ("postgresql://sarcoma@db.example.org:5432/sarcoma_risk", StoreKind.POSTGRESQL,
     "postgresql://sarcoma@db.example.org:5432/sarcoma_risk"),
    ("postgres://db/sarcoma_risk?sslmode=require", StoreKind.POSTGRESQL, "postgres://db/sarcoma_risk?sslmode=require"),
    ("https://records.example.org:8443/", StoreKind.HTTP, "https://records.example.org:8443"),
    ("HTTP://127.0.0.1:8000/sarcoma-risk", StoreKind.HTTP, "http://127.0.0.1:8000/sarcoma-risk"),
])
def test_a_path_or_url_names_its_backend(text, kind, target):
    where = StoreLocation.parse(text)
    assert (where.kind, where.target) == (kind, target)


def test_a_path_object_is_a_sqlite_file(tmp_path):
    assert StoreLocation.parse(tmp_path / "x.sqlite") == StoreLocation(StoreKind.SQLITE, str(tmp_path / "x.sqlite"))


def test_a_postgresql_password_never_shows_in_the_location_people_see():
    where = StoreLocation.parse("postgresql://sarcoma:s3cret@db:5432/sarcoma_risk?password=other")
    assert where.display == "postgresql://sarcoma@db:5432/sarcoma_risk"
    assert "s3cret" not in str(where) and "other" not in str(where)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("mysql://db/cases", "scheme 'mysql'"),
    ("sqlite://cases.sqlite", "sqlite:///relative"),
    ("postgresql://db:5432/", "names no database"),
    ("https://alice:srk_secret@records:8443", "carries no user or token"),
    ("https://records:8443/?token=x", "no query"),
    ("https://records:port", "not a valid URL"),
])
def test_a_location_that_cannot_be_used_is_refused_with_what_is_accepted(text, message):
    with pytest.raises(InvalidInput, match=message) as info:
        StoreLocation.parse(text)
    assert "srk_secret" not in str(info.value)


def test_open_store_follows_SARCOMA_RISK_STORE_when_no_location_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SARCOMA_RISK_STORE", f"sqlite:///{tmp_path.as_posix()}/env.sqlite")  # 4 slashes: absolute
    with open_store(mode="a") as store:
        assert isinstance(store, SqliteStore)
        assert store.path == tmp_path / "env.sqlite"


def test_a_server_that_does_not_answer_is_unavailable_and_says_where(monkeypatch):
    from pgcluster import free_port

    monkeypatch.setenv("SARCOMA_RISK_TOKEN", "srk_" + "a" * 43)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable, match=f"{url}: the case-record server cannot be reached"):
        open_store(url, "r")


def test_a_server_store_without_a_token_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv("SARCOMA_RISK_TOKEN", raising=False)
    monkeypatch.setenv("SARCOMA_RISK_TOKEN_FILE", str(tmp_path / "missing-token"))
    with pytest.raises(AuthenticationRequired, match="save-token"):
        open_store("https://records.example.org:8443", "r")


def test_a_relative_sqlite_url_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///sub/cases.sqlite", "a") as store:
        assert Path(store.location).resolve() == (tmp_path / "sub" / "cases.sqlite").resolve()
