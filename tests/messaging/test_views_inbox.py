"""The inbox (open conversations, who waited longest first, unread per person), moving
between conversations, the seen mark, the alert poll and the alert settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AlertPreference, AuditEvent, SyncState
from messaging.models import ConversationSeen
from messaging.selectors import inbox_sessions, unanswered_over_count
from sessions_app.models import KfSession
from tests.factories import AgentFactory, agent_user, auditor, outsider, sent_to_login
from tests.sessions_app.test_views_support import (
    archive,
    htmx,
    served_customer,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

INBOX = reverse("messaging:inbox")
ALERTS = reverse("messaging:alerts")
SETTINGS = reverse("accounts:alert_settings")


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def alice(account):
    return AgentFactory(official_account=account, kf_account="alice@test_oa", kf_nick="Alice", online_status=1)


@pytest.fixture
def bob(account):
    return AgentFactory(official_account=account, kf_account="bob@test_oa", kf_nick="Bob", online_status=1)


@pytest.fixture
def alice_client(account, alice):
    client = Client()
    client.force_login(agent_user(account, agent=alice, username="alice"))
    return client


def _served(account, agent, openid, *, wrote_minutes_ago: float, text: str = "在吗？", replied_minutes_ago=None):
    session = served_customer(account, agent, openid=openid, text=text, archived=False)
    now = timezone.now()
    archive(account, openid, text, opercode=2003, worker=agent.kf_account, at=now - timedelta(minutes=wrote_minutes_ago))
    if replied_minutes_ago is not None:
        archive(account, openid, "您好", opercode=2002, worker=agent.kf_account,
                at=now - timedelta(minutes=replied_minutes_ago))
    return session


# ------------------------------------------------------------------ the selector


def test_the_inbox_puts_who_waited_longest_for_an_answer_first(account, alice, boss):
    _served(account, alice, "o_short", wrote_minutes_ago=1)
    _served(account, alice, "o_long", wrote_minutes_ago=9)
    _served(account, alice, "o_answered", wrote_minutes_ago=20, replied_minutes_ago=15)

    inbox = inbox_sessions(account=account, user=boss, agent=alice)

    assert [row.session.customer.openid for row in inbox.rows] == ["o_long", "o_short", "o_answered"]
    long, short, answered = inbox.rows
    assert long.waited >= timedelta(minutes=9) and long.over  # past the 2-minute default
    assert short.waited < timedelta(minutes=2) and not short.over
    assert answered.waited is None and answered.last_text == "您好" and not answered.last_from_customer


def test_unread_counts_the_customers_messages_since_this_person_last_looked(account, alice, boss):
    session = _served(account, alice, "o_unread", wrote_minutes_ago=5)
    archive(account, "o_unread", "还在吗", opercode=2003, worker=alice.kf_account, at=timezone.now() - timedelta(minutes=1))
    ConversationSeen.objects.create(
        user=boss, official_account=account, openid="o_unread", seen_at=timezone.now() - timedelta(minutes=3)
    )

    mine = inbox_sessions(account=account, user=boss).rows[0]
    session.accepted_at = session.created_at = timezone.now() - timedelta(minutes=10)
    session.save()
    never_looked = inbox_sessions(account=account, user=agent_user(account, agent=alice)).rows[0]

    assert mine.unread == 1
    assert never_looked.unread == 2


# ------------------------------------------------------------------ the inbox page


def test_an_agent_sees_only_their_own_conversations(alice_client, account, alice, bob):
    _served(account, alice, "o_alices", wrote_minutes_ago=3, text="我的包裹")
    _served(account, bob, "o_bobs", wrote_minutes_ago=3, text="别人的")

    body = alice_client.get(INBOX).content.decode()

    assert "My conversations" in body and "o_alices" in body and "我的包裹" in body
    assert "o_bobs" not in body


def test_a_supervisor_sees_all_or_one_agent_and_the_choice_is_kept(boss_client, account, alice, bob):
    _served(account, alice, "o_alices", wrote_minutes_ago=3)
    _served(account, bob, "o_bobs", wrote_minutes_ago=3)

    everyone = boss_client.get(INBOX).content.decode()
    bobs = boss_client.get(INBOX, {"agent": bob.pk}, **htmx("inbox")).content.decode()
    again = boss_client.get(INBOX, **htmx("inbox")).content.decode()

    assert "o_alices" in everyone and "o_bobs" in everyone
    assert "o_bobs" in bobs and "o_alices" not in bobs
    assert "o_alices" not in again  # the pick is remembered for the polls and pages


def test_the_inbox_poll_answers_the_region(boss_client, account, alice):
    _served(account, alice, "o_poll", wrote_minutes_ago=3)

    response = boss_client.get(INBOX, **htmx("inbox"))

    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="inbox"' in body and "<html" not in body
    assert "o_poll" in body and "No messages read from WeChat yet." in body


def test_the_inbox_is_empty_with_a_sentence(alice_client):
    assert "No open conversations." in alice_client.get(INBOX).content.decode()


def test_the_inbox_needs_a_login(client):
    assert sent_to_login(client.get(INBOX))
    assert sent_to_login(client.get(INBOX, **htmx("inbox")), htmx=True)


def test_auditors_have_no_inbox(account):
    client = Client()
    client.force_login(auditor(account))
    assert client.get(INBOX).status_code == 403
    assert client.get(ALERTS, **htmx("alerts")).status_code == 403


def test_another_accounts_supervisor_sees_none_of_its_conversations(account, alice):
    _served(account, alice, "o_private", wrote_minutes_ago=3)
    client = Client()
    client.force_login(outsider())

    body = client.get(INBOX).content.decode()

    assert "o_private" not in body
    # Picking an agent of the other account shows nothing either.
    assert "o_private" not in client.get(INBOX, {"agent": alice.pk}).content.decode()


def test_the_inbox_takes_only_get(boss_client):
    assert boss_client.post(INBOX).status_code == 405


# ------------------------------------------------------------------ moving and seen


def test_moving_to_a_conversation_answers_its_region_and_marks_it_seen(boss_client, account, alice, boss):
    session = _served(account, alice, "o_move", wrote_minutes_ago=3, text="换一个")
    url = reverse("messaging:conversation", args=["o_move"])

    response = boss_client.get(url, **htmx("conversation-region"))

    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="conversation-region"' in body and "换一个" in body and 'id="inbox"' in body
    assert ConversationSeen.objects.filter(user=boss, openid="o_move").exists()
    assert inbox_sessions(account=account, user=boss).rows[0].session == session
    assert inbox_sessions(account=account, user=boss).rows[0].unread == 0
    # The conversation keeps the account's live tail running.
    tail = SyncState.objects.get(official_account=account, job=SyncState.Job.TAIL)
    assert tail.watched_until > timezone.now()


def test_a_timeline_poll_does_not_mark_it_seen(boss_client, account, alice, boss):
    _served(account, alice, "o_poll_seen", wrote_minutes_ago=3)
    url = reverse("messaging:conversation", args=["o_poll_seen"])

    boss_client.get(url, **htmx("timeline"))

    assert not ConversationSeen.objects.filter(user=boss).exists()


def test_the_seen_mark_is_a_post_by_someone_who_may_open_the_conversation(alice_client, boss_client, account, alice, bob):
    _served(account, bob, "o_not_alices", wrote_minutes_ago=3)
    url = reverse("messaging:seen", args=["o_not_alices"])

    assert boss_client.post(url).status_code == 204
    assert boss_client.get(url).status_code == 405
    assert alice_client.post(url).status_code == 404
    assert ConversationSeen.objects.filter(openid="o_not_alices").count() == 1
    # Not an audit entry: looking changes nothing anyone else sees.
    assert not AuditEvent.objects.exclude(action__in=["login", "logout"]).exists()


# ------------------------------------------------------------------ alerts


def test_the_alert_poll_counts_waiting_customers_and_my_unread_messages(alice_client, account, alice):
    waiting_customer(account, openid="o_waits")
    _served(account, alice, "o_mine", wrote_minutes_ago=1, text="新消息")

    response = alice_client.get(ALERTS, **htmx("alerts"))

    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-waiting="1"' in body and 'data-unread="1"' in body
    assert 'data-latest-name="o_mine"' in body and 'data-latest-text="新消息"' in body
    assert 'data-title-count="1"' in body and 'data-notify="0"' in body


def test_supervisors_are_alerted_past_the_thresholds(boss_client, account, alice):
    waiting_customer(account, openid="o_long_queue")
    KfSession.objects.filter(customer__openid="o_long_queue").update(created_at=timezone.now() - timedelta(minutes=4))
    _served(account, alice, "o_unanswered", wrote_minutes_ago=3)

    body = boss_client.get(ALERTS, **htmx("alerts")).content.decode()

    assert 'data-waiting-over="1"' in body and 'data-unanswered-over="1"' in body and 'data-supervisor="1"' in body


def test_the_unanswered_count_covers_every_session_not_only_the_inbox_page(account, alice, boss):
    for n in range(4):
        _served(account, alice, f"o_over_{n}", wrote_minutes_ago=5 + n)
    _served(account, alice, "o_recent", wrote_minutes_ago=1)
    _served(account, alice, "o_answered", wrote_minutes_ago=9, replied_minutes_ago=8)

    assert unanswered_over_count(account=account) == 4  # past the 2-minute default
    assert inbox_sessions(account=account, user=boss).over == 4  # the same sessions as the inbox says
    assert inbox_sessions(account=account, user=boss, limit=2).over == 2  # the page alone would undercount


def test_the_inbox_poll_reads_a_fixed_number_of_queries_whatever_the_rows(alice_client, account, alice):
    def poll_queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(INBOX, **htmx("inbox")).status_code == 200
        return len(queries)

    _served(account, alice, "o_first", wrote_minutes_ago=3)
    poll_queries()  # the first request of a session reads more (the login's session row)
    one = poll_queries()
    for n in range(6):
        session = _served(account, alice, f"o_more_{n}", wrote_minutes_ago=2)
        session.customer.remark_name = f"老客户 {n}"
        session.customer.save()
    assert poll_queries() == one


def test_the_alert_poll_without_htmx_goes_to_the_settings(boss_client):
    response = boss_client.get(ALERTS)
    assert response.status_code == 302 and response["Location"] == SETTINGS


def test_the_alert_poll_needs_a_login(client):
    assert sent_to_login(client.get(ALERTS, **htmx("alerts")), htmx=True)


def test_every_page_of_someone_who_serves_customers_polls_the_alerts(alice_client, account):
    client = Client()
    client.force_login(auditor(account, username="reader"))
    assert 'id="alerts"' in alice_client.get(INBOX).content.decode()
    assert 'id="alerts"' not in client.get(reverse("messaging:history")).content.decode()


# ------------------------------------------------------------------ settings


def test_a_person_chooses_their_alerts(alice_client, account):
    response = alice_client.post(SETTINGS, {"form": "preference", "title_count": "on", "notify": "on"})

    assert response.status_code == 302
    preference = AlertPreference.objects.get(user__username="alice")
    assert (preference.title_count, preference.sound, preference.notify) == (True, False, True)
    assert AuditEvent.objects.filter(action="alert_settings", actor__username="alice").exists()
    page = alice_client.get(SETTINGS).content.decode()
    assert "Allow notifications in this browser" in page and "data-notify-ask" in page
    assert "Thresholds for" not in page  # agents do not set them


def test_a_supervisor_sets_the_thresholds_audited(boss_client, account):
    response = boss_client.post(SETTINGS, {"form": "thresholds", "queue_wait_minutes": "5", "unanswered_minutes": "4"})

    account.refresh_from_db()
    assert response.status_code == 302
    assert (account.alert_queue_wait_seconds, account.alert_unanswered_seconds) == (300, 240)
    event = AuditEvent.objects.get(action="alert_thresholds")
    assert event.params["before"] == {"alert_queue_wait_seconds": 180, "alert_unanswered_seconds": 120}


def test_bad_thresholds_say_why_and_change_nothing(boss_client, account):
    response = boss_client.post(SETTINGS, {"form": "thresholds", "queue_wait_minutes": "0", "unanswered_minutes": "x"})

    account.refresh_from_db()
    body = response.content.decode()
    assert response.status_code == 200
    assert "greater than or equal to 1" in body and "Enter a whole number." in body
    assert account.alert_queue_wait_seconds == 180
    assert not AuditEvent.objects.filter(action="alert_thresholds").exists()


def test_agents_cannot_set_thresholds(alice_client, account):
    response = alice_client.post(SETTINGS, {"form": "thresholds", "queue_wait_minutes": "5", "unanswered_minutes": "4"})
    account.refresh_from_db()
    assert response.status_code == 403 and account.alert_queue_wait_seconds == 180


def test_settings_need_a_login_and_a_serving_role(client, account):
    assert sent_to_login(client.get(SETTINGS))
    client.force_login(auditor(account))
    assert client.get(SETTINGS).status_code == 403


def test_settings_take_get_and_post_only(boss_client):
    assert boss_client.put(SETTINGS).status_code == 405


def test_thresholds_are_highlighted_in_the_queue(boss_client, account):
    waiting_customer(account, openid="o_queue_over")
    KfSession.objects.filter(customer__openid="o_queue_over").update(created_at=timezone.now() - timedelta(minutes=4))

    body = boss_client.get(reverse("sessions_app:queue")).content.decode()

    assert 'class="queue-item over"' in body


def test_the_conversation_says_up_to_when_it_holds_wechats_records(boss_client, account, alice):
    _served(account, alice, "o_as_of", wrote_minutes_ago=1)
    url = reverse("messaging:conversation", args=["o_as_of"])
    assert "No messages read from WeChat yet." in boss_client.get(url).content.decode()

    stored_until = timezone.now().replace(microsecond=0)
    SyncState.objects.update_or_create(
        official_account=account, job=SyncState.Job.TAIL, defaults={"cursor": stored_until}
    )
    body = boss_client.get(url, **htmx("conversation-session")).content.decode()

    local = timezone.localtime(stored_until, account.zone)
    assert f"Messages and reply window as of {local:%H:%M:%S}" in body
    assert "read from WeChat every 5 s" in body

    SyncState.objects.filter(official_account=account, job=SyncState.Job.TAIL).update(
        cursor=stored_until - timedelta(minutes=10)
    )
    stale = boss_client.get(url, **htmx("conversation-session")).content.decode()
    assert "read from WeChat every few minutes while no session is open" in stale


# ------------------------------------------------------------------ a large team


def test_a_large_teams_inbox_picker_is_a_search_field_that_takes_a_kf_account(boss_client, account, alice, bob, settings):
    settings.AGENT_SELECT_MAX = 1
    _served(account, alice, "o_alice_customer", wrote_minutes_ago=3)
    _served(account, bob, "o_bob_customer", wrote_minutes_ago=2)

    everyone = boss_client.get(INBOX, **htmx("inbox")).content.decode()
    picked = boss_client.get(INBOX, {"agent": "bob@test_oa"}, **htmx("inbox")).content.decode()
    unknown = boss_client.get(INBOX, {"agent": "carol@test_oa"}, **htmx("inbox")).content.decode()

    assert '<select id="inbox-agent"' not in everyone and 'list="inbox-agent-options"' in everyone
    assert "o_alice_customer" in everyone and "o_bob_customer" in everyone
    assert 'value="bob@test_oa"' in picked and "o_alice_customer" not in picked and "o_bob_customer" in picked
    assert f"?agent={bob.pk}" in picked  # the poll keeps the choice
    assert "No listed agent has the kf account “carol@test_oa”" in unknown and "o_alice_customer" in unknown
