"""Writes on customers and sessions.

The reply window (wechat-kf-api.md §6.4): WeChat accepts kf messages only after the
customer interacted. A customer message grants 5 sends valid 48 hours; a menu click,
follow or QR scan grants 3 sends valid one minute. Budgets do not add up: a trigger
raises the remaining count to its own grant and the expiry to the later of the two,
so an event never shortens an open 48-hour window (the emulator's model, and WeChat's
documented rule for mini programs). Each send uses one.

The same interaction reaches kfadmin several times (the callback, then the history
sync, and WeChat retries callbacks), so a trigger only grants a budget when it is newer
than the last one counted for the customer: replaying an old message never refills a
budget that sends have used up since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import Agent, OfficialAccount
from accounts.sentences import wechat_error_message
from kfadmin.wechat import WeChatError, WeChatNotFound
from sessions_app.models import Customer, KfSession

MESSAGE_WINDOW = timedelta(hours=48)
MESSAGE_BUDGET = 5
EVENT_WINDOW = timedelta(seconds=60)
EVENT_BUDGET = 3


class Touch(StrEnum):
    """What the customer did: a message, or an event that opens a short window
    (follow, menu click, QR scan)."""

    MESSAGE = "message"
    EVENT = "event"


def _apply_touch(customer: Customer, *, at: datetime, kind: Touch) -> None:
    """Apply one interaction to `customer` in memory (the caller saves)."""
    # Anything counted before is not counted again (callback + sync + WeChat retries).
    if kind == Touch.MESSAGE:
        already_counted = customer.last_message_at is not None and at <= customer.last_message_at
    else:
        already_counted = customer.last_interaction_at is not None and at <= customer.last_interaction_at

    if not already_counted:
        budget, window = (MESSAGE_BUDGET, MESSAGE_WINDOW) if kind == Touch.MESSAGE else (EVENT_BUDGET, EVENT_WINDOW)
        window_live = customer.window_expires_at is not None and customer.window_expires_at > at
        # What is left of an expired window does not carry over into the new one.
        remaining = customer.window_remaining if window_live else 0
        customer.window_remaining = max(remaining, budget)
        customer.window_expires_at = max(customer.window_expires_at, at + window) if window_live else at + window

    if kind == Touch.MESSAGE and (customer.last_message_at is None or at > customer.last_message_at):
        customer.last_message_at = at
    if customer.last_interaction_at is None or at > customer.last_interaction_at:
        customer.last_interaction_at = at
    if at < customer.first_seen_at:
        customer.first_seen_at = at
    if at > customer.last_seen_at:
        customer.last_seen_at = at


_TOUCH_FIELDS = [
    "window_remaining",
    "window_expires_at",
    "last_message_at",
    "last_interaction_at",
    "first_seen_at",
    "last_seen_at",
]


@transaction.atomic
def customer_touch(account: OfficialAccount, openid: str, at: datetime, kind: Touch | str) -> Customer:
    """Record that the customer `openid` interacted at `at`; opens or widens their
    reply window. Creates the customer on first sight. Returns the saved customer."""
    kind = Touch(kind)
    Customer.objects.get_or_create(
        official_account=account, openid=openid, defaults={"first_seen_at": at, "last_seen_at": at}
    )
    # Re-read under a row lock: the callback and the history sync touch the same rows.
    customer = Customer.objects.select_for_update().get(official_account=account, openid=openid)
    _apply_touch(customer, at=at, kind=kind)
    customer.save(update_fields=_TOUCH_FIELDS)
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
# one counted opens a 48 h window with at least 5 sends; what is left of an expired
# window does not carry over.
_TOUCH_BULK_SQL = """
INSERT INTO sessions_app_customer
    (official_account_id, openid, first_seen_at, last_seen_at, window_remaining)
SELECT %(account)s, v.openid, v.earliest, v.latest, 0
FROM unnest(%(openids)s::text[], %(earliest)s::timestamptz[], %(latest)s::timestamptz[])
    AS v(openid, earliest, latest)
ON CONFLICT (official_account_id, openid) DO NOTHING;

