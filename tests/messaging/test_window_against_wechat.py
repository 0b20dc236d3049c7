"""kfadmin's reply window against WeChat's (the emulator's, which keeps a message's grant
and an event's apart): kfadmin lets a send through when WeChat takes it, and refuses
it before calling WeChat with the code WeChat answers (45015 no grant running, 45047
grants running but used up).

The customer's message and click reach kfadmin as WeChat pushes them (the emulator's
signed push, handed to kfadmin's receiver); the sends go through kfadmin's queue and
worker to the emulator. WeChat's clock and kfadmin's move forward together.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from accounts.clients import wechat_client_for
from kfadmin.wechat import WeChatError
from messaging.delivery import outbound_deliver
from messaging.models import OutboundMessage
from messaging.services import SendRefused, outbound_queue, send_refusal
from sessions_app.models import Customer
from sessions_app.selectors import customer_window_state

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def account(kf_account_row):
    return kf_account_row


@pytest.fixture
def clocks(emulator, monkeypatch):
    """`advance(seconds)` moves WeChat's clock (the emulator's) and kfadmin's
    (`django.utils.timezone.now`, which every service reads) forward together."""
    offset = timedelta()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)

    def advance(seconds: int) -> None:
        nonlocal offset
        offset += timedelta(seconds=seconds)
        emulator.state.advance(seconds)

    return advance


@pytest.fixture
def pushes(emulator, kf_account_row, monkeypatch):
    """WeChat's pushes, kept as the emulator signs them, for `deliver()` to hand to
    kfadmin's receiver in this test's thread (and database transaction)."""
    emulator.control("set_callback", url=f"http://kfadmin.test/wechat/callback/{kf_account_row.appid}/")
    kept = []
    monkeypatch.setattr(emulator.state._sender, "submit", kept.append)
    client = Client(enforce_csrf_checks=True)

    def deliver() -> None:
        while kept:
            push = kept.pop(0)
            url = urlsplit(push.url)
            response = client.post(f"{url.path}?{url.query}", data=push.body, content_type="text/xml")
            assert response.status_code == 200, response.content

    return deliver


def wechat_grants(emulator, openid: str) -> dict:
    view = emulator.state.customer(appid=emulator.appid, openid=openid)
    return {kind: (view[f"{kind}_grant"] or {}).get("remaining") for kind in ("message", "event")}


def send(account, customer, boss, django_capture_on_commit_callbacks) -> OutboundMessage:
    """One text through kfadmin's queue and worker; SendRefused if kfadmin refuses it."""
    customer.refresh_from_db()  # as the page that sends reads it
    with django_capture_on_commit_callbacks(execute=False):
        outbound = outbound_queue(
            account=account, customer=customer, agent=None, msgtype="text", payload={"content": "您好"}, actor=boss
        )
    return outbound_deliver(outbound_id=outbound.pk)


def wechat_answer(account, openid: str) -> int:
    """What WeChat answers one more message now (0: taken), asked straight, not through
    kfadmin. Only asked where kfadmin refused, so a send WeChat took would show here."""
    try:
        wechat_client_for(account).send_message(openid, "text", {"content": "试一下"})
    except WeChatError as error:
        return error.errcode
    return 0


def test_after_the_message_sends_a_click_gives_three_sends_for_one_minute_not_47_hours(
    emulator, account, pushes, clocks, boss, django_capture_on_commit_callbacks
):
    openid = emulator.state.customer_writes(appid=emulator.appid, text="在吗？", queue=False)["openid"]
    pushes()
    customer = Customer.objects.get(official_account=account, openid=openid)

    for _ in range(5):
        assert send(account, customer, boss, django_capture_on_commit_callbacks).status == "sent"
    assert wechat_grants(emulator, openid) == {"message": 0, "event": None}
    customer.refresh_from_db()
    assert send_refusal(customer=customer).errcode == 45047

    clocks(5)  # the customer clicks a menu a little later
    emulator.state.customer_event(appid=emulator.appid, openid=openid, event="menu_click")
    pushes()
    customer.refresh_from_db()
    window = customer_window_state(customer=customer)
    assert (window.is_open, window.remaining, window.grant) == (True, 3, "event")
    assert window.usable_grants[0].seconds_left <= 60  # the message grant runs on, used up

    sixth = send(account, customer, boss, django_capture_on_commit_callbacks)
    assert sixth.status == "sent"
    assert wechat_grants(emulator, openid) == {"message": 0, "event": 2}
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (0, 2)

    clocks(61)
    sends_before = len([c for c in emulator.calls if c.path == SEND])
    with pytest.raises(SendRefused) as refused:
        send(account, customer, boss, django_capture_on_commit_callbacks)
    # kfadmin refused without asking WeChat, with the code WeChat answers.
    assert len([c for c in emulator.calls if c.path == SEND]) == sends_before
    assert refused.value.errcode == wechat_answer(account, openid) == 45047
    window = customer_window_state(customer=customer)
    assert (window.is_open, window.budget_used_up) == (False, True)


def test_a_follower_who_only_clicked_is_closed_again_after_the_minute(
    emulator, account, pushes, clocks, boss, django_capture_on_commit_callbacks
):
    openid = emulator.state.add_customer(appid=emulator.appid)["openid"]
    emulator.state.customer_event(appid=emulator.appid, openid=openid, event="menu_click")
    pushes()
    customer = Customer.objects.get(official_account=account, openid=openid)

    assert send(account, customer, boss, django_capture_on_commit_callbacks).status == "sent"
    assert wechat_grants(emulator, openid) == {"message": None, "event": 2}

    clocks(61)
    with pytest.raises(SendRefused) as refused:
        send(account, customer, boss, django_capture_on_commit_callbacks)
    assert refused.value.errcode == wechat_answer(account, openid) == 45015
