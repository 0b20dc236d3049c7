"""Celery beat that can start on a fresh deployment and cannot die quietly.

Beat keeps its schedule in a file (`CELERY_BEAT_SCHEDULE_FILENAME`, `var/` by default).
Celery opens it without creating its folder, takes the failure for a corrupted file
and gives up; embedded in a worker (`worker --beat`), the beat thread then ends while
the worker stays up, "ready", and no sync ever runs again. So the scheduler creates the
folder first, and a worker step watches the beat thread: when it has ended without the
worker shutting down, the worker logs why and exits with status 1, for the process
manager (`make run`, systemd, Kubernetes) to report or restart.
"""

from __future__ import annotations

import logging
from pathlib import Path

from celery import beat, bootsteps
from celery.platforms import EX_FAILURE
from celery.worker import state

logger = logging.getLogger(__name__)

# Seconds between two looks at the embedded beat thread.
WATCH_SECONDS = 2.0


class PersistentScheduler(beat.PersistentScheduler):
    def setup_schedule(self) -> None:
        try:
            Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            logger.error("Celery beat cannot keep its schedule in %s: %s", self.schedule_filename, exc)
            raise
        super().setup_schedule()


class BeatWatch(bootsteps.StartStopStep):
    """Stops the worker with status 1 when its embedded beat has died."""

    label = "Beat watch"
    requires = ("celery.worker.components:Beat", "celery.worker.components:Timer")

    def __init__(self, w, **kwargs) -> None:
        super().__init__(w, **kwargs)
        self.timer_ref = None

    def start(self, w) -> None:
        if w.beat is not None:
            self.timer_ref = w.timer.call_repeatedly(WATCH_SECONDS, self.check, (w,))

    def stop(self, w) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None

    def check(self, w) -> None:
        service = w.beat.service
        if w.beat.is_alive() or service._is_shutdown.is_set() or state.should_stop is not None:
            return
        logger.critical(
            "Celery beat has stopped (its error is logged above), so no sync would run: "
            "the worker stops with status 1."
        )
        state.should_stop = EX_FAILURE
