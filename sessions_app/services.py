"""Writes on customers and sessions.

The reply window (wechat-kf-api.md §6.4): WeChat accepts kf messages only after the
customer interacted, through two grants kept apart, as WeChat and the emulator keep
them. A customer message grants 5 sends valid 48 hours (the message grant,
`Customer.window_*`); a menu click, follow or QR scan grants 3 sends valid one minute
(the event grant, `Customer.event_*`) and "does not create the user-message quota".
Each trigger resets only its own grant (5 or 3, never added to what is left); a send
spends the running grant that ends first. No grant running: WeChat answers 45015;
grants running but used up: 45047.

The same interaction reaches kfadmin several times (the callback, then the history
sync, and WeChat retries callbacks), so a trigger only grants a budget when it is newer
than the last one of its kind counted for the customer: replaying an old message never
refills a budget that sends have used up since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, PositiveSmallIntegerField, Q, When
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.live import conversation_domain, live_bump
from accounts.models import Agent, OfficialAccount
from accounts.sentences import wechat_error_message
from kfadmin.wechat import WeChatError, WeChatNotFound
from sessions_app.models import (
    EVENT_BUDGET,
    EVENT_WINDOW,
    MESSAGE_BUDGET,
    MESSAGE_WINDOW,
    Customer,
    CustomerNote,
    KfSession,
)
from sessions_app.selectors import agent_assign_warnings
from sessions_app.transitions import session_close_now, session_open_now


class Touch(StrEnum):
    """What the customer did: a message, or an event that opens a short window
    (follow, menu click, QR scan)."""

    MESSAGE = "message"
    EVENT = "event"


def _apply_touch(customer: Customer, *, at: datetime, kind: Touch) -> None:
    """Apply one interaction to `customer` in memory (the caller saves)."""
    # Anything counted before is not counted again (callback + sync + WeChat retries).
    if kind == Touch.MESSAGE:
        if customer.last_message_at is None or at > customer.last_message_at:
            customer.window_remaining = MESSAGE_BUDGET
            customer.window_expires_at = at + MESSAGE_WINDOW
            customer.last_message_at = at
    elif customer.last_event_at is None or at > customer.last_event_at:
        customer.event_remaining = EVENT_BUDGET
        customer.event_expires_at = at + EVENT_WINDOW
        customer.last_event_at = at

    if customer.last_interaction_at is None or at > customer.last_interaction_at:
        customer.last_interaction_at = at
    if at < customer.first_seen_at:
        customer.first_seen_at = at
    if at > customer.last_seen_at:
        customer.last_seen_at = at


_TOUCH_FIELDS = [*Customer.WINDOW_FIELDS, "first_seen_at", "last_seen_at"]


@transaction.atomic
def customer_touch(account: OfficialAccount, openid: str, at: datetime, kind: Touch | str) -> Customer:
    """Record that the customer `openid` interacted at `at`: a message (re)opens their
    message grant, an event their event grant. Creates the customer on first sight.
    Returns the saved customer."""
    kind = Touch(kind)
    Customer.objects.get_or_create(
        official_account=account, openid=openid, defaults={"first_seen_at": at, "last_seen_at": at}
    )
    # Re-read under a row lock: the callback and the history sync touch the same rows.
    customer = Customer.objects.select_for_update().get(official_account=account, openid=openid)
    _apply_touch(customer, at=at, kind=kind)
    customer.save(update_fields=_TOUCH_FIELDS)
    _window_changed(customer)
    return customer


@transaction.atomic
def customers_touch_bulk(account: OfficialAccount, messages: Iterable[tuple[str, datetime]]) -> int:
    """`customer_touch(kind=message)` for many (openid, at) pairs in a few queries.

    For the history sync: only each customer's latest message matters for the window,
    and the earliest for first_seen_at. Returns how many customers were written.
    """
    earliest: dict[str, datetime] = {}
    latest: dict[str, datetime] = {}
    for openid, at in messages:
        if openid not in latest or at > latest[openid]:
            latest[openid] = at
        if openid not in earliest or at < earliest[openid]:
            earliest[openid] = at
    if not latest:
        return 0
    if connection.vendor == "postgresql":
        return _customers_touch_bulk_sql(account, earliest, latest)
    Customer.objects.bulk_create(
        [
            Customer(official_account=account, openid=openid, first_seen_at=earliest[openid], last_seen_at=at)
            for openid, at in latest.items()
        ],
        ignore_conflicts=True,
        batch_size=1000,
    )
    customers = list(
        Customer.objects.select_for_update()
        .filter(official_account=account, openid__in=list(latest))
        .order_by("pk")  # a fixed lock order, so two bulk touches cannot deadlock
    )
    for customer in customers:
        if earliest[customer.openid] < customer.first_seen_at:
            customer.first_seen_at = earliest[customer.openid]
        _apply_touch(customer, at=latest[customer.openid], kind=Touch.MESSAGE)
    Customer.objects.bulk_update(customers, _TOUCH_FIELDS, batch_size=1000)
    return len(customers)


# The rules of `_apply_touch` for a customer message, for many customers in one
# statement (GREATEST/LEAST ignore NULLs in PostgreSQL). A message newer than the last
# one counted resets the message grant to 5 sends for 48 h; the event grant is the
# event's own and is left alone.
_TOUCH_BULK_SQL = """
INSERT INTO sessions_app_customer
    (official_account_id, openid, first_seen_at, last_seen_at, window_remaining, event_remaining)
