"""What several browser tests share: English pages, a real Celery worker on the
test broker, and the mark for tests that need one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.db import connections

from kfadmin.celery import app

NEEDS_BROKER = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://")),
    reason="needs a real broker: set CELERY_BROKER_URL=redis://…",
)


def english(page, live_server) -> None:
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_server.url}])


@contextmanager
def worker_running(queue: str, *, purge: bool = False) -> Iterator[None]:
    """A real Celery worker (a thread, one task at a time) on `queue` for the block;
    `purge` first drops what earlier tests left there."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        channel.queue_declare(queue=queue, durable=True, auto_delete=False)
        if purge:
            channel.queue_purge(queue)
    try:
        with start_worker(app, pool="solo", concurrency=1, queues=[queue], perform_ping_check=False, loglevel="WARNING"):
            yield
    finally:
        connections.close_all()


def pushing_account(emulator, live_server, **fields):
    """An official account wired to the emulator, whose message push reaches the
    live server's callback URL (as WeChat's does once the URL is set)."""
    from tests.sessions_app.test_views_support import wired_account

    account = wired_account(
        emulator, name="小鹿杂货铺", original_id=emulator.original_id,
        callback_token=emulator.callback_token, encoding_aes_key=emulator.encoding_aes_key, **fields,
    )
    emulator.control("set_callback", appid=emulator.appid, url=f"{live_server.url}/wechat/callback/{emulator.appid}/")
    return account


# Listening for the DOM event catches every violation, also those Chromium does not
# print to the console; the console is collected as well.
_RECORD_VIOLATIONS = """
window.__csp = window.__csp || [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber} ${e.sample}`);
});
"""


def csp_recorder(page):
    """Records Content-Security-Policy violations from now on; call the returned
    function for those of the current document and every console complaint."""
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.add_init_script(_RECORD_VIOLATIONS)

    def found() -> list[str]:
        return page.evaluate("window.__csp || []") + console

    return found
