"""A send goes out once and its state is honest: retried only when the failure proves
WeChat never took it, otherwise "unknown" until WeChat's history settles it; the
outbox sweep; "Send again". Against the emulator's faults, on PostgreSQL."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, OfficialAccount
from kfadmin.wechat import WeChatRequestNotSent
from messaging import delivery, services
from messaging.delivery import NOT_DELIVERED, outbound_deliver, outbound_unknown_settle
from messaging.models import MessageRecord, OutboundMessage
from messaging.services import SendAgainRefused, outbound_queue, outbound_resend, outbound_sweep
from messaging.sync import history_sync
from sessions_app.models import Customer
from tests.sessions_app.test_views_support import emulated_agent, waiting_customer, wired_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def alice(account, emulator):
    return emulated_agent(account, emulator, "alice")


@pytest.fixture
def customer(account, emulator):
    return waiting_customer(account, emulator)


@pytest.fixture
def short_timeout(settings):
    settings.WECHAT_TIMEOUT = 1  # the emulator's slow fault below waits 2 s


def queue(django_capture_on_commit_callbacks, *, account, customer, agent, boss, text: str) -> OutboundMessage:
    with django_capture_on_commit_callbacks(execute=False):
        return outbound_queue(
            account=account, customer=customer, agent=agent, msgtype="text", payload={"content": text}, actor=boss
        )


def send_calls(emulator) -> list:
    return [c for c in emulator.calls if c.path == SEND]


def delivered(emulator, openid: str) -> list[str]:
    """What the customer received: the agent messages in WeChat's own records."""
    records = emulator.control("records", appid=emulator.appid, openid=openid, opercode=2002)["records"]
    return [r["text"] for r in records]


def budget(customer: Customer) -> int:
    return Customer.objects.get(pk=customer.pk).window_remaining


# ------------------------------------------------------------------ what is retried


def test_a_send_whose_answer_timed_out_after_wechat_took_it_is_not_sent_again(
    account, emulator, alice, customer, boss, short_timeout, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="slow", delay=2, path_prefix=SEND, next=1)
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="您的订单已发货")
    before = budget(customer)

    result = outbound_deliver(outbound_id=outbound.pk)  # no exception: nothing for the task to retry

    assert (result.status, result.attempts) == ("unknown", 1)
    assert "will check WeChat's history" in result.error
    assert outbound_deliver(outbound_id=outbound.pk) is None  # a redelivered task sends nothing
    assert len(send_calls(emulator)) == 1
    assert delivered(emulator, customer.openid) == ["您的订单已发货"]
    assert budget(customer) == before - 1  # counted as possibly used
    assert not MessageRecord.objects.filter(source="kfadmin").exists()  # not claimed as delivered
    event = AuditEvent.objects.filter(action="message_send").latest("id")
    assert (event.result, event.params["status"]) == ("error", "unknown")


@pytest.mark.parametrize(
    "fault",
    [{"kind": "drop"}, {"kind": "http", "status": 502}],
    ids=["dropped connection", "5xx"],
)
def test_a_send_without_a_usable_answer_is_unknown_not_retried(
    account, emulator, alice, customer, boss, fault, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", path_prefix=SEND, next=1, **fault)
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="hello")

    assert outbound_deliver(outbound_id=outbound.pk).status == "unknown"
    assert outbound_deliver(outbound_id=outbound.pk) is None
    assert len(send_calls(emulator)) == 1


def test_a_send_that_never_reached_wechat_goes_back_in_the_queue(
    account, alice, customer, boss, django_capture_on_commit_callbacks
):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    OfficialAccount.objects.filter(pk=account.pk).update(api_base_url=closed)
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="hello")
    before = budget(customer)

    with pytest.raises(WeChatRequestNotSent):
        outbound_deliver(outbound_id=outbound.pk)

    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == ("queued", 1)
    assert outbound.due_at > timezone.now()  # the retry's backoff, not the sweep's business yet
    assert budget(customer) == before


def test_the_send_task_retries_a_busy_wechat_until_its_retries_are_used_up_then_gives_the_message_up(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    from messaging.tasks import send_message_task

    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=SEND)  # every send, busy
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="hello")
    before = budget(customer)

    # Eagerly, each retry runs at once in place of waiting for its countdown.
    result = send_message_task.apply(args=(outbound.pk,))

    assert result.get() == "failed"
    outbound.refresh_from_db()
    assert (outbound.status, outbound.errcode) == ("failed", -1)
    assert outbound.attempts == send_message_task.max_retries + 1 == 6
    assert outbound.error.startswith("WeChat could not be reached after several attempts")
    assert len(send_calls(emulator)) == 6
    assert budget(customer) == before


