"""The customer's reply window (wechat-kf-api.md §6.4): two grants kept apart, 5 sends /
48 h after a message and 3 sends / 60 s after a follow, menu click or scan; a send uses
one of the grant that ends first."""

from datetime import UTC, datetime, timedelta

import pytest

from messaging.selectors import customer_window
from sessions_app import services
from sessions_app.models import Customer
from sessions_app.selectors import customer_window_state
from sessions_app.services import (
    Replies,
    Touch,
    customer_budget_used_up,
    customer_touch,
    customer_window_close,
    customer_window_consume,
    customers_touch_bulk,
    customers_window_replied,
)
from tests.factories import CustomerFactory, OfficialAccountFactory, OutboundMessageFactory

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
    assert (customer.event_remaining, customer.event_expires_at) == (3, T0 + timedelta(seconds=60))
    assert (customer.window_remaining, customer.window_expires_at) == (0, None)  # no message grant
    assert customer.last_message_at is None
    assert customer.last_event_at == customer.last_interaction_at == T0
    assert customer.sends_left(T0 + timedelta(seconds=59)) == 3
    assert not customer.window_running(T0 + timedelta(seconds=60))


def test_a_click_after_the_message_sends_are_used_grants_three_for_a_minute_only(account):
    customer = customer_touch(account, "o_carol", T0, Touch.MESSAGE)
    for _ in range(5):
        customer_window_consume(customer, now=T0 + timedelta(minutes=1))
    click = T0 + timedelta(hours=1)
    customer = customer_touch(account, "o_carol", click, Touch.EVENT)
    # The message grant keeps its 48 h and its count; the click's 3 sends are its own.
    assert (customer.window_remaining, customer.window_expires_at) == (0, T0 + timedelta(hours=48))
    assert (customer.event_remaining, customer.event_expires_at) == (3, click + timedelta(seconds=60))
    assert customer.last_interaction_at == click
    assert customer.last_message_at == T0
    assert customer.sends_left(click + timedelta(seconds=59)) == 3
    after_the_minute = click + timedelta(seconds=61)
    assert customer.sends_left(after_the_minute) == 0
    assert customer.window_running(after_the_minute)  # WeChat answers 45047, not 45015


