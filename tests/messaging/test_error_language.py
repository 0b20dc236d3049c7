"""A send's failure is stored once, in English, and shown in each viewer's language."""

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from kfadmin.wechat import explain
from messaging.delivery import outbound_deliver
from messaging.models import OutboundMessage
from tests.factories import (
    CustomerFactory,
    OfficialAccountFactory,
    OutboundMessageFactory,
    supervisor,
)

pytestmark = pytest.mark.django_db

WINDOW_CLOSED = 45015


@pytest.fixture
def closed_window_outbound():
    account = OfficialAccountFactory()
    customer = CustomerFactory(
        official_account=account, window_expires_at=timezone.now() - timezone.timedelta(hours=1), window_remaining=0
    )
    outbound = OutboundMessageFactory(
        official_account=account, customer=customer, msgtype="text", payload={"content": "hi"}
    )
    return account, outbound


def test_a_refused_delivery_is_stored_in_english_whatever_the_default_language(closed_window_outbound, settings):
    settings.LANGUAGE_CODE = "zh-hans"
    _, outbound = closed_window_outbound
    outbound_deliver(outbound_id=outbound.pk)
    outbound.refresh_from_db()
    assert outbound.status == OutboundMessage.Status.FAILED
    assert outbound.errcode == WINDOW_CLOSED
    assert outbound.error == explain(WINDOW_CLOSED)


def test_the_stored_failure_is_shown_in_chinese_to_a_chinese_reader(closed_window_outbound, client):
    account, outbound = closed_window_outbound
    outbound_deliver(outbound_id=outbound.pk)
    with translation.override("zh-hans"):
        chinese = translation.gettext(explain(WINDOW_CLOSED))
    assert chinese != explain(WINDOW_CLOSED), "the catalogue must translate the client's sentence"
    client.force_login(supervisor(account))
    client.cookies["django_language"] = "zh-hans"
    url = reverse("messaging:outbound", args=[outbound.pk])
    body = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert chinese in body
    assert explain(WINDOW_CLOSED) not in body
