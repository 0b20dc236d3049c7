"""`make run` (scripts/run.py): when one process ends on its own, every other one is
stopped and a sentence names the one that ended, its status and its last lines."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = [sys.executable, str(ROOT / "scripts" / "run.py")]


def procfile(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "Procfile"
    path.write_text(lines)
    return path


def test_a_process_that_ends_stops_the_others_and_is_named_with_its_status_and_last_lines(tmp_path):
    crash = "import sys; print('reading the broker'); sys.exit('JSONDecodeError: Expecting value')"
    path = procfile(tmp_path, f'web: sleep 300\nworker: {sys.executable} -c "{crash}"\n')
    result = subprocess.run([*RUN, "-f", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "sending SIGTERM to web.1" in result.stdout
    assert "kfadmin stopped: the Celery worker (worker.1) exited with status 1" in result.stderr
    last_lines = result.stderr.split("Its last lines:", 1)[1]
    assert "reading the broker" in last_lines and "JSONDecodeError: Expecting value" in last_lines


def test_a_process_killed_by_a_signal_is_named_with_the_signal(tmp_path):
    path = procfile(tmp_path, "emulator: sleep 300\nweb: kill -9 $$\n")
    result = subprocess.run([*RUN, "-f", str(path)], capture_output=True, text=True, timeout=120)
    assert "kfadmin stopped: the web server (web.1) was killed by SIGKILL" in result.stderr
    assert result.returncode == 1


def test_a_command_the_shell_reports_as_killed_is_named_with_the_signal(tmp_path):
    path = procfile(tmp_path, "emulator: sleep 300\nworker: sh -c 'kill -9 $$'; exit $?\n")
    result = subprocess.run([*RUN, "-f", str(path)], capture_output=True, text=True, timeout=120)
    assert "the Celery worker (worker.1) exited with status 137 (killed by SIGKILL)" in result.stderr
    assert result.returncode == 137


def test_ctrl_c_stops_everything_without_blaming_a_process(tmp_path):
    path = procfile(tmp_path, "web: sleep 300\nworker: sleep 300\n")
    run = subprocess.Popen([*RUN, "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "worker.1 started" in _read_until(run, "worker.1 started")
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130
    assert "kfadmin stopped:" not in stderr


def test_ctrl_c_while_processes_are_still_starting_stops_them_all(tmp_path):
    # Before a process has reported its pid, honcho's own terminate fails on it.
    path = procfile(tmp_path, "".join(f"p{i}: sleep 300\n" for i in range(8)))
    run = subprocess.Popen([*RUN, "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _read_until(run, "started")
    run.send_signal(signal.SIGINT)
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 130
    assert "kfadmin stopped:" not in stderr


def _read_until(run: subprocess.Popen, text: str) -> str:
    seen = ""
    deadline = time.monotonic() + 120
    while text not in seen and time.monotonic() < deadline:
        seen += run.stdout.readline()
    return seen


def test_a_process_that_dies_leaving_children_behind_is_noticed_and_its_children_stopped(tmp_path):
    # The command exits while a child it started keeps its output open, as a killed
    # Celery worker leaves its beat and pool processes behind.
    orphan = tmp_path / "orphan.pid"
    path = procfile(tmp_path, f"web: sleep 300\nworker: sleep 300 & echo $! > {orphan}; exit 9\n")
    result = subprocess.run([*RUN, "-f", str(path)], capture_output=True, text=True, timeout=120)
    assert "kfadmin stopped: the Celery worker (worker.1) exited with status 9" in result.stderr
    assert result.returncode == 9
    pid = int(orphan.read_text())
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
