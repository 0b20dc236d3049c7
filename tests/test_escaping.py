"""Chat text is data, never markup: hostile customer messages show as text on every
page that displays them (queue, conversation, history with highlight, transcript)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.sessions_app.test_views_support import (
    archive,
    emulated_agent,
    htmx,
    served_customer,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
SCRIPT_SHOWN = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG_SHOWN = "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


def assert_shown_as_text(body: str) -> None:
    assert SCRIPT not in body and "<img src=x" not in body
    assert SCRIPT_SHOWN in body and IMG_SHOWN in body


@pytest.fixture
def hostile(account, emulator):
    """A waiting customer and a served one, both of whom wrote hostile text."""
    alice = emulated_agent(account, emulator, "alice")
    waiting = waiting_customer(account, emulator, text=SCRIPT)
    archive(account, waiting.openid, IMG)
    served = served_customer(account, alice, emulator, text=IMG)
    archive(account, served.customer.openid, SCRIPT, opercode=2003, worker=alice.kf_account)
    return waiting, served


def test_the_queue_shows_hostile_messages_as_text(boss_client, hostile):
    page = boss_client.get(reverse("sessions_app:queue")).content.decode()
    assert SCRIPT not in page and "<img src=x" not in page
    assert IMG_SHOWN in page  # the waiting customer's last message
    assert IMG_SHOWN in boss_client.get(reverse("sessions_app:queue"), **htmx("queue-waiting")).content.decode()
    assert SCRIPT_SHOWN in boss_client.get(reverse("sessions_app:queue"), **htmx("open-sessions")).content.decode()


def test_the_conversation_shows_hostile_messages_as_text(boss_client, hostile):
    _, served = hostile
    url = reverse("messaging:conversation", args=[served.customer.openid])
    assert_shown_as_text(boss_client.get(url).content.decode())
    assert_shown_as_text(boss_client.get(url, **htmx("timeline")).content.decode())


def test_a_hostile_message_we_sent_shows_as_text_with_its_status(boss_client, hostile):
    from messaging.models import OutboundMessage

    _, served = hostile
    outbound = OutboundMessage.objects.create(
        official_account=served.official_account, customer=served.customer, agent=served.agent,
        msgtype="text", payload={"content": SCRIPT + IMG}, status="failed", error=IMG,
    )
    body = boss_client.get(reverse("messaging:outbound", args=[outbound.pk]), **htmx()).content.decode()
    assert_shown_as_text(body)


def test_history_shows_hostile_messages_as_text_even_when_highlighted(boss_client, hostile):
    history = reverse("messaging:history")
    assert_shown_as_text(boss_client.get(history).content.decode())
    highlighted = boss_client.get(history, {"q": "alert"}).content.decode()
    assert "&lt;script&gt;<mark>alert</mark>(1)&lt;/script&gt;" in highlighted
    assert "&quot;&gt;&lt;img src=x onerror=<mark>alert</mark>(1)&gt;" in highlighted
    assert SCRIPT not in highlighted and "<img src=x" not in highlighted
    # Searching for markup itself matches the text and still escapes it.
    tags = boss_client.get(history, {"q": "<script>"}, **htmx("history-results")).content.decode()
    assert "<mark>&lt;script&gt;</mark>alert(1)&lt;/script&gt;" in tags


def test_the_transcript_shows_hostile_messages_as_text(boss_client, hostile):
    _, served = hostile
    body = boss_client.get(reverse("messaging:transcript", args=[served.customer.openid])).content.decode()
    assert_shown_as_text(body)
