"""Helpers for the queue, conversation, send and history tests: an official account
wired to the emulator, agents and customers that exist both in the emulator and in
kfadmin's copy, and HTMX request headers. No tests in here."""

from __future__ import annotations

import json

from django.utils import timezone

from accounts.models import Agent, OfficialAccount
from messaging.models import MessageRecord, record_digest
from sessions_app.models import Customer, KfSession
from sessions_app.services import Touch, customer_touch
from tests.factories import AgentFactory, OfficialAccountFactory


def htmx(target: str | None = None) -> dict[str, str]:
    """Headers htmx sends; `target` is the id of the element it swaps."""
    headers = {"HTTP_HX_REQUEST": "true"}
    if target:
        headers["HTTP_HX_TARGET"] = target
    return headers


def triggered(response) -> set[str]:
    """The client events a response's HX-Trigger header fires."""
    raw = response.get("HX-Trigger", "")
    if not raw:
        return set()
    return set(json.loads(raw)) if raw.startswith("{") else {name.strip() for name in raw.split(",")}


def enqueued(callbacks: list) -> list:
    """The on-commit callbacks that enqueue a task, leaving out the live-cache version
    bumps every audited write schedules (accounts/live.py)."""
    from accounts.live import live_bump_now

    return [c for c in callbacks if getattr(c, "func", None) is not live_bump_now]


def wired_account(emulator, **kwargs) -> OfficialAccount:
    """An official account whose WeChat is the emulator's test account."""
    return OfficialAccountFactory(
        appid=emulator.appid,
        secret=emulator.secret,
        wechat_id=emulator.wechat_id,
        api_base_url=emulator.base_url,
        **kwargs,
    )


def emulated_agent(account: OfficialAccount, emulator, prefix: str, *, online: bool = True, nick: str = "") -> Agent:
    """A bound agent in the emulator and in kfadmin's copy (online or not in both)."""
    kf_account = emulator.bound_agent(prefix, online=online, nickname=nick or prefix)
    return AgentFactory(
        official_account=account, kf_account=kf_account, kf_nick=nick or prefix, online_status=1 if online else 0
    )


def archive(account: OfficialAccount, openid: str, text: str, *, opercode: int = 2001, worker: str = "", at=None):
    at = at or timezone.now()
    return MessageRecord.objects.create(
        official_account=account, time=at, worker=worker, openid=openid, opercode=opercode, text=text,
        digest=record_digest(worker, openid, opercode, text), seq=0, source=MessageRecord.Source.CALLBACK,
        created_at=at,  # pushed, so stored as it happened
    )


def waiting_customer(
    account: OfficialAccount, emulator=None, *, text: str = "你好，我想退款", openid: str | None = None, archived: bool = True
) -> Customer:
    """A customer who just wrote: in the emulator's queue (when given), archived (unless
    the emulator pushes it to kfadmin's callback itself), with an open reply window and
    a waiting session in kfadmin's copy."""
    now = timezone.now()
    if emulator is not None:
        openid = emulator.customer(openid=openid, text=text)
    openid = openid or f"o_waiting_{Customer.objects.count():04d}"
    customer = customer_touch(account, openid, now, Touch.MESSAGE)
    if archived:
        archive(account, openid, text, at=now)
    KfSession.objects.create(
        official_account=account, customer=customer, state=KfSession.State.WAITING, created_at=now, latest_time=now
    )
    return customer


def served_customer(
    account: OfficialAccount, agent: Agent, emulator=None, *, text: str = "在吗？", openid: str | None = None, archived: bool = True
) -> KfSession:
    """A customer `agent` is serving, in the emulator (accepted from the queue) and in
    kfadmin's copy. Returns the open session."""
    customer = waiting_customer(account, emulator, text=text, openid=openid, archived=archived)
    if emulator is not None:
        emulator.state.agent_accept(appid=emulator.appid, kf_account=agent.kf_account, openid=customer.openid)
    session = KfSession.objects.get(customer=customer, state=KfSession.State.WAITING)
    session.state = KfSession.State.OPEN
    session.agent = agent
    session.accepted_at = timezone.now()
    session.save()
    return session
