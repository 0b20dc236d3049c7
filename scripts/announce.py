"""Prints where kfadmin answers and the demo login once the web server is up, then waits.

It stays alive because honcho stops every process when one of them exits.
"""

import signal
import sys
import time
import urllib.request
from pathlib import Path

URL = "http://127.0.0.1:8000"
LOGIN_FILE = Path(__file__).resolve().parent.parent / ".local" / "demo_login"

for _ in range(600):
    try:
        with urllib.request.urlopen(f"{URL}/healthz", timeout=2) as response:
            if response.status == 200:
                break
    except OSError:
        time.sleep(0.5)
else:
    print(f"kfadmin did not answer at {URL} within 5 minutes; see the web log above.")
    sys.exit(1)

login = LOGIN_FILE.read_text().strip() if LOGIN_FILE.exists() else "(run `manage.py demo_setup`)"
bar = "=" * 64
print(f"\n{bar}\n  kfadmin is running: {URL}\n  demo login: {login}\n  stop everything with Ctrl-C\n{bar}\n", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    signal.pause()
