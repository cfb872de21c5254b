"""Configuration layering: defaults, instance/config.py, DATABASE_URL, ALIGNWORK_*, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from alignwork import INSTANCE_PATH_VARIABLE, create_app
from alignwork.config import ConfigurationError, normalise_database_url

PROJECT_INSTANCE = Path(__file__).resolve().parents[1] / "instance"


@pytest.mark.parametrize("url,expected", [
    ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
    ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
    ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ("sqlite:///x.sqlite", "sqlite:///x.sqlite"),
])
def test_database_urls_are_rewritten_for_psycopg3(url, expected):
    assert normalise_database_url(url) == expected


def test_defaults_use_sqlite_in_the_instance_folder_and_simplecache(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert app.config["SQLALCHEMY_DATABASE_URI"].endswith("/instance/alignwork.sqlite")
    assert app.config["CACHE_TYPE"] == "alignwork.cache.local.SimpleCache"
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 30  # per-process cache: other processes' writes never reach it
    assert app.config["CACHE_KEY_PREFIX"] == "alignwork:"


def test_layers_apply_in_order(monkeypatch, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(
        "CACHE_DEFAULT_TIMEOUT = 11\nCACHE_KEY_PREFIX = 'from-file:'\nCACHE_STALE_SECONDS = 7\n"
        "SQLALCHEMY_DATABASE_URI = 'sqlite:///file.sqlite'\n"
    )
    monkeypatch.setenv(INSTANCE_PATH_VARIABLE, str(instance))
    monkeypatch.setenv("DATABASE_URL", "postgres://db.example/alignwork")
    monkeypatch.setenv("ALIGNWORK_CACHE_DEFAULT_TIMEOUT", "12")
    monkeypatch.setenv("ALIGNWORK_CACHE_KEY_PREFIX", "from-env:")
    app = create_app({"CACHE_KEY_PREFIX": "from-overrides:"})
    assert app.config["CACHE_STALE_SECONDS"] == 7                 # instance/config.py
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db.example/alignwork"
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 12              # ALIGNWORK_* beats the file
    assert app.config["CACHE_KEY_PREFIX"] == "from-overrides:"    # overrides beat everything


def test_unknown_cache_type_is_refused():
    with pytest.raises(RuntimeError, match="CACHE_TYPE"):
        create_app({"CACHE_TYPE": "MemcachedCache"})


def test_factory_creates_a_missing_instance_folder(monkeypatch, tmp_path):
    instance = tmp_path / "fresh" / "instance"
    monkeypatch.setenv(INSTANCE_PATH_VARIABLE, str(instance))
    create_app({"TESTING": True})
    assert instance.is_dir()


def test_the_instance_folder_can_be_given_to_the_factory(monkeypatch, tmp_path):
    (tmp_path / "config.py").write_text("CACHE_STALE_SECONDS = 17\n")
    monkeypatch.setenv(INSTANCE_PATH_VARIABLE, str(tmp_path / "not-this-one"))
    app = create_app({"TESTING": True}, instance_path=str(tmp_path))
    assert app.instance_path == str(tmp_path)
    assert app.config["CACHE_STALE_SECONDS"] == 17


def test_tests_never_use_the_projects_instance_folder():
    """``make run`` writes a SECRET_KEY into instance/config.py; no test may read it."""
    assert Path(create_app({"TESTING": True}).instance_path) != PROJECT_INSTANCE


@pytest.mark.parametrize("env", ["prod", "Production", "staging"])
def test_an_unknown_environment_is_refused(monkeypatch, env):
    monkeypatch.setenv("ALIGNWORK_ENV", env)
    with pytest.raises(ConfigurationError, match="ALIGNWORK_ENV"):
        create_app({"TESTING": True})


def test_a_shared_cache_keeps_entries_longer_by_default():
    app = create_app({"TESTING": True, "CACHE_TYPE": "RedisCache"})
    assert app.config["CACHE_DEFAULT_TIMEOUT"] == 900  # invalidation keeps it fresh; this is the net


@pytest.mark.parametrize("setting", ["STATS_CACHE_TTL", "TENANT_MEMO_SECONDS"])
def test_settings_of_earlier_releases_are_refused_not_ignored(setting):
    with pytest.raises(ConfigurationError, match=f"{setting} is no longer read; use CACHE_DEFAULT_TIMEOUT"):
        create_app({"TESTING": True, setting: 30})


@pytest.mark.parametrize("name", ["CACHE_DEFAULT_TIMEOUT", "CACHE_STALE_SECONDS"])
@pytest.mark.parametrize("value", [0, -5, "soon", True, 1.5])
def test_cache_lifetimes_must_be_whole_positive_seconds(name, value):
    with pytest.raises(ConfigurationError, match=name):
        create_app({"TESTING": True, name: value})


def test_database_url_in_the_instance_file_is_honoured(monkeypatch, tmp_path):
    """Written in instance/config.py, the deployment convention is used, not quietly ignored for
    SQLite; the DATABASE_URL variable still beats the file (the layers' order)."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / "config.py").write_text("DATABASE_URL = 'postgres://clinic@db.example/alignwork'\n")
    app = create_app({"TESTING": True}, instance_path=str(tmp_path))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://clinic@db.example/alignwork"
    assert "DATABASE_URL" not in app.config

    monkeypatch.setenv("DATABASE_URL", "postgres://clinic@other.example/alignwork")
    app = create_app({"TESTING": True}, instance_path=str(tmp_path))
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://clinic@other.example/alignwork"


def test_a_bad_database_url_in_the_instance_file_is_refused_naming_the_file(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / "config.py").write_text("DATABASE_URL = 'garbage'\n")
    with pytest.raises(ConfigurationError, match="DATABASE_URL in instance/config.py is not a database URL"):
        create_app({"TESTING": True}, instance_path=str(tmp_path))


def test_a_file_naming_the_database_twice_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    (tmp_path / "config.py").write_text(
        "DATABASE_URL = 'postgres://db.example/a'\nSQLALCHEMY_DATABASE_URI = 'sqlite:///b.sqlite'\n")
    with pytest.raises(ConfigurationError, match="sets both DATABASE_URL and SQLALCHEMY_DATABASE_URI"):
        create_app({"TESTING": True}, instance_path=str(tmp_path))


def test_database_url_where_it_is_not_read_is_refused(monkeypatch):
    monkeypatch.setenv("ALIGNWORK_DATABASE_URL", "postgres://db.example/alignwork")
    with pytest.raises(ConfigurationError, match="set SQLALCHEMY_DATABASE_URI"):
        create_app({"TESTING": True})
