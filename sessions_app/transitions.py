"""Every change of a kf session's state, written once.

A session is waiting (the customer is in the queue), open (an agent serves them) or
closed. The dashboard's actions (`sessions_app.services`), the queue and sessions
syncs (`sessions_app.sync`) and the callback receiver (`messaging.callback`) all move
sessions through these functions:

- `session_new_waiting`, `session_new_open`, `session_mark_open`,
  `session_mark_moved`, `session_mark_closed` change a session in memory; the
  syncs write many at once (bulk_update), the functions below save one.
- `session_open_now`, `session_close_now` are the dashboard's own changes, made
  right after WeChat accepted them; `session_event_apply` is a session event WeChat
  pushed; `session_waiting_wrote` keeps a waiting customer's latest message time.

Writers lock the customer row first, then the customer's session rows (the syncs
lock many customers in primary-key order), so they serialise per customer instead
of tripping over the "one live session per customer" constraint.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

from accounts.live import SESSIONS, conversation_domain, live_bump
from accounts.models import Agent, OfficialAccount
from accounts.sync import agent_get_or_stub
from sessions_app.models import Customer, KfSession

# --------------------------------------------------------------------------- in memory


def session_new_waiting(*, account: OfficialAccount, customer_id: int, at: datetime, now: datetime) -> KfSession:
    """The customer joined the queue; `at` is their latest message (unsaved)."""
    return KfSession(
        official_account=account,
        customer_id=customer_id,
        state=KfSession.State.WAITING,
        created_at=at,
        latest_time=at,
        last_synced_at=now,
    )


def session_new_open(
    *, account: OfficialAccount, customer: Customer, agent: Agent | None, at: datetime, now: datetime
) -> KfSession:
    """An agent serves the customer since `at`, and kfadmin knew no live session of
    theirs (unsaved)."""
    return KfSession(
        official_account=account,
        customer=customer,
        agent=agent,
        state=KfSession.State.OPEN,
        created_at=at,
        accepted_at=at,
        last_synced_at=now,
    )


def session_mark_open(session: KfSession, *, agent: Agent | None, at: datetime) -> None:
    """The customer's live session is served by `agent` since `at` (taken from the
    queue, or accepted again)."""
    session.state = KfSession.State.OPEN
    session.agent = agent
    session.accepted_at = at


def session_mark_moved(session: KfSession, *, agent: Agent | None) -> None:
    """An open session went to another agent (a transfer); it keeps its start."""
    session.agent = agent


def session_mark_closed(session: KfSession, *, at: datetime) -> None:
    session.state = KfSession.State.CLOSED
    session.closed_at = at


# --------------------------------------------------------------------------- one customer


def _live_session_locked(customer: Customer) -> KfSession | None:
    return (
        KfSession.objects.select_for_update()
        .filter(customer=customer)
        .exclude(state=KfSession.State.CLOSED)
        .first()
    )


@transaction.atomic
def session_open_now(*, account: OfficialAccount, customer: Customer, agent: Agent) -> KfSession:
    """WeChat created a session of `customer` with `agent` (assign, transfer): their
    live session is open with `agent` from now."""
    now = timezone.now()
    Customer.objects.select_for_update().get(pk=customer.pk)
    session = _live_session_locked(customer)
    if session is None:
        session = session_new_open(account=account, customer=customer, agent=agent, at=now, now=now)
    else:
        session_mark_open(session, agent=agent, at=now)
        session.last_synced_at = now
    session.save()
    live_bump(account.pk, SESSIONS, conversation_domain(customer.openid))
    return session


@transaction.atomic
def session_close_now(session: KfSession) -> None:
    """WeChat closed `session` (or had already): closed from now, unless it is already."""
    now = timezone.now()
    Customer.objects.select_for_update().get(pk=session.customer_id)
    KfSession.objects.filter(pk=session.pk).exclude(state=KfSession.State.CLOSED).update(
        state=KfSession.State.CLOSED, closed_at=now, last_synced_at=now, updated_at=now
    )
    session_mark_closed(session, at=now)
    live_bump(session.official_account_id, SESSIONS, conversation_domain(session.customer.openid))


def session_waiting_wrote(*, customer: Customer, at: datetime) -> None:
    """A waiting customer wrote at `at`: the queue shows it as their latest message."""
    if KfSession.objects.filter(customer=customer, state=KfSession.State.WAITING).update(
        latest_time=at, updated_at=timezone.now()
    ):
        live_bump(customer.official_account_id, SESSIONS, conversation_domain(customer.openid))


class SessionEvent(StrEnum):
    """The session events WeChat pushes (wechat-kf-api.md §7)."""

    CREATE = "kf_create_session"
    CLOSE = "kf_close_session"
    SWITCH = "kf_switch_session"


@transaction.atomic
def session_event_apply(
    *, account: OfficialAccount, openid: str, at: datetime, event: SessionEvent | str, kf_account: str
) -> None:
    """Move the customer's live session as the pushed event says, unless the rows
    already know something newer (pushes can arrive late or out of order).
    `kf_account` is the agent who serves the customer after the event."""
    event = SessionEvent(event)
    Customer.objects.get_or_create(
        official_account=account, openid=openid, defaults={"first_seen_at": at, "last_seen_at": at}
    )
    customer = Customer.objects.select_for_update().get(official_account=account, openid=openid)
    now = timezone.now()
    live = _live_session_locked(customer)
    if live is not None and live.accepted_at is not None and live.accepted_at > at:
        return  # the live session started after this event
    if event == SessionEvent.CLOSE:
        if live is not None:
            session_mark_closed(live, at=at)
            live.save(update_fields=["state", "closed_at", "updated_at"])
            live_bump(account.pk, SESSIONS, conversation_domain(customer.openid))
        return

    if live is None:
        ended_later = KfSession.objects.filter(customer=customer, closed_at__gte=at).exists()
        if ended_later:
            return  # a session that this event belongs to has closed since
    agent = agent_get_or_stub(account=account, kf_account=kf_account) if kf_account else None
    live_bump(account.pk, SESSIONS, conversation_domain(customer.openid))
    if live is None:
        session_new_open(account=account, customer=customer, agent=agent, at=at, now=now).save()
        return
    if live.state == KfSession.State.WAITING or event == SessionEvent.CREATE:
        session_mark_open(live, agent=agent, at=at)
    else:
        session_mark_moved(live, agent=agent)
    live.save(update_fields=["state", "agent", "accepted_at", "updated_at"])