# ------------------------------------------------------------------ settling unknown


def test_the_history_sync_settles_an_unknown_send_as_sent_from_wechats_copy(
    account, emulator, alice, customer, boss, short_timeout, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="slow", delay=2, path_prefix=SEND, next=1)
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="稍等，马上处理")
    outbound_deliver(outbound_id=outbound.pk)
    before = budget(customer)

    history_sync(account_id=account.pk)

    outbound.refresh_from_db()
    copy = MessageRecord.objects.get(openid=customer.openid, opercode=2002)
    assert (outbound.status, outbound.record_id, outbound.sent_at) == ("sent", copy.pk, copy.time)
    assert budget(customer) == before  # counted once, when it became unknown
    assert AuditEvent.objects.filter(action="message_send", result="ok", params__outbound_id=outbound.pk).exists()


def test_an_unknown_send_stays_unknown_until_the_history_is_stored_well_past_it(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="drop", path_prefix=SEND, next=1)  # WeChat never took it
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="hello")
    outbound_deliver(outbound_id=outbound.pk)

    history_sync(account_id=account.pk)  # stored up to now: too soon to say

    outbound.refresh_from_db()
    assert outbound.status == "unknown"
    attempted = outbound.attempted_at
    margin = delivery.SETTLE_AFTER + delivery.SETTLE_MARGIN
    assert outbound_unknown_settle(account=account, stored_until=attempted + margin - timedelta(seconds=1)) == (0, 0)
    assert outbound_unknown_settle(account=account, stored_until=attempted + margin) == (0, 1)
    outbound.refresh_from_db()
    assert (outbound.status, outbound.error, outbound.can_send_again) == ("failed", NOT_DELIVERED, True)


def test_the_history_sync_settles_an_old_unknown_send_without_a_copy_as_not_delivered(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="drop", path_prefix=SEND, next=1)
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="hello")
    outbound_deliver(outbound_id=outbound.pk)
    OutboundMessage.objects.filter(pk=outbound.pk).update(attempted_at=timezone.now() - timedelta(minutes=15))

    history_sync(account_id=account.pk)

    outbound.refresh_from_db()
    assert outbound.status == "failed"
    assert "not delivered" in outbound.error


def test_the_synced_copy_of_a_sent_message_is_not_taken_for_an_unknown_one_with_the_same_text(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    first = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                  text="ok")
    assert outbound_deliver(outbound_id=first.pk).status == "sent"
    emulator.control("add_fault", kind="drop", path_prefix=SEND, next=1)
    second = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                   text="ok")
    assert outbound_deliver(outbound_id=second.pk).status == "unknown"

    history_sync(account_id=account.pk)

    first.refresh_from_db()
    second.refresh_from_db()
    synced = MessageRecord.objects.get(openid=customer.openid, opercode=2002)
    assert synced.source == "sync"
    assert first.record_id == synced.pk  # the sent message now stands for WeChat's copy
    assert second.status == "unknown"  # its text is WeChat's copy of the first, not of it


def test_two_unknown_sends_of_the_same_text_each_take_their_own_copy(
    account, emulator, alice, customer, boss, short_timeout, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="slow", delay=2, path_prefix=SEND, next=2)
    sends = [
        queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
              text="ok")
        for _ in range(2)
    ]
    for outbound in sends:
        assert outbound_deliver(outbound_id=outbound.pk).status == "unknown"

    history_sync(account_id=account.pk)

    records = set(OutboundMessage.objects.filter(status="sent").values_list("record_id", flat=True))
    assert records == set(MessageRecord.objects.filter(openid=customer.openid, opercode=2002).values_list("pk", flat=True))
    assert len(records) == 2


# ------------------------------------------------------------------ the outbox sweep


@pytest.fixture
def enqueued(monkeypatch):
    """The ids the services hand to the broker (the real publish is tested elsewhere)."""
    from messaging.tasks import send_message_task

    ids: list[int] = []
    monkeypatch.setattr(send_message_task, "delay", ids.append)
    return ids


