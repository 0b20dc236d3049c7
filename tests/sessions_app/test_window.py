"""The customer's reply window (wechat-kf-api.md §6.4): 5 sends / 48 h after a message,
3 sends / 60 s after a follow, menu click or scan, one send used per message sent."""

from datetime import UTC, datetime, timedelta

import pytest

from sessions_app import services
from sessions_app.models import Customer
from sessions_app.services import (
    Replies,
    Touch,
    customer_touch,
    customer_window_close,
    customer_window_consume,
    customers_touch_bulk,
    customers_window_replied,
)
from tests.factories import CustomerFactory, OfficialAccountFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def account():
    return OfficialAccountFactory()


def test_a_message_grants_five_sends_for_48_hours(account):
    customer = customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    assert customer.window_remaining == 5
    assert customer.window_expires_at == T0 + timedelta(hours=48)
    assert customer.window_open(T0 + timedelta(hours=47, minutes=59))
    assert not customer.window_open(T0 + timedelta(hours=48))


def test_first_sight_creates_the_customer_with_seen_times(account):
    customer = customer_touch(account, "o_alice", T0, "message")
    assert (customer.first_seen_at, customer.last_seen_at) == (T0, T0)
    assert customer.last_message_at == T0
    assert customer.last_interaction_at == T0
    assert Customer.objects.filter(official_account=account).count() == 1


def test_an_event_grants_three_sends_for_one_minute(account):
    customer = customer_touch(account, "o_bob", T0, Touch.EVENT)
    assert customer.window_remaining == 3
    assert customer.window_expires_at == T0 + timedelta(seconds=60)
    assert customer.last_message_at is None
    assert customer.last_interaction_at == T0


def test_an_event_tops_up_an_open_message_window_without_shortening_it(account):
    customer_touch(account, "o_carol", T0, Touch.MESSAGE)
    customer = Customer.objects.get(openid="o_carol")
    for _ in range(4):
        customer_window_consume(customer)
    customer = customer_touch(account, "o_carol", T0 + timedelta(hours=1), Touch.EVENT)
    assert customer.window_remaining == 3
    assert customer.window_expires_at == T0 + timedelta(hours=48)
    assert customer.last_interaction_at == T0 + timedelta(hours=1)
    assert customer.last_message_at == T0


