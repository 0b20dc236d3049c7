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
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import transaction
from django.db.models import F

from accounts.models import OfficialAccount
from sessions_app.models import Customer

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


def customer_window_close(customer: Customer) -> None:
    """The customer unfollowed: WeChat delivers nothing more until they interact again."""
    Customer.objects.filter(pk=customer.pk).update(window_remaining=0)
    customer.window_remaining = 0

