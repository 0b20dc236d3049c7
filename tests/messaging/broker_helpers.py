"""A stopped broker, as the web process sees it when it enqueues a send."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from kfadmin.celery import app


def _repoint(broker_url: str | None) -> None:
    app.conf.broker_write_url = broker_url
    # The connection and producer pools are built from the URL once; start afresh.
    app._pool = None
    app.amqp._producer_pool = None


@contextmanager
def broker_unreachable() -> Iterator[None]:
    """Publishing goes to a closed port (connection refused) until the block ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    saved = app.conf.broker_write_url
    _repoint(closed)
    try:
        yield
    finally:
        _repoint(saved)