SELECT %(account)s, v.openid, v.earliest, v.latest, 0, 0
FROM unnest(%(openids)s::text[], %(earliest)s::timestamptz[], %(latest)s::timestamptz[])
    AS v(openid, earliest, latest)
ON CONFLICT (official_account_id, openid) DO NOTHING;

UPDATE sessions_app_customer AS c SET
    window_remaining = CASE WHEN v.latest > COALESCE(c.last_message_at, '-infinity')
        THEN %(budget)s ELSE c.window_remaining END,
    window_expires_at = CASE WHEN v.latest > COALESCE(c.last_message_at, '-infinity')
        THEN v.latest + %(window)s ELSE c.window_expires_at END,
    last_message_at = GREATEST(c.last_message_at, v.latest),
    last_interaction_at = GREATEST(c.last_interaction_at, v.latest),
    first_seen_at = LEAST(c.first_seen_at, v.earliest),
    last_seen_at = GREATEST(c.last_seen_at, v.latest)
FROM unnest(%(openids)s::text[], %(earliest)s::timestamptz[], %(latest)s::timestamptz[])
    AS v(openid, earliest, latest)
WHERE c.official_account_id = %(account)s AND c.openid = v.openid;
"""


def _customers_touch_bulk_sql(
    account: OfficialAccount, earliest: dict[str, datetime], latest: dict[str, datetime]
) -> int:
    # Sorted, so concurrent bulk touches lock rows in the same order.
    openids = sorted(latest)
    params: dict[str, Any] = {
        "account": account.pk,
        "openids": openids,
        "earliest": [earliest[o] for o in openids],
        "latest": [latest[o] for o in openids],
        "budget": MESSAGE_BUDGET,
        "window": MESSAGE_WINDOW,
    }
    insert_sql, update_sql = (part.strip() for part in _TOUCH_BULK_SQL.split(";") if part.strip())
    with connection.cursor() as cursor:
        cursor.execute(insert_sql, params)
        cursor.execute(update_sql, params)
        return cursor.rowcount


@dataclass(frozen=True)
class Replies:
    """Agents' messages the archive holds around a customer's last grants, as counted.

    WeChat's records have whole seconds, so a reply in the second of a trigger is
    counted as after it; "second" below means the trigger's time cut to the second.
    """

    openid: str
    last_message_at: datetime | None  # the customer's last message, as counted
    last_event_at: datetime | None  # their last follow / click / scan, as counted
    since_message: int  # agents' messages at or after the message's second
    in_event: int  # ... from the event's second to the end of its grant (60 s)
    in_event_before_message: int  # ... of those, before the message's second

    @property
    def event_used(self) -> int:
        """The event grant ends first (a minute against 48 hours), so a send within
        it spent the event grant while it had sends left."""
        return min(EVENT_BUDGET, self.in_event)

    @property
    def event_left(self) -> int:
        return EVENT_BUDGET - self.event_used

    @property
    def message_left(self) -> int:
        # The event grant's sends came first in its minute: those before the message
        # are not among `since_message`, the rest are and did not use the message grant.
        event_used_after_message = self.event_used - min(self.event_used, self.in_event_before_message)
        return max(0, MESSAGE_BUDGET - (self.since_message - event_used_after_message))


@transaction.atomic
def customers_window_replied(account: OfficialAccount, replies: Iterable[Replies]) -> int:
    """Agents' replies found in the chat history use the customers' budgets too.

    An agent may reply from WeChat's own client or another tool, which kfadmin learns
    only from the history; WeChat counts those sends as it counts kfadmin's. Each grant
    is lowered to what the replies leave of it (`Replies.message_left`, `event_left`),
    never raised (kfadmin counted its own sends when WeChat accepted them). A grant
    the customer renewed since the counts were taken (a newer message, or a newer
    event) is left alone. Returns how many customers were written.
    """
    caps = {r.openid: r for r in replies}
    if not caps:
        return 0
    if connection.vendor == "postgresql":
        return _customers_window_replied_sql(account, caps)
    customers = list(
        Customer.objects.select_for_update()
        .filter(official_account=account, openid__in=list(caps))
        .order_by("pk")
    )
    changed = []
    for customer in customers:
        counted = caps[customer.openid]
        lowered = False
        if counted.last_message_at is not None and customer.last_message_at == counted.last_message_at:
            if customer.window_remaining > counted.message_left:
                customer.window_remaining = counted.message_left
                lowered = True
        if counted.last_event_at is not None and customer.last_event_at == counted.last_event_at:
            if customer.event_remaining > counted.event_left:
                customer.event_remaining = counted.event_left
                lowered = True
        if lowered:
            changed.append(customer)
    Customer.objects.bulk_update(changed, ["window_remaining", "event_remaining"], batch_size=1000)
    return len(changed)


# `customers_window_replied` for many customers in one statement (the same rule, with
# what is left of each grant computed in Python). `=` on a NULL is never true, so a
# grant that was not counted is never written.
_REPLIED_SQL = """
UPDATE sessions_app_customer AS c SET
    window_remaining = CASE WHEN c.last_message_at = v.last_message_at
        THEN LEAST(c.window_remaining, v.message_left) ELSE c.window_remaining END,
    event_remaining = CASE WHEN c.last_event_at = v.last_event_at
        THEN LEAST(c.event_remaining, v.event_left) ELSE c.event_remaining END
