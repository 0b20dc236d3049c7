"""send_message_task through the real Celery machinery: a worker thread consuming the
"send" queue on the Redis broker of CELERY_BROKER_URL, the emulator as WeChat."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.db import connections
from django.utils import timezone

from kfadmin.celery import app
from messaging.models import OutboundMessage
from messaging.services import outbound_queue, outbound_sweep
from messaging.sync import history_sync
from messaging.tasks import send_message_task
from tests.factories import supervisor
from tests.messaging.broker_helpers import broker_unreachable
from tests.sessions_app.test_views_support import emulated_agent, waiting_customer, wired_account

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.CELERY_BROKER_URL.startswith(("redis://", "amqp://")),
        reason="needs a real broker: set CELERY_BROKER_URL=redis://…",
    ),
]

SEND = "/cgi-bin/message/custom/send"
PATIENCE_SECONDS = 60  # how long to wait for the worker before declaring it stuck


class Runs:
    """Every send_message_task run the worker finished: (outbound id, returned status)."""

    def __init__(self):
        self.items: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def __call__(self, sender=None, args=None, retval=None, state=None, **kwargs):
        if getattr(sender, "name", None) == send_message_task.name and state == "SUCCESS":
            with self.lock:
                self.items.append((args[0], retval))

    def wait_for(self, count: int) -> list[tuple[int, str]]:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.items) >= count:
                    return list(self.items)
            time.sleep(0.05)
        raise AssertionError(f"the worker finished {len(self.items)} of {count} runs")


@pytest.fixture
def worker():
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("send")  # nothing left over from an earlier run
    runs = Runs()
    task_postrun.connect(runs, weak=False)
    try:
        with start_worker(
            app, pool="solo", concurrency=1, queues=["send"], perform_ping_check=False, loglevel="WARNING"
        ):
            yield runs
    finally:
        task_postrun.disconnect(runs)
        # The worker thread's database connection must not outlive the test database.
        connections.close_all()


@pytest.fixture
def setup(emulator):
    account = wired_account(emulator)
    return {
        "account": account,
        "boss": supervisor(account),
        "alice": emulated_agent(account, emulator, "alice"),
        "customer": waiting_customer(account, emulator),
    }


def queue_text(setup, content: str, customer=None) -> OutboundMessage:
    return outbound_queue(
        account=setup["account"], customer=customer or setup["customer"], agent=setup["alice"],
        msgtype="text", payload={"content": content}, actor=setup["boss"],
    )


def test_a_queued_message_is_sent_by_the_worker_once_committed(worker, setup, emulator):
    outbound = queue_text(setup, "你好，已为您查询")

    assert worker.wait_for(1) == [(outbound.pk, "sent")]
    outbound.refresh_from_db()
    assert outbound.status == OutboundMessage.Status.SENT
    assert [c.json["text"] for c in emulator.calls if c.path == SEND] == [{"content": "你好，已为您查询"}]


def test_two_deliveries_of_the_same_id_send_once(worker, setup, emulator):
    outbound = queue_text(setup, "only once")  # delivery 1, on commit
    send_message_task.delay(outbound.pk)  # delivery 2, a duplicate
    send_message_task.delay(outbound.pk)  # delivery 3

    runs = worker.wait_for(3)

    assert sorted(status for _, status in runs) == ["sent", "skipped", "skipped"]
    assert len([c for c in emulator.calls if c.path == SEND]) == 1
    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == ("sent", 1)


def test_a_busy_wechat_is_retried_by_the_worker_until_it_accepts(worker, setup, emulator):
    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=SEND, next=1)

    outbound = queue_text(setup, "retry me")

    assert worker.wait_for(1) == [(outbound.pk, "sent")]  # the retry is the run that finishes
    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == ("sent", 2)
    assert len([c for c in emulator.calls if c.path == SEND]) == 2


def test_a_refusal_from_wechat_is_not_retried(worker, setup, emulator):
    emulator.control("add_fault", kind="errcode", errcode=45047, path_prefix=SEND, next=1)

    outbound = queue_text(setup, "too many")

    assert worker.wait_for(1) == [(outbound.pk, "failed")]
    outbound.refresh_from_db()
    assert (outbound.errcode, outbound.attempts) == (45047, 1)
    assert len([c for c in emulator.calls if c.path == SEND]) == 1


def test_sends_whose_answer_times_out_after_wechat_took_them_reach_each_customer_exactly_once(
    worker, setup, emulator, settings
):
    # Every send: WeChat delivers it, and its answer comes after kfadmin stopped waiting.
    settings.WECHAT_TIMEOUT = 1
    emulator.control("add_fault", kind="slow", delay=2, path_prefix=SEND)
    customers = [setup["customer"]] + [waiting_customer(setup["account"], emulator) for _ in range(2)]
    sent = {c.openid: [f"{c.openid[-4:]} 第{i}条" for i in range(3)] for c in customers}
    outbounds = [queue_text(setup, text, customer=c) for c in customers for text in sent[c.openid]]

    runs = worker.wait_for(len(outbounds))
    assert sorted(status for _, status in runs) == ["unknown"] * len(outbounds)  # nothing retried
    history_sync(account_id=setup["account"].pk)  # WeChat's history settles them

    received = {
        c.openid: [
            r["text"]
            for r in emulator.control("records", appid=emulator.appid, openid=c.openid, opercode=2002)["records"]
        ]
        for c in customers
    }
    assert received == sent  # N sends, N messages received, no duplicate
    assert len([c for c in emulator.calls if c.path == SEND]) == len(outbounds)
    assert set(OutboundMessage.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_a_message_queued_while_the_broker_was_down_is_sent_by_the_sweep_once_it_is_back(worker, setup, emulator):
    with broker_unreachable():
        outbound = queue_text(setup, "broker was down")
    outbound.refresh_from_db()
    assert outbound.awaits_worker

    swept = outbound_sweep(now=timezone.now() + timedelta(minutes=2))

    assert swept.requeued == [outbound.pk]
    assert worker.wait_for(1) == [(outbound.pk, "sent")]
    assert [c.json["text"] for c in emulator.calls if c.path == SEND] == [{"content": "broker was down"}]