def test_the_sweep_enqueues_a_message_no_worker_took_once(
    account, alice, customer, boss, enqueued, django_capture_on_commit_callbacks
):
    stranded = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="lost in the broker")
    fresh = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                  text="just queued")
    OutboundMessage.objects.filter(pk=stranded.pk).update(due_at=timezone.now() - timedelta(minutes=2))

    first = outbound_sweep()
    second = outbound_sweep()

    assert first.requeued == [stranded.pk]
    assert second.requeued == []  # claimed by the first sweep
    assert enqueued == [stranded.pk]
    assert fresh.pk not in enqueued


def test_the_sweep_task_runs_the_sweep_and_reports_it(
    account, alice, customer, boss, enqueued, django_capture_on_commit_callbacks
):
    from messaging.tasks import send_outbox_sweep_task

    stranded = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="lost in the broker")
    OutboundMessage.objects.filter(pk=stranded.pk).update(due_at=timezone.now() - timedelta(minutes=2))

    assert send_outbox_sweep_task() == {"requeued": [stranded.pk], "lost": [], "more": False}
    assert enqueued == [stranded.pk]


def test_the_sweep_leaves_a_message_waiting_for_its_retry(
    account, alice, customer, boss, enqueued, django_capture_on_commit_callbacks
):
    waiting = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                    text="retry later")
    OutboundMessage.objects.filter(pk=waiting.pk).update(attempts=1, due_at=timezone.now() + timedelta(seconds=50))

    assert outbound_sweep(now=timezone.now() + timedelta(seconds=100)).requeued == []
    assert outbound_sweep(now=timezone.now() + timedelta(seconds=111)).requeued == [waiting.pk]


def test_the_sweep_marks_a_message_whose_worker_died_mid_send_unknown(
    account, alice, customer, boss, enqueued, django_capture_on_commit_callbacks
):
    lost = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                 text="hello")
    OutboundMessage.objects.filter(pk=lost.pk).update(
        status="sending", attempts=1, attempted_at=timezone.now() - timedelta(minutes=11)
    )

    result = outbound_sweep()

    lost.refresh_from_db()
    assert (result.lost, lost.status) == ([lost.pk], "unknown")
    assert enqueued == []


# ------------------------------------------------------------------ send again


def failed_message(django_capture_on_commit_callbacks, **kwargs) -> OutboundMessage:
    outbound = queue(django_capture_on_commit_callbacks, **kwargs, text="再发一次")
    OutboundMessage.objects.filter(pk=outbound.pk).update(status="failed", error=NOT_DELIVERED)
    outbound.refresh_from_db()
    return outbound


def test_send_again_queues_a_new_message_with_the_same_content_and_audits_it(
    account, alice, customer, boss, django_capture_on_commit_callbacks
):
    original = failed_message(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss)

    with django_capture_on_commit_callbacks(execute=False):
        again = outbound_resend(outbound=original, actor=boss)

    assert again.pk != original.pk
    assert (again.status, again.resend_of_id, again.payload, again.agent_id) == (
        "queued", original.pk, original.payload, alice.pk
    )
    event = AuditEvent.objects.get(action="message_resend")
    assert event.params == {"outbound_id": again.pk, "resend_of": original.pk, "msgtype": "text"}
    assert event.actor == boss


def test_a_message_is_sent_again_only_once(account, alice, customer, boss, django_capture_on_commit_callbacks):
    original = failed_message(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss)
    with django_capture_on_commit_callbacks(execute=False):
        outbound_resend(outbound=original, actor=boss)

    with pytest.raises(SendAgainRefused):
        outbound_resend(outbound=original, actor=boss)
    assert OutboundMessage.objects.filter(resend_of=original).count() == 1


@pytest.mark.parametrize("status", ["sent", "unknown", "queued"])
def test_only_a_failed_message_can_be_sent_again(account, alice, customer, boss, status, django_capture_on_commit_callbacks):
    outbound = queue(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss,
                     text="x")
    OutboundMessage.objects.filter(pk=outbound.pk).update(status=status)

    with pytest.raises(SendAgainRefused):
        outbound_resend(outbound=outbound, actor=boss)


def test_send_again_goes_through_the_budget_check(account, alice, customer, boss, django_capture_on_commit_callbacks):
    original = failed_message(django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice, boss=boss)
    Customer.objects.filter(pk=customer.pk).update(window_remaining=0)

    with pytest.raises(services.SendRefused) as refused:
        outbound_resend(outbound=original, actor=boss)

    assert refused.value.errcode == 45047
    assert not OutboundMessage.objects.filter(resend_of=original).exists()
