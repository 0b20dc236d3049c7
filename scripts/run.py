"""Runs the Procfile's processes together (what `make run` starts) through honcho.

When one of them ends on its own, honcho stops the others: a web server without its
worker would look alive and send nothing. This adds the sentence honcho leaves out:
which process ended, with what status, and its last lines, so the reason is on
screen and not scrolled away among the others' output. Ctrl-C stops everything
quietly, as before.

    python scripts/run.py [-f Procfile]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections import defaultdict, deque
from pathlib import Path

from honcho import environ
from honcho.manager import KILL_WAIT, Manager
from honcho.printer import Printer
from honcho.process import Process

ROOT = Path(__file__).resolve().parent.parent
LAST_LINES = 12

# What each Procfile entry is, for the sentence; an unknown entry is named as written.
ROLES = {
    "web": "the web server",
    "worker": "the Celery worker",
    "emulator": "the WeChat emulator",
    "announce": "the start-up announcer",
}


class TailPrinter(Printer):
    """Prints like honcho and remembers the last lines of each process."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.tails: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=LAST_LINES))

    def write(self, message) -> None:
        super().write(message)
        data = message.data.decode("utf-8", "replace") if isinstance(message.data, bytes) else message.data
        self.tails[message.name or ""].extend(line for line in data.splitlines() if line.strip())


class WatchedProcess(Process):
    """honcho's process, which counts as ended when its command has exited.

    honcho waits for the end of the command's output instead: children the command
    left behind (a dead Celery worker's beat and pool processes) keep that open, so a
    dead worker went unnoticed while its beat went on queueing. Here the command's exit
    is reported at once and what it left behind in its process group is stopped.
    """

    def run(self, events=None, ignore_signals=False) -> None:
        self._events = events
        self._child = self._child_ctor(self.cmd, env=self.env, cwd=self.cwd)
        self._send_message({"pid": self._child.pid}, type="start")
        if ignore_signals:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        reader = threading.Thread(target=self._forward_output, daemon=True)
        reader.start()
        self._child.wait()
        reader.join(timeout=1)  # the last lines, usually the reason
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not reader.is_alive():
                break
            try:
                os.killpg(self._child.pid, sig)
            except OSError:
                break
            reader.join(timeout=KILL_WAIT)
        self._send_message({"returncode": self._child.returncode}, type="stop")

    def _forward_output(self) -> None:
        for line in iter(self._child.stdout.readline, b""):
            if not self.quiet:
                self._send_message(line)
        self._child.stdout.close()


class Supervisor(Manager):
    """honcho's manager, noting which process ended first on its own."""

    def __init__(self, printer: TailPrinter) -> None:
        super().__init__(printer=printer)
        self._process_ctor = WatchedProcess
        self.tails = printer.tails
        self.first_to_end: tuple[str, int] | None = None

    def terminate(self) -> None:
        # The loop calls this the moment it sees a process stop; a signal (Ctrl-C)
        # calls it before any process has stopped.
        if not self._terminating and self.returncode not in (130, 143):
            for name, process in self._processes.items():
                if process.get("returncode") is not None:
                    self.first_to_end = (name, process["returncode"])
                    break
        super().terminate()

    def _killall(self, force: bool = False) -> None:
        # A Ctrl-C during start-up can come before a process has reported its pid;
        # honcho would fail on it. It is skipped here, and the loop's forced kill
        # (KILL_WAIT seconds later) stops it once its pid is known.
        started = {name: p for name, p in self._processes.items() if p.get("pid") is not None}
        self._processes, everyone = started, self._processes
        try:
            super()._killall(force=force)
        finally:
            self._processes = everyone


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    if returncode == 0:
        return "exited with status 0 although it should run until stopped"
    if returncode > 128:
        # The Procfile's shell reports a command killed by signal n as 128 + n.
        try:
            return f"exited with status {returncode} (killed by {signal.Signals(returncode - 128).name})"
        except ValueError:
            pass
    return f"exited with status {returncode}"


def stopped_sentence(name: str, returncode: int, tail: list[str]) -> str:
    role = ROLES.get(name.rsplit(".", 1)[0])
    who = f"{role} ({name})" if role else name
    lines = "\n".join(f"    {line}" for line in tail) or "    (it printed nothing)"
    return (
        f"\nkfadmin stopped: {who} {describe_status(returncode)}, so the other processes were "
        f"stopped with it rather than left running without it.\nIts last lines:\n{lines}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--procfile", default=str(ROOT / "Procfile"))
    args = parser.parse_args()
    procfile = environ.parse_procfile(Path(args.procfile).read_text()).processes
    dotenv = ROOT / ".env"
    app_env = environ.parse(dotenv.read_text()) if dotenv.exists() else {}

    printer = TailPrinter(sys.stdout, colour=sys.stdout.isatty())
    supervisor = Supervisor(printer)
    for process in environ.expand_processes(procfile, env=app_env):
        supervisor.add_process(process.name, process.cmd, env={**os.environ, **process.env}, cwd=str(ROOT))
    supervisor.loop()

    if supervisor.first_to_end is None:
        return supervisor.returncode or 0
    name, returncode = supervisor.first_to_end
    print(stopped_sentence(name, returncode, list(supervisor.tails[name])), file=sys.stderr, flush=True)
    return returncode if returncode > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