UPDATE sessions_app_customer AS c SET
    window_remaining = CASE WHEN v.latest > COALESCE(c.last_message_at, '-infinity')
        THEN GREATEST(CASE WHEN c.window_expires_at > v.latest THEN c.window_remaining ELSE 0 END,
                      %(budget)s)
        ELSE c.window_remaining END,
    window_expires_at = CASE WHEN v.latest > COALESCE(c.last_message_at, '-infinity')
        THEN CASE WHEN c.window_expires_at > v.latest
                  THEN GREATEST(c.window_expires_at, v.latest + %(window)s)
                  ELSE v.latest + %(window)s END
        ELSE c.window_expires_at END,
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
    params = {
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
    """Agents' messages the archive holds since a customer's last grants."""

    openid: str
    last_message_at: datetime  # the customer's last message, as counted
    last_interaction_at: datetime | None  # their last interaction, as counted
    since_message: int  # agents' messages at or after last_message_at
    since_interaction: int  # ... at or after last_interaction_at

    @property
    def budget_left(self) -> int:
        """What those grants leave, by the rules of `_apply_touch`: a message grants
        MESSAGE_BUDGET; a later event raises what is left to EVENT_BUDGET."""
        after_event = self.last_interaction_at is not None and self.last_interaction_at > self.last_message_at
        if not after_event:
            return max(0, MESSAGE_BUDGET - self.since_message)
        before_event = self.since_message - self.since_interaction
        return max(0, max(MESSAGE_BUDGET - before_event, EVENT_BUDGET) - self.since_interaction)


@transaction.atomic
def customers_window_replied(account: OfficialAccount, replies: Iterable[Replies]) -> int:
    """Agents' replies found in the chat history use the customers' budgets too.

    An agent may reply from WeChat's own client or another tool, which kfadmin learns
    only from the history; WeChat counts those sends as it counts kfadmin's. The
    budget is lowered to `Replies.budget_left`, never raised (kfadmin counted its own
    sends when WeChat accepted them). A customer who interacted again since the counts
    were taken has a newer grant and is left alone. Returns how many were written.
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
        same_grants = (customer.last_message_at, customer.last_interaction_at) == (
            counted.last_message_at, counted.last_interaction_at
        )
        if same_grants and customer.window_remaining > counted.budget_left:
            customer.window_remaining = counted.budget_left
            changed.append(customer)
    Customer.objects.bulk_update(changed, ["window_remaining"], batch_size=1000)
    return len(changed)


# `customers_window_replied` for many customers in one statement (the same rule, with
# `budget_left` computed in Python).
_REPLIED_SQL = """
UPDATE sessions_app_customer AS c SET window_remaining = v.cap
FROM unnest(%(openids)s::text[], %(messages)s::timestamptz[], %(interactions)s::timestamptz[], %(caps)s::int[])
    AS v(openid, last_message_at, last_interaction_at, cap)
WHERE c.official_account_id = %(account)s AND c.openid = v.openid
    AND c.last_message_at = v.last_message_at
    AND c.last_interaction_at IS NOT DISTINCT FROM v.last_interaction_at
    AND c.window_remaining > v.cap
"""


def _customers_window_replied_sql(account: OfficialAccount, caps: dict[str, Replies]) -> int:
    openids = sorted(caps)  # the lock order of `customers_touch_bulk`
    params = {
        "account": account.pk,
        "openids": openids,
        "messages": [caps[o].last_message_at for o in openids],
        "interactions": [caps[o].last_interaction_at for o in openids],
        "caps": [caps[o].budget_left for o in openids],
    }
    with connection.cursor() as cursor:
        cursor.execute(_REPLIED_SQL, params)
        return cursor.rowcount


def customer_window_consume(customer: Customer) -> int:
    """Use one send of the customer's budget after WeChat accepted a message.

    A single conditional UPDATE, so concurrent sends never drive it below zero.
    Returns the remaining budget (also set on `customer`).
    """
    Customer.objects.filter(pk=customer.pk, window_remaining__gt=0).update(
        window_remaining=F("window_remaining") - 1
    )
    customer.window_remaining = Customer.objects.values_list("window_remaining", flat=True).get(pk=customer.pk)
    return customer.window_remaining


def customer_window_close(customer: Customer, *, now: datetime | None = None) -> None:
    """The window is over before its time (the customer unfollowed, or WeChat answered
    45015): WeChat delivers nothing more until they interact again."""
    now = now or timezone.now()
    # A push delivered late does not close a window the customer opened after it.
    rows = Customer.objects.filter(pk=customer.pk).exclude(last_interaction_at__gt=now)
    rows.filter(window_expires_at__gt=now).update(window_expires_at=now)
    rows.update(window_remaining=0)
    customer.refresh_from_db(fields=["window_expires_at", "window_remaining"])


def customer_budget_used_up(customer: Customer) -> None:
    """WeChat answered 45047: the window is open but its sends are used up, until the
    customer writes again."""
    Customer.objects.filter(pk=customer.pk).update(window_remaining=0)
    customer.window_remaining = 0


# =============================================================================
# Session control from the dashboard: assign, close, transfer.
# Each calls WeChat first, outside any transaction, then writes kfadmin's copy at
# once in one short transaction (customer row locked first, then the session rows,
# the order sessions_app.sync uses), so the page shows the result before the next
# sync. Every outcome, success or failure, leaves an audit event.
# =============================================================================

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
    from sessions_app.selectors import agent_assign_warnings

    warnings = agent_assign_warnings(account=account, agent=agent)
    if warnings and not confirmed:
        raise SessionNeedsConfirmation(warnings)
    return warnings


def _session_open_locally(*, account: OfficialAccount, customer: Customer, agent: Agent) -> KfSession:
    """After WeChat's create: the customer's live session is open with `agent`."""
    now = timezone.now()
    with transaction.atomic():
        Customer.objects.select_for_update().get(pk=customer.pk)
        session = (
            KfSession.objects.select_for_update()
            .filter(customer=customer)
            .exclude(state=KfSession.State.CLOSED)
            .first()
        )
        if session is None:
            session = KfSession(official_account=account, customer=customer, created_at=now)
        session.state = KfSession.State.OPEN
        session.agent = agent
        session.accepted_at = now
        session.last_synced_at = now
        session.save()
    return session


def _session_close_locally(session: KfSession) -> None:
    now = timezone.now()
    with transaction.atomic():
        Customer.objects.select_for_update().get(pk=session.customer_id)
        KfSession.objects.filter(pk=session.pk).exclude(state=KfSession.State.CLOSED).update(
            state=KfSession.State.CLOSED, closed_at=now, last_synced_at=now, updated_at=now
        )
    session.state = KfSession.State.CLOSED
    session.closed_at = now


def session_assign(
    *, account: OfficialAccount, customer: Customer, agent: Agent, actor, confirmed: bool = False
) -> KfSession:
    """Hand `customer` to `agent` (WeChat create_session).

    Raises SessionNeedsConfirmation when the agent is offline or at capacity and the
    supervisor has not confirmed; WeChatError when WeChat refuses (65415 offline,
    65414 served by another agent, ...). On success the customer's live session is
    open with `agent` in kfadmin's copy right away.
    """
    warnings = _confirm_or_raise(account=account, agent=agent, confirmed=confirmed)
    params = {"openid": customer.openid, "kf_account": agent.kf_account, "confirmed_warnings": warnings}
    try:
        wechat_client_for(account).create_session(agent.kf_account, customer.openid)
    except WeChatError as error:
        audit_event_record(
            actor=actor, action="session_assign", official_account=account, target=customer.openid,
            params=params, ok=False, errcode=error.errcode, message=error.explanation,
        )
        raise
    session = _session_open_locally(account=account, customer=customer, agent=agent)
    audit_event_record(
        actor=actor, action="session_assign", official_account=account, target=customer.openid, params=params
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
        _session_close_locally(session)
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
    _session_close_locally(session)
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
        _session_close_locally(session)
        incomplete = SessionTransferIncomplete(error=error, from_agent=from_agent, to_agent=to_agent)
        audit_event_record(
            actor=actor, action="session_transfer", official_account=account, target=openid,
            params={**params, "step": "create"}, ok=False, errcode=error.errcode,
            message=incomplete.explanation,
        )
        raise incomplete from error
    moved = _session_open_locally(account=account, customer=session.customer, agent=to_agent)
    audit_event_record(
        actor=actor, action="session_transfer", official_account=account, target=openid, params=params
    )
    return moved


# ============================ end of session control ==========================