FROM unnest(%(openids)s::text[], %(messages)s::timestamptz[], %(events)s::timestamptz[],
            %(message_left)s::int[], %(event_left)s::int[])
    AS v(openid, last_message_at, last_event_at, message_left, event_left)
WHERE c.official_account_id = %(account)s AND c.openid = v.openid
    AND ((c.last_message_at = v.last_message_at AND c.window_remaining > v.message_left)
         OR (c.last_event_at = v.last_event_at AND c.event_remaining > v.event_left))
"""


def _customers_window_replied_sql(account: OfficialAccount, caps: dict[str, Replies]) -> int:
    openids = sorted(caps)  # the lock order of `customers_touch_bulk`
    params: dict[str, Any] = {
        "account": account.pk,
        "openids": openids,
        "messages": [caps[o].last_message_at for o in openids],
        "events": [caps[o].last_event_at for o in openids],
        "message_left": [caps[o].message_left for o in openids],
        "event_left": [caps[o].event_left for o in openids],
    }
    with connection.cursor() as cursor:
        cursor.execute(_REPLIED_SQL, params)
        return cursor.rowcount


def customer_window_consume(customer: Customer, *, now: datetime | None = None) -> int:
    """Use one send after WeChat accepted a message (or may have): from the running
    grant with sends left that ends first, as WeChat spends them.

    A single conditional UPDATE (every CASE reads the row as it was), so concurrent
    sends never drive a grant below zero. Returns the sends left over both grants
    (the grants are also set on `customer`)."""
    now = now or timezone.now()
    event_usable = Q(event_expires_at__gt=now, event_remaining__gt=0)
    message_usable = Q(window_expires_at__gt=now, window_remaining__gt=0)
    message_first = message_usable & Q(window_expires_at__lt=F("event_expires_at"))
    Customer.objects.filter(Q(pk=customer.pk) & (event_usable | message_usable)).update(
        event_remaining=Case(
            When(message_first, then=F("event_remaining")),
            When(event_usable, then=F("event_remaining") - 1),
            default=F("event_remaining"),
            output_field=PositiveSmallIntegerField(),
        ),
        window_remaining=Case(
            When(message_first, then=F("window_remaining") - 1),
            When(event_usable, then=F("window_remaining")),
            When(message_usable, then=F("window_remaining") - 1),
            default=F("window_remaining"),
            output_field=PositiveSmallIntegerField(),
        ),
    )
    customer.refresh_from_db(fields=["window_expires_at", "window_remaining", "event_expires_at", "event_remaining"])
    _window_changed(customer)
    return customer.sends_left(now)


def customer_window_close(customer: Customer, *, now: datetime | None = None) -> None:
    """The window is over before its time (the customer unfollowed, or WeChat answered
    45015): both grants end, and WeChat delivers nothing more until they interact again."""
    now = now or timezone.now()
    # A push delivered late does not close a window the customer opened after it.
    rows = Customer.objects.filter(pk=customer.pk).exclude(last_interaction_at__gt=now)
    rows.filter(window_expires_at__gt=now).update(window_expires_at=now)
    rows.filter(event_expires_at__gt=now).update(event_expires_at=now)
    rows.update(window_remaining=0, event_remaining=0)
    customer.refresh_from_db(fields=["window_expires_at", "window_remaining", "event_expires_at", "event_remaining"])
    _window_changed(customer)


def customer_budget_used_up(customer: Customer) -> None:
    """WeChat answered 45047: a grant is running but the sends of both are used up,
    until the customer interacts again."""
    Customer.objects.filter(pk=customer.pk).update(window_remaining=0, event_remaining=0)
    customer.window_remaining = customer.event_remaining = 0
    _window_changed(customer)


def _window_changed(customer: Customer) -> None:
    """The customer's session box (their reply window) renders on its next poll."""
    live_bump(customer.official_account_id, conversation_domain(customer.openid))