def test_an_event_leaves_a_larger_budget_alone(account):
    customer_touch(account, "o_cy", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_cy", T0 + timedelta(minutes=1), Touch.EVENT)
    assert customer.window_remaining == 5


def test_a_new_message_tops_the_budget_up_to_five_and_extends_the_window(account):
    customer = customer_touch(account, "o_dan", T0, Touch.MESSAGE)
    customer_window_consume(customer)
    customer_window_consume(customer)
    later = T0 + timedelta(hours=10)
    customer = customer_touch(account, "o_dan", later, Touch.MESSAGE)
    assert customer.window_remaining == 5
    assert customer.window_expires_at == later + timedelta(hours=48)


def test_a_message_after_an_event_window_grants_the_long_window(account):
    customer_touch(account, "o_erin", T0, Touch.EVENT)
    customer = customer_touch(account, "o_erin", T0 + timedelta(seconds=10), Touch.MESSAGE)
    assert customer.window_remaining == 5
    assert customer.window_expires_at == T0 + timedelta(seconds=10, hours=48)


def test_an_event_after_an_expired_window_starts_from_zero(account):
    customer = customer_touch(account, "o_fay", T0, Touch.MESSAGE)
    for _ in range(5):
        customer_window_consume(customer)
    customer = customer_touch(account, "o_fay", T0 + timedelta(days=3), Touch.EVENT)
    assert customer.window_remaining == 3
    assert customer.window_expires_at == T0 + timedelta(days=3, seconds=60)


def test_replaying_a_counted_message_does_not_refill_the_budget(account):
    customer = customer_touch(account, "o_gus", T0, Touch.MESSAGE)
    for _ in range(5):
        customer_window_consume(customer)
    # The history sync (or a WeChat retry) brings the same message again.
    customer = customer_touch(account, "o_gus", T0, Touch.MESSAGE)
    assert customer.window_remaining == 0
    customer = customer_touch(account, "o_gus", T0 - timedelta(minutes=5), Touch.MESSAGE)
    assert customer.window_remaining == 0
    assert customer.first_seen_at == T0 - timedelta(minutes=5)
    assert customer.last_message_at == T0


def test_consume_counts_down_and_stops_at_zero(account):
    customer = customer_touch(account, "o_hal", T0, Touch.EVENT)
    assert [customer_window_consume(customer) for _ in range(4)] == [2, 1, 0, 0]
    customer.refresh_from_db()
    assert customer.window_remaining == 0


def test_consume_works_from_a_stale_instance(account):
    customer_touch(account, "o_ivy", T0, Touch.MESSAGE)
    stale = Customer.objects.get(openid="o_ivy")
    other = Customer.objects.get(openid="o_ivy")
    customer_window_consume(other)
    assert customer_window_consume(stale) == 3


def test_unfollowing_closes_the_window(account):
    customer = customer_touch(account, "o_jay", T0, Touch.MESSAGE)
    customer_window_close(customer)
    customer.refresh_from_db()
    assert customer.window_remaining == 0
    assert not customer.window_open(T0 + timedelta(minutes=1))


def test_bulk_touch_applies_each_customers_latest_message(account):
    CustomerFactory(official_account=account, openid="o_known", first_seen_at=T0, last_seen_at=T0)
    written = customers_touch_bulk(
        account,
        [
            ("o_known", T0 + timedelta(hours=1)),
            ("o_new", T0 + timedelta(hours=2)),
            ("o_known", T0 - timedelta(hours=1)),
            ("o_new", T0 + timedelta(hours=3)),
        ],
    )
    assert written == 2
    known = Customer.objects.get(openid="o_known")
    assert known.first_seen_at == T0 - timedelta(hours=1)
    assert known.last_message_at == T0 + timedelta(hours=1)
    assert known.window_expires_at == T0 + timedelta(hours=49)
    assert known.window_remaining == 5
    new = Customer.objects.get(openid="o_new")
    assert (new.first_seen_at, new.last_seen_at) == (T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    assert new.window_expires_at == T0 + timedelta(hours=51)


def test_bulk_touch_matches_single_touches(account):
    pairs = [("o_a", T0), ("o_b", T0 + timedelta(minutes=1)), ("o_a", T0 + timedelta(minutes=2))]
    customers_touch_bulk(account, pairs)
    other = OfficialAccountFactory()
    for openid, at in pairs:
        customer_touch(other, openid, at, Touch.MESSAGE)
    fields = ["openid", "first_seen_at", "last_seen_at", "last_message_at", "window_expires_at", "window_remaining"]
    bulk = list(Customer.objects.filter(official_account=account).order_by("openid").values(*fields))
    single = list(Customer.objects.filter(official_account=other).order_by("openid").values(*fields))
    assert bulk == single


def test_bulk_touch_of_nothing_writes_nothing(account):
    assert customers_touch_bulk(account, []) == 0
    assert not Customer.objects.exists()


def test_bulk_touch_matches_single_touches_for_customers_with_history(account):
    # (last message counted, window expires, sends left) before the touch
    states = {
        "o_used_up": (T0, T0 + timedelta(hours=48), 0),
        "o_expired": (T0 - timedelta(hours=60), T0 - timedelta(hours=12), 2),
        "o_event_only": (None, T0 + timedelta(seconds=30), 3),
        "o_fresh": (None, None, 0),
    }
    touches = [("o_used_up", T0), ("o_expired", T0 + timedelta(hours=1)),
               ("o_event_only", T0), ("o_fresh", T0 + timedelta(minutes=5)),
               ("o_used_up", T0 - timedelta(hours=1))]
    other = OfficialAccountFactory()
    for acc in (account, other):
        for openid, (last_message, expires, left) in states.items():
            CustomerFactory(official_account=acc, openid=openid, first_seen_at=T0 - timedelta(days=9),
                            last_seen_at=T0 - timedelta(days=1), last_message_at=last_message,
                            window_expires_at=expires, window_remaining=left)
    customers_touch_bulk(account, touches)
    for openid, at in touches:
        customer_touch(other, openid, at, Touch.MESSAGE)
    fields = ["openid", "first_seen_at", "last_seen_at", "last_message_at", "window_expires_at", "window_remaining"]
    bulk = list(Customer.objects.filter(official_account=account).order_by("openid").values(*fields))
    single = list(Customer.objects.filter(official_account=other).order_by("openid").values(*fields))
    assert bulk == single
    used_up = Customer.objects.get(official_account=account, openid="o_used_up")
    assert used_up.window_remaining == 0  # an already-counted message never refills the budget


# ------------------------------------------------------------------ replies from history


@pytest.fixture(params=["postgresql", "portable"])
def replied_path(request, monkeypatch):
    """`customers_window_replied` has a set-based PostgreSQL statement and a Python
    path for other databases; both must give the same answer."""
    if request.param == "portable":
        monkeypatch.setattr(services.connection, "vendor", "sqlite")
    return request.param


def _replies(customer, since_message, since_interaction=0):
    return Replies(customer.openid, customer.last_message_at, customer.last_interaction_at, since_message, since_interaction)


def test_replies_since_the_last_message_use_up_its_budget(account, replied_path):
    customer = customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    untouched = customer_touch(account, "o_bob", T0, Touch.MESSAGE)

    written = customers_window_replied(account, [_replies(customer, 4)])

    assert written == 1
    customer.refresh_from_db()
    untouched.refresh_from_db()
    assert (customer.window_remaining, untouched.window_remaining) == (1, 5)


def test_more_replies_than_the_budget_leave_nothing(account, replied_path):
    customer = customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    customers_window_replied(account, [_replies(customer, 7)])
    customer.refresh_from_db()
    assert customer.window_remaining == 0


def test_replies_never_raise_a_budget_kfadmin_used_up(account, replied_path):
    customer = customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    for _ in range(3):
        customer_window_consume(customer)
    assert customers_window_replied(account, [_replies(customer, 1)]) == 0
    customer.refresh_from_db()
    assert customer.window_remaining == 2


def test_replies_counted_before_a_newer_message_change_nothing(account, replied_path):
    customer = customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    counted = _replies(customer, 4)
    customer_touch(account, "o_alice", T0 + timedelta(minutes=5), Touch.MESSAGE)  # wrote again meanwhile

    assert customers_window_replied(account, [counted]) == 0
    customer.refresh_from_db()
    assert customer.window_remaining == 5


def test_an_event_after_the_message_raises_what_the_replies_left_to_three(account, replied_path):
    customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_alice", T0 + timedelta(minutes=1), Touch.EVENT)
    # 4 replies before the event (5 - 4 = 1, raised to 3), 1 after it.
    customers_window_replied(account, [_replies(customer, 5, since_interaction=1)])
    customer.refresh_from_db()
    assert customer.window_remaining == 2
