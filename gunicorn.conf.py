"""gunicorn's configuration for kfadmin: `gunicorn -c gunicorn.conf.py` (gunicorn also
reads this file by itself when started from this folder).

Sized for pages that poll small fragments all day and for downloads that take
minutes (a prepared export read by a slow client). Every value can be overridden on
the command line or in GUNICORN_CMD_ARGS; WEB_CONCURRENCY sets the number of workers.
"""

from __future__ import annotations

import os

wsgi_app = "kfadmin.wsgi:application"

# Threaded workers: a request waiting on a slow client (a download, a long poll)
# holds one thread, not a whole process, and the worker's main loop keeps telling
# the master it is alive. With the default sync workers, `timeout` is a limit on each
# request: a 100,000-row export read at 256 kB/s was cut at 30 s, the file truncated
# without an error.
worker_class = "gthread"
# One process per core (Python runs one thread at a time per process), at least 2 so
# a restarting worker never leaves nobody to answer.
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, os.cpu_count() or 1)))
# Requests a worker serves at once: most wait on PostgreSQL, Redis or the client.
threads = int(os.environ.get("WEB_THREADS", 8))
# With gthread this is how long the master waits for a silent worker (stuck, not
# slow) before killing it; no request, however long, is cut by it.
timeout = 30
graceful_timeout = 30
# Seconds an idle keep-alive connection is kept (behind a proxy that reuses them).
keepalive = 5

# Load Django (and warm it: kfadmin/warmup.py) once in the master, so each worker,
# forked at start or after a crash, answers its first request as fast as its
# hundredth instead of importing views and compiling templates meanwhile.
preload_app = True

# The access log leaves out query strings: WeChat signs its pushes in the query
# string (signature, timestamp, nonce, msg_signature), and a log line is no place for
# them. %(U)s is the path alone; never %(r)s (the request line) or %(q)s.
accesslog = "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)s "%(a)s"'
errorlog = "-"


def when_ready(server) -> None:  # noqa: ANN001  (gunicorn's Arbiter)
    """The master is up with the app loaded (preload_app): warm Django before forking."""
    if server.cfg.preload_app:
        from kfadmin.warmup import warm

        server.log.info("Django warmed in the master in %.2f s", warm())


def post_worker_init(worker) -> None:  # noqa: ANN001  (gunicorn's Worker)
    """Without preload_app each worker loads Django itself: warm it before it serves."""
    if not worker.cfg.preload_app:
        from kfadmin.warmup import warm

        worker.log.info("Django warmed in worker %s in %.2f s", worker.pid, warm())