# ------------------------------------------------------------------ session control
# Session control from the dashboard: assign, close, transfer.
# Each calls WeChat first, outside any transaction, then writes kfadmin's copy at
# once in one short transaction (customer row locked first, then the session rows,
# the order sessions_app.sync uses), so the page shows the result before the next
# sync. Every outcome, success or failure, leaves an audit event.

class SessionNeedsConfirmation(Exception):
    """The chosen agent is offline or full; the supervisor has to confirm."""

    def __init__(self, warnings: list[str]):
        self.warnings = warnings
        super().__init__(" ".join(warnings))


class SessionStateError(Exception):
    """The session is not in a state the action applies to (e.g. already closed)."""


class SessionTransferIncomplete(Exception):
    """The first step of a transfer (closing the old agent's session) worked, the
    second (handing the customer to the new agent) did not: the customer is now in no
    session at all."""

    def __init__(self, *, error: WeChatError, from_agent: Agent, to_agent: Agent):
        self.error = error
        self.from_agent = from_agent
        self.to_agent = to_agent
        self.explanation = _(
            "%(old)s no longer serves this customer, but WeChat did not hand them to "
            "%(new)s: %(reason)s The customer is now in no session. Assign them again "
            "from their conversation page; if they write first, they join the queue."
        ) % {
            "old": from_agent.display_name,
            "new": to_agent.display_name,
            "reason": wechat_error_message(error),
        }
        super().__init__(self.explanation)


