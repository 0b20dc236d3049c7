"""What the conversation says about a send's outcome: unknown, not delivered, waiting
for the worker (the broker down), and the "Send again" button with its confirm step."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from messaging.delivery import LOST_IN_FLIGHT, NOT_DELIVERED, OUTCOME_UNKNOWN
from messaging.models import OutboundMessage
from messaging.services import ENQUEUE_FAILED, outbound_queue
from tests.factories import agent_user, auditor, outsider
from tests.messaging.broker_helpers import broker_unreachable
from tests.sessions_app.test_views_support import (
    emulated_agent,
    htmx,
    served_customer,
    triggered,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def alice(account, emulator):
    return emulated_agent(account, emulator, "alice", nick="Alice")


@pytest.fixture
def session(account, alice, emulator):
    return served_customer(account, alice, emulator, text="我的快递到哪了？")


def url(name, *args):
    return reverse(f"messaging:{name}", args=args)


def message(session, agent, *, status: str, error: str = "", text: str = "您好") -> OutboundMessage:
    return OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=agent, msgtype="text",
        payload={"content": text}, status=status, error=error, attempts=1,
    )


def item(body: str, outbound: OutboundMessage) -> str:
    start = body.index(f'id="o{outbound.pk}"')
    return body[start:body.index("</li>", start)]


# ------------------------------------------------------------------ what the page says


@pytest.mark.parametrize("error", [OUTCOME_UNKNOWN, LOST_IN_FLIGHT])
def test_an_unknown_outcome_is_shown_as_such_without_send_again(boss_client, session, alice, error):
    outbound = message(session, alice, status="unknown", error=error)

    shown = item(boss_client.get(url("conversation", session.customer.openid)).content.decode(), outbound)

    assert "outcome unknown" in shown and "check WeChat&#x27;s history" in shown
    assert "Send again" not in shown
    assert "hx-trigger" not in shown  # settled by the history sync, not by polling


def test_a_message_not_delivered_offers_send_again_with_a_confirm(boss_client, session, alice):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)

    shown = item(boss_client.get(url("conversation", session.customer.openid)).content.decode(), outbound)

    assert "failed" in shown and "it was not delivered" in shown
    assert f'action="{url("resend", outbound.pk)}"' in shown
    assert 'hx-confirm="Send this message again, as a new message?"' in shown


def test_the_page_says_a_message_waits_for_the_worker(boss_client, session, alice):
    outbound = message(session, alice, status="queued", error=ENQUEUE_FAILED)
    OutboundMessage.objects.filter(pk=outbound.pk).update(attempts=0)

    shown = item(boss_client.get(url("conversation", session.customer.openid)).content.decode(), outbound)

    assert "will be sent when the worker is back" in shown and "Will retry" not in shown


# ------------------------------------------------------------------ send again


def test_send_again_without_js_first_asks_to_confirm(boss_client, session, alice):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)

    response = boss_client.post(url("resend", outbound.pk))

    assert response.status_code == 200
    shown = item(response.content.decode(), outbound)
    assert "Send this message again, as a new message?" in shown and 'name="confirm" value="1"' in shown
    assert OutboundMessage.objects.count() == 1


def test_send_again_confirmed_queues_a_new_message_and_leads_to_it(
    boss_client, session, alice, django_capture_on_commit_callbacks
):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)

    with django_capture_on_commit_callbacks(execute=False):
        response = boss_client.post(url("resend", outbound.pk), {"confirm": "1"})

    again = OutboundMessage.objects.get(resend_of=outbound)
    assert (again.status, again.payload) == ("queued", {"content": "您好"})
    assert response.status_code == 302
    assert response["Location"] == f"{url('conversation', session.customer.openid)}#o{again.pk}"
    assert AuditEvent.objects.filter(action="message_resend", params__resend_of=outbound.pk).count() == 1


def test_send_again_with_htmx_refreshes_the_message_and_the_timeline(
    boss_client, session, alice, django_capture_on_commit_callbacks
):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)

    with django_capture_on_commit_callbacks(execute=False):
        response = boss_client.post(url("resend", outbound.pk), {"confirm": "1"}, **htmx(f"o{outbound.pk}"))

    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith(f'<li class="msg from-agent outbound status-failed" id="o{outbound.pk}"')
    assert "timelineChanged" in triggered(response)
    assert OutboundMessage.objects.filter(resend_of=outbound).count() == 1


def test_sending_again_twice_is_refused_with_the_reason(boss_client, session, alice, django_capture_on_commit_callbacks):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)
    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(url("resend", outbound.pk), {"confirm": "1"})

    response = boss_client.post(url("resend", outbound.pk), {"confirm": "1"}, **htmx(f"o{outbound.pk}"))

    assert "already been sent again" in response.content.decode()
    assert "timelineChanged" not in triggered(response)
    assert OutboundMessage.objects.filter(resend_of=outbound).count() == 1


def test_a_message_that_did_not_fail_cannot_be_sent_again(boss_client, session, alice):
    outbound = message(session, alice, status="unknown", error=OUTCOME_UNKNOWN)

    response = boss_client.post(url("resend", outbound.pk), {"confirm": "1"}, follow=True)

    assert "Only a message that failed can be sent again." in response.content.decode()
    assert not OutboundMessage.objects.filter(resend_of=outbound).exists()


def test_send_again_needs_a_login(client, session, alice):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)
    response = client.post(url("resend", outbound.pk), {"confirm": "1"})
    assert response.status_code == 302 and "login" in response["Location"]
    assert not OutboundMessage.objects.filter(resend_of=outbound).exists()


def test_an_auditor_cannot_send_again(client, account, session, alice):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)
    client.force_login(auditor(account))
    assert client.post(url("resend", outbound.pk), {"confirm": "1"}).status_code == 403
    assert not OutboundMessage.objects.filter(resend_of=outbound).exists()


def test_an_agent_sends_again_only_their_own_messages(client, account, emulator, session, alice, django_capture_on_commit_callbacks):
    carol = emulated_agent(account, emulator, "carol")
    theirs = message(session, carol, status="failed", error=NOT_DELIVERED)
    own = message(session, alice, status="failed", error=NOT_DELIVERED)
    client.force_login(agent_user(account, agent=alice))

    assert client.post(url("resend", theirs.pk), {"confirm": "1"}).status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url("resend", own.pk), {"confirm": "1"}).status_code == 302
    assert list(OutboundMessage.objects.filter(resend_of__isnull=False).values_list("resend_of", flat=True)) == [own.pk]


def test_send_again_on_another_accounts_message_is_not_found(client, session, alice):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)
    client.force_login(outsider())
    assert client.post(url("resend", outbound.pk), {"confirm": "1"}).status_code == 404


def test_send_again_accepts_only_post(boss_client, session, alice):
    outbound = message(session, alice, status="failed", error=NOT_DELIVERED)
    assert boss_client.get(url("resend", outbound.pk)).status_code == 405


# ------------------------------------------------------------------ the broker down


@pytest.fixture
def broker_down():
    with broker_unreachable():
        yield


@pytest.mark.django_db(transaction=True)  # on-commit callbacks run as in production
def test_a_send_while_the_broker_is_down_answers_normally_and_keeps_the_message(boss_client, session, alice, broker_down):
    response = boss_client.post(
        url("send", session.customer.openid), {"msgtype": "text", "as_agent": alice.pk, "content": "您好"}, follow=True
    )

    assert response.status_code == 200
    body = response.content.decode()
    assert "The message is saved and will be sent when the worker is back." in body
    outbound = OutboundMessage.objects.get()
    assert (outbound.status, outbound.attempts, outbound.awaits_worker) == ("queued", 0, True)
    assert "will be sent when the worker is back" in item(body, outbound)


@pytest.mark.django_db(transaction=True)
def test_an_htmx_send_while_the_broker_is_down_says_so_out_of_band(boss_client, session, alice, broker_down):
    response = boss_client.post(
        url("send", session.customer.openid), {"msgtype": "text", "as_agent": alice.pk, "content": "您好"},
        **htmx("composer"),
    )

    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="composer"')
    assert 'id="messages"' in body and 'hx-swap-oob="true"' in body
    assert "will be sent when the worker is back" in body
    assert "timelineChanged" in triggered(response)


@pytest.mark.django_db(transaction=True)
def test_queueing_while_the_broker_is_down_notes_it_on_the_message(account, session, alice, boss, broker_down):
    outbound = outbound_queue(
        account=account, customer=session.customer, agent=alice, msgtype="text", payload={"content": "x"}, actor=boss
    )

    outbound.refresh_from_db()
    assert (outbound.status, outbound.error) == ("queued", ENQUEUE_FAILED)
