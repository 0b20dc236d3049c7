"""Settings come from the environment; a malformed value stops start-up with a sentence
naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from kfadmin import envconf

ROOT = Path(__file__).resolve().parent.parent


def start(env: dict[str, str], show: str = "'started'") -> subprocess.CompletedProcess:
    """Load the settings in a fresh interpreter, as `manage.py` would, and print `show`."""
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")}
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); from django.conf import settings; print({show})"],
        cwd=ROOT, env={**clean, "DJANGO_SETTINGS_MODULE": "kfadmin.settings", **env},
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/kf"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:54x2/kfadmin"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/"),
        ("CELERY_BROKER_URL", "kafka://broker:9092"),
        ("CACHE_URL", "memcached://127.0.0.1:11211"),
        ("CACHE_URL", "redis://"),
        ("FRAGMENT_CACHE_SECONDS", "-1"),
        ("WECHAT_API_BASE", "api.weixin.qq.com"),
        ("WECHAT_TIMEOUT", "ten"),
        ("WECHAT_TIMEOUT", "0"),
        ("DEBUG", "maybe"),
        ("SECRET_KEY", "short"),
    ],
)
def test_a_malformed_variable_stops_start_up_naming_it(variable, value):
    result = start({variable: value})
    assert result.returncode != 0
    assert "started" not in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and variable in last_line


def test_secret_key_is_required_when_debug_is_off():
    result = start({"DEBUG": "false", "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_the_embedded_default_starts_with_no_environment():
    result = start({})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_a_postgres_url_becomes_a_database_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://kf:p%40ss@db.internal:6543/kfadmin?sslmode=require")
    entry = envconf.database_from_url("DATABASE_URL", "sqlite:///x", base_dir=tmp_path)
    assert (entry["ENGINE"], entry["NAME"], entry["USER"], entry["PASSWORD"]) == (
        "django.db.backends.postgresql", "kfadmin", "kf", "p@ss"
    )
    assert (entry["HOST"], entry["PORT"], entry["OPTIONS"]) == ("db.internal", "6543", {"sslmode": "require"})


def test_a_relative_sqlite_url_lives_in_the_project(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/demo.sqlite3")
    entry = envconf.database_from_url("DATABASE_URL", "sqlite:///x", base_dir=tmp_path)
    assert entry["NAME"] == str(tmp_path / "var" / "demo.sqlite3")


def test_a_development_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    keep = tmp_path / "secret_key"
    first = envconf.secret_key("SECRET_KEY", debug=True, keep_file=keep)
    assert len(first) >= 50 and keep.read_text() == first
    assert envconf.secret_key("SECRET_KEY", debug=True, keep_file=keep) == first


def test_lists_and_booleans_are_parsed(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " kf.example.com, ,127.0.0.1 ")
    monkeypatch.setenv("DEBUG", "Off")
    assert envconf.env_list("ALLOWED_HOSTS", []) == ["kf.example.com", "127.0.0.1"]
    assert envconf.env_bool("DEBUG", True) is False
    monkeypatch.setenv("WECHAT_TIMEOUT", "-3")
    with pytest.raises(ImproperlyConfigured, match="WECHAT_TIMEOUT must be at least 1"):
        envconf.env_int("WECHAT_TIMEOUT", 10, minimum=1)


def test_a_redis_cache_url_shares_the_cache_and_sessions_use_it(monkeypatch):
    monkeypatch.setenv("CACHE_URL", "redis://127.0.0.1:6379/3")
    entry = envconf.cache_from_url("CACHE_URL", "")
    assert entry == {"BACKEND": "kfadmin.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/3"}
    result = start({"CACHE_URL": "redis://127.0.0.1:6379/3"}, show="settings.SESSION_ENGINE")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.contrib.sessions.backends.cached_db"


def test_no_cache_url_keeps_a_cache_in_each_process(monkeypatch):
    monkeypatch.delenv("CACHE_URL", raising=False)
    assert envconf.cache_from_url("CACHE_URL", "")["BACKEND"].endswith("LocMemCache")
    # Sessions then stay in the database, which every process shares.
    result = start({}, show="settings.SESSION_ENGINE")
    assert result.stdout.strip() == "django.contrib.sessions.backends.db"


def test_the_embedded_default_broker_is_the_atomic_filesystem_transport():
    show = "__import__('kfadmin.celery').celery.app.connection_for_write().get_transport_cls()"
    result = start({"CELERY_BROKER_URL": "filesystem://"}, show=show)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "<class 'kfadmin.broker.Transport'>"
    assert start({}, show=show).stdout.strip() == "<class 'kfadmin.broker.Transport'>"


def test_a_redis_broker_keeps_kombus_redis_transport():
    show = "__import__('kfadmin.celery').celery.app.connection_for_write().get_transport_cls()"
    result = start({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/1"}, show=show)
    assert result.stdout.strip() == "<class 'kombu.transport.redis.Transport'>", result.stderr


def test_the_field_encryption_key_is_required_when_debug_is_off():
    result = start({"DEBUG": "false", "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEY": ""})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEY must be set when DEBUG is off" in result.stderr.strip().splitlines()[-1]


def test_a_short_field_encryption_key_stops_start_up():
    result = start({"FIELD_ENCRYPTION_KEY": "y" * 40 + ",short"})
    assert result.returncode != 0
    assert "key 2 is shorter" in result.stderr


def test_a_development_field_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("FIELD_ENCRYPTION_KEY", raising=False)
    keep = tmp_path / ".local" / "field_encryption_key"

    first = envconf.field_encryption_keys("FIELD_ENCRYPTION_KEY", debug=True, keep_file=keep)

    assert first == envconf.field_encryption_keys("FIELD_ENCRYPTION_KEY", debug=True, keep_file=keep)
    assert len(first) == 1 and len(first[0]) >= 32 and keep.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("X-Forwarded-Proto: https", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("X-Forwarded-Proto", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("X-Forwarded-Ssl: on", ("HTTP_X_FORWARDED_SSL", "on")),
        ("", None),
    ],
)
def test_the_proxy_ssl_header_is_read_as_header_and_value(monkeypatch, value, expected):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", value)
    assert envconf.proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == expected


def test_a_malformed_proxy_ssl_header_stops_start_up():
    result = start({"SECURE_PROXY_SSL_HEADER": "X Forwarded: https"})
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr.strip().splitlines()[-1]


def test_the_example_env_leaves_secure_cookies_to_follow_debug():
    example = (ROOT / ".env.example").read_text()
    assignments = dict(
        line.split("=", 1) for line in example.splitlines() if line and not line.startswith("#")
    )
    # An empty SECURE_COOKIES= would read as "off".
    assert "SECURE_COOKIES" not in assignments
    result = start({**assignments, "DEBUG": "false",
                    "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEY": "y" * 40},
                   show="settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True True"