@dataclass(frozen=True)
class SessionCloseResult:
    session: KfSession
    # WeChat said there was no session to close (65413): kfadmin's copy was stale.
    already_closed: bool = False


def _confirm_or_raise(*, account: OfficialAccount, agent: Agent, confirmed: bool) -> list[str]:
    warnings = agent_assign_warnings(account=account, agent=agent)
    if warnings and not confirmed:
        raise SessionNeedsConfirmation(warnings)
    return warnings


def session_assign(
    *,
    account: OfficialAccount,
    customer: Customer,
    agent: Agent,
    actor,
    confirmed: bool = False,
    actor_label: str = "",
    params: dict[str, Any] | None = None,
) -> KfSession:
    """Hand `customer` to `agent` (WeChat create_session).

    Raises SessionNeedsConfirmation when the agent is offline or at capacity and the
    supervisor has not confirmed; WeChatError when WeChat refuses (65415 offline,
    65414 served by another agent, ...). On success the customer's live session is
    open with `agent` in kfadmin's copy right away. Auto-assignment calls it with no
    actor, its `actor_label` and its own `params` for the audit row.
    """
    warnings = _confirm_or_raise(account=account, agent=agent, confirmed=confirmed)
    params = {
        "openid": customer.openid, "kf_account": agent.kf_account, "confirmed_warnings": warnings, **(params or {})
    }
    try:
        wechat_client_for(account).create_session(agent.kf_account, customer.openid)
    except WeChatError as error:
        audit_event_record(
            actor=actor, action="session_assign", official_account=account, target=customer.openid,
            params=params, ok=False, errcode=error.errcode, message=error.explanation, actor_label=actor_label,
        )
        raise
    session = session_open_now(account=account, customer=customer, agent=agent)
    audit_event_record(
        actor=actor, action="session_assign", official_account=account, target=customer.openid, params=params,
        actor_label=actor_label,
    )
    return session


def session_close(*, account: OfficialAccount, session: KfSession, actor) -> SessionCloseResult:
    """End an open session (WeChat close_session for its agent).

    When WeChat has no such session (65413) it already ended there: kfadmin's copy is
    closed too and the result says so. Other refusals raise WeChatError.
    """
    if session.state != KfSession.State.OPEN or session.agent is None:
        raise SessionStateError(_("Only an open session can be closed; this one is %(state)s.") % {
            "state": session.get_state_display()
        })
    openid = session.customer.openid
    params = {"openid": openid, "kf_account": session.agent.kf_account}
    try:
        wechat_client_for(account).close_session(session.agent.kf_account, openid)
    except WeChatNotFound as error:
        session_close_now(session)
        audit_event_record(
            actor=actor, action="session_close", official_account=account, target=openid, params=params,
            errcode=error.errcode, message=error.explanation,
        )
        return SessionCloseResult(session=session, already_closed=True)
    except WeChatError as error:
        audit_event_record(
            actor=actor, action="session_close", official_account=account, target=openid, params=params,
            ok=False, errcode=error.errcode, message=error.explanation,
        )
        raise
    session_close_now(session)
    audit_event_record(actor=actor, action="session_close", official_account=account, target=openid, params=params)
    return SessionCloseResult(session=session)