def test_an_event_beside_an_unused_message_grant_adds_its_own_three(account):
    customer_touch(account, "o_cy", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_cy", T0 + timedelta(minutes=1), Touch.EVENT)
    assert (customer.window_remaining, customer.event_remaining) == (5, 3)
    assert customer.sends_left(T0 + timedelta(minutes=1, seconds=30)) == 8
    assert customer.sends_left(T0 + timedelta(minutes=2)) == 5


def test_a_new_event_resets_its_grant_to_three_not_more(account):
    customer_touch(account, "o_cyd", T0, Touch.EVENT)
    customer = customer_touch(account, "o_cyd", T0 + timedelta(seconds=20), Touch.EVENT)
    assert (customer.event_remaining, customer.event_expires_at) == (3, T0 + timedelta(seconds=80))


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


def test_an_event_after_an_expired_message_grant_gives_its_three_alone(account):
    customer = customer_touch(account, "o_fay", T0, Touch.MESSAGE)
    customer_window_consume(customer, now=T0 + timedelta(seconds=1))
    later = T0 + timedelta(days=3)
    customer = customer_touch(account, "o_fay", later, Touch.EVENT)
    assert customer.sends_left(later) == 3
    assert [g.kind for g in customer.grants(later)] == ["event"]


def test_replaying_a_counted_message_does_not_refill_the_budget(account):
    customer = customer_touch(account, "o_gus", T0, Touch.MESSAGE)
    for _ in range(5):
        customer_window_consume(customer, now=T0)
    # The history sync (or a WeChat retry) brings the same message again.
    customer = customer_touch(account, "o_gus", T0, Touch.MESSAGE)
    assert customer.window_remaining == 0
    customer = customer_touch(account, "o_gus", T0 - timedelta(minutes=5), Touch.MESSAGE)
    assert customer.window_remaining == 0
    assert customer.first_seen_at == T0 - timedelta(minutes=5)
    assert customer.last_message_at == T0


def test_consume_counts_down_and_stops_at_zero(account):
    customer = customer_touch(account, "o_hal", T0, Touch.EVENT)
    assert [customer_window_consume(customer, now=T0) for _ in range(4)] == [2, 1, 0, 0]
    customer.refresh_from_db()
    assert customer.event_remaining == 0


def test_consume_works_from_a_stale_instance(account):
    customer_touch(account, "o_ivy", T0, Touch.MESSAGE)
    stale = Customer.objects.get(openid="o_ivy")
    other = Customer.objects.get(openid="o_ivy")
    customer_window_consume(other, now=T0)
    assert customer_window_consume(stale, now=T0) == 3


def test_a_send_spends_the_grant_that_ends_first(account):
    customer_touch(account, "o_ike", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_ike", T0 + timedelta(seconds=10), Touch.EVENT)
    at = T0 + timedelta(seconds=20)
    assert [customer_window_consume(customer, now=at) for _ in range(4)] == [7, 6, 5, 4]
    assert (customer.event_remaining, customer.window_remaining) == (0, 4)


def test_a_message_grant_ending_before_the_click_is_spent_first(account):
    customer_touch(account, "o_ida", T0, Touch.MESSAGE)
    click = T0 + timedelta(hours=48, seconds=-30)
    customer = customer_touch(account, "o_ida", click, Touch.EVENT)
    customer_window_consume(customer, now=click + timedelta(seconds=1))
    assert (customer.window_remaining, customer.event_remaining) == (4, 3)


def test_consume_of_an_expired_grant_spends_nothing(account):
    customer_touch(account, "o_ina", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_ina", T0 + timedelta(minutes=1), Touch.EVENT)
    assert customer_window_consume(customer, now=T0 + timedelta(minutes=5)) == 4
    assert (customer.window_remaining, customer.event_remaining) == (4, 3)


def test_unfollowing_closes_the_window(account):
    customer_touch(account, "o_jay", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_jay", T0 + timedelta(seconds=5), Touch.EVENT)
    customer_window_close(customer, now=T0 + timedelta(seconds=10))
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (0, 0)
    assert not customer.window_running(T0 + timedelta(seconds=11))


def test_budget_used_up_leaves_both_grants_running_with_no_sends(account):
    customer_touch(account, "o_jo", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_jo", T0 + timedelta(seconds=5), Touch.EVENT)
    customer_budget_used_up(customer)
    customer.refresh_from_db()
    assert customer.sends_left(T0 + timedelta(seconds=10)) == 0
    assert customer.window_running(T0 + timedelta(seconds=10))


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
    # (last message counted, its grant expires, sends left; the event grant) before the touch
    states = {
        "o_used_up": (T0, T0 + timedelta(hours=48), 0, None),
        "o_expired": (T0 - timedelta(hours=60), T0 - timedelta(hours=12), 2, None),
        "o_event_only": (None, None, 0, (T0 - timedelta(seconds=30), 3)),
        "o_both": (T0 - timedelta(hours=1), T0 + timedelta(hours=47), 1, (T0 - timedelta(seconds=10), 2)),
        "o_fresh": (None, None, 0, None),
    }
    touches = [("o_used_up", T0), ("o_expired", T0 + timedelta(hours=1)),
               ("o_event_only", T0), ("o_both", T0), ("o_fresh", T0 + timedelta(minutes=5)),
               ("o_used_up", T0 - timedelta(hours=1))]
    other = OfficialAccountFactory()
    for acc in (account, other):
        for openid, (last_message, expires, left, event) in states.items():
            event_at, event_left = event or (None, 0)
            CustomerFactory(official_account=acc, openid=openid, first_seen_at=T0 - timedelta(days=9),
                            last_seen_at=T0 - timedelta(days=1), last_message_at=last_message,
                            window_expires_at=expires, window_remaining=left, last_event_at=event_at,
                            event_expires_at=event_at and event_at + timedelta(seconds=60),
                            event_remaining=event_left)
    customers_touch_bulk(account, touches)
    for openid, at in touches:
        customer_touch(other, openid, at, Touch.MESSAGE)
    fields = ["openid", "first_seen_at", "last_seen_at", *Customer.WINDOW_FIELDS]
    bulk = list(Customer.objects.filter(official_account=account).order_by("openid").values(*fields))
    single = list(Customer.objects.filter(official_account=other).order_by("openid").values(*fields))
    assert bulk == single
    used_up = Customer.objects.get(official_account=account, openid="o_used_up")
    assert used_up.window_remaining == 0  # an already-counted message never refills the budget
    both = Customer.objects.get(official_account=account, openid="o_both")
    # A message resets its own grant and leaves the event's alone.
    assert (both.window_remaining, both.event_remaining) == (5, 2)


# ------------------------------------------------------------------ replies from history


@pytest.fixture(params=["postgresql", "portable"])
def replied_path(request, monkeypatch):
    """`customers_window_replied` has a set-based PostgreSQL statement and a Python
    path for other databases; both must give the same answer."""
    if request.param == "portable":
        monkeypatch.setattr(services.connection, "vendor", "sqlite")
    return request.param


def _replies(customer, since_message, in_event=0, in_event_before_message=0):
    return Replies(
        customer.openid, customer.last_message_at, customer.last_event_at, since_message, in_event,
        in_event_before_message,
    )


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
        customer_window_consume(customer, now=T0)
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


def test_replies_in_an_events_minute_use_its_grant_and_the_others_the_messages(account, replied_path):
    customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_alice", T0 + timedelta(minutes=1), Touch.EVENT)
    # 4 replies before the click, 1 in its minute.
    customers_window_replied(account, [_replies(customer, 5, in_event=1)])
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (1, 2)


def test_replies_beyond_the_events_three_in_its_minute_use_the_message_grant(account, replied_path):
    customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_alice", T0 + timedelta(minutes=1), Touch.EVENT)
    customers_window_replied(account, [_replies(customer, 4, in_event=4)])
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (4, 0)


def test_replies_after_a_click_just_before_the_message_use_the_click_first(account, replied_path):
    customer_touch(account, "o_alice", T0, Touch.EVENT)
    customer = customer_touch(account, "o_alice", T0 + timedelta(seconds=10), Touch.MESSAGE)
    # One reply between the click and the message, three after the message in the
    # click's minute: the click's three, then one of the message's.
    customers_window_replied(account, [_replies(customer, 3, in_event=4, in_event_before_message=1)])
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (4, 0)


def test_replies_counted_before_a_newer_click_still_lower_the_message_grant(account, replied_path):
    customer_touch(account, "o_alice", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_alice", T0 + timedelta(minutes=1), Touch.EVENT)
    counted = _replies(customer, 3, in_event=1)
    customer_touch(account, "o_alice", T0 + timedelta(minutes=2), Touch.EVENT)  # clicked again meanwhile

    assert customers_window_replied(account, [counted]) == 1
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (3, 3)


def test_replies_to_a_customer_who_only_clicked_use_the_clicks_grant(account, replied_path):
    customer = customer_touch(account, "o_alice", T0, Touch.EVENT)
    customers_window_replied(account, [_replies(customer, 0, in_event=2)])
    customer.refresh_from_db()
    assert (customer.window_remaining, customer.event_remaining) == (0, 1)


def test_a_click_in_the_second_of_the_message_still_grants_its_three(account):
    customer_touch(account, "o_kim", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_kim", T0, Touch.EVENT)
    assert (customer.window_remaining, customer.event_remaining) == (5, 3)


def test_a_redelivered_click_does_not_refill_its_grant(account):
    customer = customer_touch(account, "o_kit", T0, Touch.EVENT)
    customer_window_consume(customer, now=T0)
    customer = customer_touch(account, "o_kit", T0, Touch.EVENT)
    assert customer.event_remaining == 2


# ------------------------------------------------------------------ what the box reads


def test_the_state_after_a_click_beside_a_used_up_message_grant(account):
    customer = customer_touch(account, "o_lee", T0, Touch.MESSAGE)
    for _ in range(5):
        customer_window_consume(customer, now=T0)
    click = T0 + timedelta(hours=1)
    customer = customer_touch(account, "o_lee", click, Touch.EVENT)

    state = customer_window_state(customer=customer, now=click + timedelta(seconds=18))
    assert (state.is_open, state.remaining, state.budget, state.grant) == (True, 3, 3, "event")
    assert [(g.kind, g.remaining, g.seconds_left) for g in state.usable_grants] == [("event", 3, 42)]
    assert state.used_up_after  # the message grant runs on with nothing left
    assert state.expires_at == T0 + timedelta(hours=48)
    assert state.typing_allowed  # the click was 18 s ago

    later = customer_window_state(customer=customer, now=click + timedelta(seconds=61))
    assert (later.is_open, later.budget_used_up, later.closed_early) == (False, True, False)
    assert not later.typing_allowed


def test_queued_messages_count_against_the_grant_used_first(account):
    customer_touch(account, "o_lou", T0, Touch.MESSAGE)
    customer = customer_touch(account, "o_lou", T0 + timedelta(seconds=10), Touch.EVENT)
    OutboundMessageFactory.create_batch(4, official_account=account, customer=customer, status="queued")

    state = customer_window(customer=customer, now=T0 + timedelta(seconds=20))
    assert [(g.kind, g.remaining) for g in state.grants] == [("event", 0), ("message", 4)]
    assert (state.remaining, state.pending, state.grant, state.budget) == (4, 4, "message", 5)


def test_a_closed_window_after_an_unfollow_is_told_from_one_that_ran_out(account):
    customer_touch(account, "o_lyn", T0, Touch.EVENT)
    customer = customer_touch(account, "o_lyn", T0 + timedelta(seconds=5), Touch.EVENT)
    ran_out = customer_window_state(customer=customer, now=T0 + timedelta(minutes=2))
    assert (ran_out.is_open, ran_out.budget_used_up, ran_out.closed_early) == (False, False, False)

    customer_window_close(customer, now=T0 + timedelta(seconds=20))
    closed = customer_window_state(customer=customer, now=T0 + timedelta(seconds=30))
    assert (closed.is_open, closed.budget_used_up, closed.closed_early, closed.seconds_left) == (False, False, True, 0)


def test_the_migration_moves_an_events_part_of_the_old_merged_window_to_its_grant(account):
    from importlib import import_module

    from django.apps import apps

    split = import_module("sessions_app.migrations.0002_separate_reply_grants").split_merged_windows
    # Before: one window. A follower's click only; and a click that stretched a
    # message's window past its 48 h.
    CustomerFactory(official_account=account, openid="o_clicked", last_interaction_at=T0,
                    window_expires_at=T0 + timedelta(seconds=60), window_remaining=3)
    CustomerFactory(official_account=account, openid="o_stretched", last_message_at=T0 - timedelta(hours=48),
                    last_interaction_at=T0 - timedelta(seconds=10),
                    window_expires_at=T0 + timedelta(seconds=50), window_remaining=4)
    CustomerFactory(official_account=account, openid="o_wrote", last_message_at=T0, last_interaction_at=T0,
                    window_expires_at=T0 + timedelta(hours=48), window_remaining=5)

    split(apps, None)

    fields = ["openid", "window_expires_at", "window_remaining", "last_event_at", "event_expires_at", "event_remaining"]
    assert list(Customer.objects.order_by("openid").values_list(*fields)) == [
        ("o_clicked", None, 0, T0, T0 + timedelta(seconds=60), 3),
        ("o_stretched", T0, 4, T0 - timedelta(seconds=10), T0 + timedelta(seconds=50), 3),
        ("o_wrote", T0 + timedelta(hours=48), 5, None, None, 0),
    ]
