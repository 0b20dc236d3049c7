"""gunicorn.conf.py: it loads, it is sized for slow downloads, and its access log never
holds a query string (WeChat signs its pushes there)."""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from gunicorn.config import Config

from tests.test_deploy import clean_environment

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "gunicorn.conf.py"
GUNICORN = Path(sys.executable).with_name("gunicorn")


def loaded_config() -> Config:
    """The file read as gunicorn reads it: each module-level name that is a setting."""
    cfg = Config()
    for name, value in runpy.run_path(str(CONFIG)).items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_gunicorn_accepts_the_configuration():
    result = subprocess.run(
        [str(GUNICORN), "--check-config", "-c", str(CONFIG)],
        cwd=ROOT, env=clean_environment(), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configuration_serves_slow_downloads_and_starts_warm():
    cfg = loaded_config()
    assert cfg.worker_class_str == "gthread" and cfg.threads >= 4
    assert cfg.preload_app
    assert cfg.wsgi_app == "kfadmin.wsgi:application"
    assert cfg.workers >= 2


@pytest.mark.parametrize("atom", ["%(r)s", "%(q)s", "%({raw_uri}e)s", "%({query_string}e)s"])
def test_the_access_log_format_has_no_query_string(atom):
    fmt = loaded_config().access_log_format
    assert atom not in fmt
    assert "%(U)s" in fmt


def test_a_request_with_a_signed_query_string_is_logged_without_it(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "access.log"
    env = {**clean_environment(), "WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    server = subprocess.Popen(
        [str(GUNICORN), "-c", str(CONFIG), "--bind", f"127.0.0.1:{port}", "--access-logfile", str(log)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/login/?signature=0123456789abcdef&timestamp=1700000000&nonce=424242"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    assert response.status == 200
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        deadline = time.monotonic() + 10
        while "/login/" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    line = log.read_text()
    assert '"GET /login/ HTTP/1.1" 200' in line
    for secret in ("signature", "0123456789abcdef", "1700000000", "nonce", "?"):
        assert secret not in line
    # The master warmed Django before forking the worker.
    assert "Django warmed in the master" in errors


def test_the_readme_starts_gunicorn_with_this_configuration():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "gunicorn -c gunicorn.conf.py" in readme
    assert os.path.exists(CONFIG)
