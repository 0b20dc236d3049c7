"""``python -m kfadmin.emulator`` runs as its own process."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import requests

from kfadmin.emulator import DEMO_APPID, DEMO_SECRET

from .util import TIMEOUT

REPO = Path(__file__).resolve().parents[2]


def test_the_module_serves_the_demo_as_a_separate_process():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kfadmin.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--seed",
            "demo",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base_url = None
        deadline = time.monotonic() + 30
        assert process.stdout is not None
        while base_url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                base_url = match.group(1)
        assert base_url, "the emulator did not report its address"
        token = requests.get(
            f"{base_url}/cgi-bin/token",
            params={"grant_type": "client_credential", "appid": DEMO_APPID, "secret": DEMO_SECRET},
            timeout=TIMEOUT,
        ).json()["access_token"]
        waiting = requests.get(
            f"{base_url}/customservice/kfsession/getwaitcase",
            params={"access_token": token},
            timeout=TIMEOUT,
        ).json()
        assert waiting["count"] == 8
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
