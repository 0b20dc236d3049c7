"""`manage.py check --deploy` is clean with the production environment docs/deployment.md gives."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def documented_environment() -> dict[str, str]:
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    block = re.search(r"## The environment.*?```sh\n(.*?)```", text, re.S).group(1)
    env = {}
    for line in block.splitlines():
        name, _sep, value = line.partition("=")
        env[name] = re.sub(r"<[^>]*>", lambda _m: secrets.token_urlsafe(50), value)
    return env


def clean_environment() -> dict[str, str]:
    """This process's environment without what the test run itself set (the browser
    tests' DJANGO_ALLOW_ASYNC_UNSAFE, the test database and broker)."""
    dropped = ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def test_the_documented_production_environment_passes_the_deploy_check():
    env = documented_environment()
    assert env["DEBUG"] == "false" and "SECURE_COOKIES" not in env
    clean = clean_environment()

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_without_the_https_settings_the_deploy_check_warns():
    env = documented_environment()
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"):
        env.pop(name)
    clean = clean_environment()

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )

    assert "security.W004" in result.stderr + result.stdout
    assert "security.W008" in result.stderr + result.stdout
