"""Who the customer is: the conversation's side panel (facts, sessions, notes), its
edits, search within the conversation, jumping to a date, and remark names shown
wherever an openid is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from messaging.selectors import conversation_record_on_or_after, customer_facts
from sessions_app.models import Customer, CustomerNote, KfSession
from tests.factories import (
    AgentFactory,
    CustomerFactory,
    KfSessionFactory,
    OfficialAccountFactory,
    OutboundMessageFactory,
    agent_user,
    auditor,
    aware,
    outsider,
    sent_to_login,
    supervisor,
)
from tests.sessions_app.test_views_support import archive, htmx

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

OPENID = "o_wang_0001"


def url(name, openid=OPENID):
    return reverse(f"messaging:{name}", args=[openid])


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def alice(account):
    return AgentFactory(official_account=account, kf_account="alice@test_oa", kf_nick="Alice")


@pytest.fixture
def customer(account, alice):
    customer = CustomerFactory(official_account=account, openid=OPENID, first_seen_at=aware(2025, 3, 2, 8))
    archive(account, OPENID, "我要退款", at=aware(2025, 3, 1, 9, 0))
    archive(account, OPENID, "好的，马上处理", opercode=2002, worker=alice.kf_account, at=aware(2025, 3, 1, 9, 1))
    archive(account, OPENID, "快递到哪了？", at=aware(2025, 3, 5, 10, 0))
    KfSessionFactory(
        official_account=account, customer=customer, agent=alice, state=KfSession.State.CLOSED,
        created_at=aware(2025, 3, 1, 9, 0), closed_at=aware(2025, 3, 1, 9, 30),
    )
    return customer


@pytest.fixture
def boss_client(client, account):
    client.force_login(supervisor(account))
    return client


# ------------------------------------------------------------------ selectors


def test_the_facts_count_the_archive_and_take_the_earliest_sighting(account, customer, alice):
    OutboundMessageFactory(official_account=account, customer=customer, status="sent")
    facts = customer_facts(account=account, openid=OPENID, customer=customer)
    assert facts.first_seen_at == aware(2025, 3, 1, 9, 0)  # the archive knew them before kfadmin saw them
    assert (facts.from_customer, facts.from_agents, facts.sent_from_kfadmin) == (2, 1, 1)
    assert facts.last_record_at == aware(2025, 3, 5, 10, 0)
    assert [(s.agent, s.state) for s in facts.sessions] == [(alice, "closed")] and facts.sessions_total == 1


def test_a_customer_only_the_archive_knows_has_facts_too(account, customer):
    facts = customer_facts(account=account, openid=OPENID, customer=None)
    assert (facts.from_customer, facts.sessions, facts.first_seen_at) == (2, [], aware(2025, 3, 1, 9, 0))


def test_a_date_finds_its_first_record_or_the_nearest_before(account, customer):
    first_of_5th = customer.official_account.records.get(text="快递到哪了？")
    last_before = customer.official_account.records.get(text="好的，马上处理")
    assert conversation_record_on_or_after(account=account, openid=OPENID, at=aware(2025, 3, 3)) == first_of_5th.pk
    assert conversation_record_on_or_after(account=account, openid=OPENID, at=aware(2025, 4, 1)) == first_of_5th.pk
    assert conversation_record_on_or_after(account=account, openid="o_nobody", at=aware(2025, 4, 1)) is None
    assert last_before.pk < first_of_5th.pk


# ------------------------------------------------------------------ the panel


def test_the_panel_shows_who_the_customer_is(boss_client, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name="王女士", tags=["VIP"])
    CustomerNote.objects.create(customer=customer, author_label="supervisor", text="上次退款已处理")

    response = boss_client.get(url("customer_panel"), **htmx("customer-panel"))

    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<section id="customer-panel"')
    for expected in ("王女士", OPENID, "VIP", "上次退款已处理", "2025-03-01 09:00", "2 from the customer · 1 from agents", "Alice"):
        assert expected in body, expected
    assert "user-info API" in body  # says why WeChat's follow state is not shown
    assert url("customer_profile") in body and url("customer_note") in body


def test_the_panel_without_htmx_is_a_page(boss_client, customer):
    body = boss_client.get(url("customer_panel")).content.decode()
    assert "<html" in body and "Back to the conversation" in body


def test_the_conversation_page_loads_the_panel_and_names_the_customer(boss_client, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name="王女士")
    body = boss_client.get(url("conversation")).content.decode()
    assert f'hx-get="{url("customer_panel")}"' in body
    assert "王女士" in body and OPENID in body
    assert "Keyboard shortcuts" in body and 'accesskey="m"' in body


def test_an_auditor_reads_the_panel_but_changes_nothing(client, account, customer):
    client.force_login(auditor(account))
    body = client.get(url("customer_panel"), **htmx()).content.decode()
    assert "2 from the customer" in body and url("customer_profile") not in body
    assert client.post(url("customer_profile"), {"remark_name": "x", "tags": ""}).status_code == 403
    assert client.post(url("customer_note"), {"text": "x"}).status_code == 403
    customer.refresh_from_db()
    assert customer.remark_name == "" and not CustomerNote.objects.exists()


def test_an_agent_sees_the_panel_of_their_own_customers_only(client, account, customer, alice):
    client.force_login(agent_user(account, agent=alice))
    assert client.get(url("customer_panel"), **htmx()).status_code == 200
    stranger = CustomerFactory(official_account=account, openid="o_stranger")
    archive(account, stranger.openid, "hi")
    assert client.get(url("customer_panel", stranger.openid), **htmx()).status_code == 404
    assert client.post(url("customer_profile", stranger.openid), {"remark_name": "x", "tags": ""}).status_code == 404


def test_another_account_cannot_reach_the_panel(client, customer):
    client.force_login(outsider())
    assert client.get(url("customer_panel"), **htmx()).status_code == 404
    assert client.post(url("customer_note"), {"text": "x"}).status_code == 404


def test_the_panel_needs_a_login(client, customer):
    assert sent_to_login(client.get(url("customer_panel")))
    assert sent_to_login(client.get(url("customer_panel"), **htmx("customer-panel")), htmx=True)
    assert sent_to_login(client.post(url("customer_profile"), {"remark_name": "x"}))


def test_the_panel_takes_no_post_and_the_edits_no_get(boss_client, customer):
    assert boss_client.post(url("customer_panel")).status_code == 405
    assert boss_client.get(url("customer_profile")).status_code == 405
    assert boss_client.get(url("customer_note")).status_code == 405


# ------------------------------------------------------------------ edits


def test_renaming_with_htmx_answers_the_fresh_panel_and_audits(boss_client, customer):
    response = boss_client.post(url("customer_profile"), {"remark_name": "王女士", "tags": "VIP, 退款"}, **htmx("customer-panel"))

    customer.refresh_from_db()
    body = response.content.decode()
    assert (customer.remark_name, customer.tags) == ("王女士", ["VIP", "退款"])
    assert response.status_code == 200 and body.lstrip().startswith('<section id="customer-panel"')
    assert "The customer&#x27;s name and tags are saved." in body or "The customer's name and tags are saved." in body
    assert AuditEvent.objects.filter(action="customer_update", target=OPENID).count() == 1


def test_renaming_without_htmx_redirects_to_the_conversation(boss_client, customer):
    response = boss_client.post(url("customer_profile"), {"remark_name": "王女士", "tags": ""})
    assert response.status_code == 302 and response["Location"] == url("conversation") + "#customer-panel"


def test_a_bad_profile_says_why_and_changes_nothing(boss_client, customer):
    response = boss_client.post(url("customer_profile"), {"remark_name": "名" * 65, "tags": ""}, **htmx("customer-panel"))
    assert response.status_code == 422
    assert "Ensure this value has at most 64 characters" in response.content.decode()
    customer.refresh_from_db()
    assert customer.remark_name == "" and not AuditEvent.objects.filter(action="customer_update").exists()


def test_a_note_is_added_with_its_author(client, account, customer, alice):
    person = agent_user(account, agent=alice)
    client.force_login(person)
    response = client.post(url("customer_note"), {"text": "喜欢顺丰"}, **htmx("customer-panel"))
    assert response.status_code == 200 and "喜欢顺丰" in response.content.decode()
    note = CustomerNote.objects.get()
    assert (note.customer, note.author, note.text) == (customer, person, "喜欢顺丰")


def test_an_empty_note_is_refused(boss_client, customer):
    response = boss_client.post(url("customer_note"), {"text": " "}, **htmx("customer-panel"))
    assert response.status_code == 422 and "Write the note first." in response.content.decode()
    assert not CustomerNote.objects.exists()


def _note_delete_url(note):
    return reverse("messaging:customer_note_delete", args=[note.customer.openid, note.pk])


def test_a_note_is_removed_by_its_author_after_a_confirmation(client, account, customer, alice):
    person = agent_user(account, agent=alice)
    client.force_login(person)
    client.post(url("customer_note"), {"text": "电话 138 0000 0000"})
    note = CustomerNote.objects.get()

    panel = client.get(url("customer_panel")).content.decode()
    assert _note_delete_url(note) in panel
    asked = client.get(_note_delete_url(note), **htmx("modal"))
    assert asked.status_code == 200 and "Remove this note?" in asked.content.decode() and "<dialog" in asked.content.decode()
    assert CustomerNote.objects.exists()  # asking removes nothing

    removed = client.post(_note_delete_url(note), **htmx("customer-panel"))

    body = removed.content.decode()
    assert removed.status_code == 200 and "138 0000 0000" not in body and "No notes yet." in body
    assert '<div id="modal" data-modal-host hx-swap-oob="true"></div>' in body  # the dialog closes
    assert not CustomerNote.objects.exists()
    event = AuditEvent.objects.get(action="customer_note_delete")
    assert event.target == OPENID and "138" not in str(event.params)  # the text is not kept


def test_a_supervisor_may_remove_anyones_note_and_another_agent_may_not(client, account, customer, alice):
    author = agent_user(account, agent=alice)
    note = CustomerNote.objects.create(customer=customer, author=author, author_label=author.username, text="VIP")
    bob = AgentFactory(official_account=account)
    KfSessionFactory(official_account=account, customer=customer, agent=bob, state=KfSession.State.OPEN)
    client.force_login(agent_user(account, agent=bob, username="bob"))  # serves the customer now

    assert _note_delete_url(note) not in client.get(url("customer_panel")).content.decode()
    assert client.post(_note_delete_url(note)).status_code == 403
    assert CustomerNote.objects.exists()

    reader = Client()
    reader.force_login(auditor(account))
    assert reader.post(_note_delete_url(note)).status_code == 403
    boss = Client()
    boss.force_login(supervisor(account))
    assert boss.post(_note_delete_url(note)).status_code == 302  # without htmx: back to the conversation
    assert not CustomerNote.objects.exists()


def test_a_note_of_another_account_or_customer_is_not_found(client, account, customer):
    elsewhere = CustomerFactory(official_account=OfficialAccountFactory(), openid=OPENID)
    note = CustomerNote.objects.create(customer=elsewhere, author_label="x", text="secret")
    client.force_login(supervisor(account))
    assert client.post(_note_delete_url(note)).status_code == 404
    assert client.get(_note_delete_url(note)).status_code == 404
    assert CustomerNote.objects.exists()


def test_a_customer_only_the_archive_knows_cannot_be_named(boss_client, account):
    archive(account, "o_archived", "old message", at=timezone.now() - timedelta(days=400))
    body = boss_client.get(url("customer_panel", "o_archived"), **htmx()).content.decode()
    assert "once kfadmin has seen them write" in body
    assert boss_client.post(url("customer_profile", "o_archived"), {"remark_name": "x"}).status_code == 404


# ------------------------------------------------------------------ find and jump


def test_finding_in_the_conversation_links_to_each_match(boss_client, account, customer):
    archive(account, "o_other", "我要退款", at=aware(2025, 3, 1, 9, 0))
    response = boss_client.get(url("customer_panel"), {"q": "退款"}, **htmx("customer-panel"))
    body = response.content.decode()
    match = account.records.get(openid=OPENID, text="我要退款")
    assert f'?at={match.pk}#r{match.pk}' in body
    assert body.count("?at=") == 1  # the other customer's message is not this conversation's


def test_finding_nothing_says_so(boss_client, customer):
    body = boss_client.get(url("customer_panel"), {"q": "没有这句话"}, **htmx()).content.decode()
    assert "No message of this conversation contains these words." in body


def test_jumping_to_a_date_opens_the_conversation_there(boss_client, account, customer):
    target = account.records.get(text="快递到哪了？")
    response = boss_client.get(url("conversation_jump"), {"day": "2025-03-03"})
    assert response.status_code == 302 and response["Location"] == f"{url('conversation')}?at={target.pk}#r{target.pk}"


def test_jumping_without_a_date_says_what_to_do(boss_client, customer):
    response = boss_client.get(url("conversation_jump"), {"day": "not a day"})
    assert response.status_code == 422 and "Enter a valid date." in response.content.decode()


def test_jumping_is_checked_like_the_conversation(client, account, customer):
    client.force_login(outsider())
    assert client.get(url("conversation_jump"), {"day": "2025-03-03"}).status_code == 404
    assert sent_to_login(client.__class__().get(url("conversation_jump")))


# ------------------------------------------------------------------ remark names elsewhere


def test_the_queue_and_the_board_show_the_remark_name_with_the_openid(client, account, alice):
    waiting = KfSessionFactory(official_account=account, customer=CustomerFactory(official_account=account, openid="o_wait", remark_name="李先生"))
    served = KfSessionFactory(
        official_account=account, state="open", agent=alice, accepted_at=timezone.now(),
        customer=CustomerFactory(official_account=account, openid="o_served", remark_name="张小姐"),
    )
    client.force_login(supervisor(account))
    body = client.get(reverse("sessions_app:queue")).content.decode()
    assert waiting.customer.openid in body and served.customer.openid in body
    assert '<span class="customer-name" title="o_wait">李先生</span>' in body
    assert '<span class="customer-name" title="o_served">张小姐</span>' in body


def test_history_shows_remark_names_and_finds_a_customer_by_one(boss_client, account, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name="王女士")
    archive(account, "o_other", "别人的消息", at=aware(2025, 3, 1, 9, 0))

    all_records = boss_client.get(reverse("messaging:history")).content.decode()
    by_name = boss_client.get(reverse("messaging:history"), {"openid": "王女士"}).content.decode()

    assert '<span class="customer-name" title="o_wang_0001">王女士</span>' in all_records
    assert "快递到哪了？" in by_name and "别人的消息" not in by_name


def test_a_remark_name_shared_by_two_customers_asks_for_the_openid(boss_client, account, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name="王女士")
    CustomerFactory(official_account=account, openid="o_wang_0002", remark_name="王女士")
    body = boss_client.get(reverse("messaging:history"), {"openid": "王女士"}).content.decode()
    assert "More than one customer is named “王女士”; search by openid." in body


def test_an_exact_openid_wins_over_a_remark_name_spelled_the_same(boss_client, account, customer):
    CustomerFactory(official_account=account, openid="o_impostor", remark_name=customer.openid)
    archive(account, "o_impostor", "冒名的消息", at=aware(2025, 3, 1, 9, 0))

    body = boss_client.get(reverse("messaging:history"), {"openid": customer.openid}).content.decode()

    assert "快递到哪了？" in body and "冒名的消息" not in body


def test_the_transcript_names_the_customer(boss_client, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name="王女士")
    body = boss_client.get(url("transcript")).content.decode()
    assert "王女士" in body and OPENID in body


def test_a_remark_name_is_escaped_everywhere_it_shows(boss_client, account, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name='<b onclick="x()">王</b>')
    KfSession.objects.filter(customer=customer).update(state="waiting", closed_at=None)
    pages = [
        boss_client.get(reverse("sessions_app:queue")).content.decode(),
        boss_client.get(url("conversation")).content.decode(),
        boss_client.get(url("customer_panel"), **htmx()).content.decode(),
        boss_client.get(reverse("messaging:history")).content.decode(),
    ]
    for body in pages:
        assert '<b onclick' not in body
        assert "&lt;b onclick=&quot;x()&quot;&gt;王&lt;/b&gt;" in body
