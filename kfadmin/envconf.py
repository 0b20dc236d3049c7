"""Typed readers for environment variables that stop start-up with a clear sentence.

Every variable kfadmin reads is documented in `.env.example`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of true/false/1/0/yes/no/on/off, not {raw!r}."
    )


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_http_url(name: str, default: str) -> str:
    raw = os.environ.get(name, default).strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImproperlyConfigured(
            f"{name} must be an http:// or https:// URL such as {default}, not {raw!r}."
        )
    return raw.rstrip("/")


def database_from_url(name: str, default: str, *, base_dir: Path) -> dict:
    """Turn DATABASE_URL into a Django DATABASES entry.

    Accepts postgres://user:password@host:port/dbname and sqlite:///relative/or/absolute.
    """
    raw = os.environ.get(name, default).strip()
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme in ("postgres", "postgresql", "pgsql"):
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise ImproperlyConfigured(
                f"{name} must name a database, e.g. postgres://postgres@127.0.0.1:5432/kfadmin"
                f" (got {raw!r})."
            )
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has a port that is not a number: {raw!r}.") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    if scheme == "sqlite":
        # sqlite:///var/kfadmin.sqlite3 is relative to the project; sqlite:////abs/path is absolute.
        path = raw[len("sqlite:///"):] if raw.startswith("sqlite:///") else ""
        if not path:
            raise ImproperlyConfigured(
                f"{name} must look like sqlite:///var/kfadmin.sqlite3 (got {raw!r})."
            )
        db_path = Path(path) if path.startswith("/") else base_dir / path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(db_path),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    raise ImproperlyConfigured(
        f"{name} must start with postgres:// or sqlite:///, not {raw!r}."
    )


def broker_url(name: str, default: str) -> str:
    raw = os.environ.get(name, default).strip()
    scheme = urlsplit(raw).scheme.lower()
    if scheme not in ("redis", "rediss", "amqp", "amqps", "pyamqp", "filesystem", "memory"):
        raise ImproperlyConfigured(
            f"{name} must be a redis://, amqp:// or filesystem:// URL, not {raw!r}."
        )
    return raw


def cache_from_url(name: str, default: str) -> dict:
    """A CACHES entry: `redis://host:port/db` shares the cache between processes;
    `locmem://` (or nothing) keeps one in each process."""
    raw = os.environ.get(name, default).strip()
    scheme = urlsplit(raw).scheme.lower()
    if raw in ("", "locmem://"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if scheme in ("redis", "rediss") and urlsplit(raw).hostname:
        return {"BACKEND": "kfadmin.cache.RedisCache", "LOCATION": raw}
    raise ImproperlyConfigured(f"{name} must be a redis:// URL or locmem://, not {raw!r}.")


def secret_key(name: str, *, debug: bool, keep_file: Path) -> str:
    """SECRET_KEY from the environment; in development, generated once and kept locally."""
    raw = os.environ.get(name, "").strip()
    if raw:
        if len(raw) < 32:
            raise ImproperlyConfigured(f"{name} must be at least 32 characters long.")
        return raw
    if not debug:
        raise ImproperlyConfigured(
            f"{name} must be set when DEBUG is off (generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)."
        )
    if keep_file.exists():
        return keep_file.read_text().strip()
    keep_file.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(50)
    keep_file.write_text(value)
    keep_file.chmod(0o600)
    return value


def proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER from `X-Forwarded-Proto: https` (or just the header name,
    meaning the value `https`); unset means no proxy tells kfadmin about HTTPS."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    header, _sep, value = raw.partition(":")
    header, value = header.strip(), (value.strip() or "https")
    if not header or not all(ch.isalnum() or ch == "-" for ch in header):
        raise ImproperlyConfigured(
            f"{name} must be a header name and value such as 'X-Forwarded-Proto: https', not {raw!r}."
        )
    return "HTTP_" + header.upper().replace("-", "_"), value


def field_encryption_keys(name: str, *, debug: bool, keep_file: Path) -> list[str]:
    """The keys that encrypt secrets in the database, newest first.

    Required when DEBUG is off: deriving them from SECRET_KEY would let a database dump
    plus SECRET_KEY reveal every AppSecret, and rotating SECRET_KEY would make them
    unreadable. In development one is generated once and kept locally.
    """
    keys = env_list(name, [])
    if keys:
        short = [index + 1 for index, key in enumerate(keys) if len(key) < 32]
        if short:
            raise ImproperlyConfigured(
                f"Each key in {name} must be at least 32 characters long (key {short[0]} is shorter)."
            )
        return keys
    if not debug:
        raise ImproperlyConfigured(
            f"{name} must be set when DEBUG is off: it encrypts the AppSecrets and tokens in the "
            "database (generate one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    if keep_file.exists():
        return [keep_file.read_text().strip()]
    keep_file.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    keep_file.write_text(value)
    keep_file.chmod(0o600)
    return [value]