def session_transfer(
    *, account: OfficialAccount, session: KfSession, to_agent: Agent, actor, confirmed: bool = False
) -> KfSession:
    """Move an open session to `to_agent`: WeChat has no transfer call, so this
    closes the session for the current agent, then creates one for the new agent.

    If the close fails nothing changed (WeChatError). If the create fails the customer
    is left in no session: kfadmin's copy is closed to match and
    SessionTransferIncomplete explains what to do.
    """
    if session.state != KfSession.State.OPEN or session.agent is None:
        raise SessionStateError(_("Only an open session can be transferred; this one is %(state)s.") % {
            "state": session.get_state_display()
        })
    from_agent = session.agent
    if from_agent.pk == to_agent.pk:
        raise SessionStateError(_("The session is already with this agent."))
    warnings = _confirm_or_raise(account=account, agent=to_agent, confirmed=confirmed)
    openid = session.customer.openid
    params = {
        "openid": openid,
        "from_kf_account": from_agent.kf_account,
        "to_kf_account": to_agent.kf_account,
        "confirmed_warnings": warnings,
    }
    client = wechat_client_for(account)
    try:
        client.close_session(from_agent.kf_account, openid)
    except WeChatNotFound:
        pass  # already ended at WeChat: nothing to close, go on with the hand-over
    except WeChatError as error:
        audit_event_record(
            actor=actor, action="session_transfer", official_account=account, target=openid, params=params,
            ok=False, errcode=error.errcode, message=error.explanation,
        )
        raise
    try:
        client.create_session(to_agent.kf_account, openid)
    except WeChatError as error:
        session_close_now(session)
        incomplete = SessionTransferIncomplete(error=error, from_agent=from_agent, to_agent=to_agent)
        audit_event_record(
            actor=actor, action="session_transfer", official_account=account, target=openid,
            params={**params, "step": "create"}, ok=False, errcode=error.errcode,
            message=incomplete.explanation,
        )
        raise incomplete from error
    moved = session_open_now(account=account, customer=session.customer, agent=to_agent)
    audit_event_record(
        actor=actor, action="session_transfer", official_account=account, target=openid, params=params
    )
    return moved


# ------------------------------------------------------------------ the customer's profile
# kfadmin's own words about a customer (remark name, tags, notes). Nothing here calls
# WeChat: its user-info API (`/cgi-bin/user/info`, with WeChat's own remark) is not
# among the kf operations kfadmin uses.


@transaction.atomic
def customer_profile_update(*, customer: Customer, remark_name: str, tags: list[str], actor) -> bool:
    """Set the customer's remark name and tags; audited with what changed. Returns
    False (and records nothing) when nothing changed."""
    locked = Customer.objects.select_for_update().get(pk=customer.pk)
    before = {"remark_name": locked.remark_name, "tags": list(locked.tags)}
    after = {"remark_name": remark_name, "tags": list(tags)}
    if before == after:
        return False
    Customer.objects.filter(pk=customer.pk).update(**after)
    customer.remark_name, customer.tags = remark_name, list(tags)
    changed = {key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]}
    audit_event_record(
        actor=actor, action="customer_update", official_account=customer.official_account,
        target=customer.openid, params=changed,
    )
    return True


@transaction.atomic
def customer_note_delete(*, note: CustomerNote, actor) -> None:
    """Remove a note (its author's or a supervisor's decision, checked by the view);
    the audit log keeps that it existed, who wrote and who removed it, not its text."""
    customer = note.customer
    audit_event_record(
        actor=actor, action="customer_note_delete", official_account=customer.official_account,
        target=customer.openid, params={"note": note.pk, "author": note.author_label, "length": len(note.text)},
    )
    note.delete()


def customer_note_add(*, customer: Customer, text: str, actor) -> CustomerNote:
    """Keep a note about the customer, with its author and time; audited."""
    note = CustomerNote.objects.create(customer=customer, author=actor, author_label=actor.get_username(), text=text)
    audit_event_record(
        actor=actor, action="customer_note_add", official_account=customer.official_account,
        target=customer.openid, params={"note": note.pk, "length": len(text)},
    )
    return note
