"""The customer's profile kfadmin keeps: remark name, tags and notes (services, forms,
selectors)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from sessions_app.forms import CustomerNoteForm, CustomerProfileForm, tags_parse
from sessions_app.models import TAG_MAX, TAGS_MAX, Customer, CustomerNote, KfSession
from sessions_app.selectors import (
    customer_notes,
    customer_openids_named,
    customer_remark_names,
    customer_sessions,
)
from sessions_app.services import customer_note_add, customer_profile_update
from tests.factories import (
    AgentFactory,
    CustomerFactory,
    KfSessionFactory,
    OfficialAccountFactory,
    supervisor,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def customer(account):
    return CustomerFactory(official_account=account, openid="o_wang")


# ------------------------------------------------------------------ services


def test_the_remark_name_and_tags_are_saved_and_audited_with_what_changed(account, customer):
    boss = supervisor(account)

    changed = customer_profile_update(customer=customer, remark_name="王女士", tags=["VIP", "退款"], actor=boss)

    customer.refresh_from_db()
    assert changed is True
    assert (customer.remark_name, customer.tags, customer.display_name) == ("王女士", ["VIP", "退款"], "王女士")
    event = AuditEvent.objects.get(action="customer_update")
    assert (event.actor, event.official_account, event.target) == (boss, account, "o_wang")
    assert event.params == {"remark_name": {"from": "", "to": "王女士"}, "tags": {"from": [], "to": ["VIP", "退款"]}}


def test_saving_the_same_profile_again_changes_and_records_nothing(account, customer):
    boss = supervisor(account)
    customer_profile_update(customer=customer, remark_name="王女士", tags=["VIP"], actor=boss)

    changed = customer_profile_update(customer=customer, remark_name="王女士", tags=["VIP"], actor=boss)

    assert changed is False
    assert AuditEvent.objects.filter(action="customer_update").count() == 1


def test_a_note_keeps_its_author_and_time_and_is_audited(account, customer):
    boss = supervisor(account)

    note = customer_note_add(customer=customer, text="上次退款已处理", actor=boss)

    assert (note.author, note.author_label, note.text) == (boss, "supervisor", "上次退款已处理")
    assert timezone.now() - note.created_at < timedelta(seconds=5)
    assert AuditEvent.objects.get(action="customer_note_add").params == {"note": note.pk, "length": 7}


def test_a_note_outlives_its_author(account, customer):
    boss = supervisor(account)
    customer_note_add(customer=customer, text="记住他", actor=boss)
    boss.delete()
    note = CustomerNote.objects.get()
    assert (note.author, note.author_label) == (None, "supervisor")


# ------------------------------------------------------------------ forms


def test_tags_are_split_on_any_comma_trimmed_and_deduplicated():
    assert tags_parse(" VIP, 退款，vip、 老客户 \n new  tag ,,") == ["VIP", "退款", "老客户", "new tag"]


def test_the_profile_form_cleans_the_name_and_turns_tags_into_a_list():
    form = CustomerProfileForm({"remark_name": "  王   女士 ", "tags": "VIP, 退款"})
    assert form.is_valid()
    assert form.cleaned_data == {"remark_name": "王 女士", "tags": ["VIP", "退款"]}


def test_too_many_or_too_long_tags_are_refused_with_a_reason():
    too_many = CustomerProfileForm({"remark_name": "", "tags": ",".join(f"t{i}" for i in range(TAGS_MAX + 1))})
    too_long = CustomerProfileForm({"remark_name": "", "tags": "x" * (TAG_MAX + 1)})
    assert not too_many.is_valid() and f"At most {TAGS_MAX} tags" in str(too_many.errors["tags"])
    assert not too_long.is_valid() and f"at most {TAG_MAX} characters" in str(too_long.errors["tags"])


def test_a_remark_name_longer_than_the_column_is_refused_not_cut():
    form = CustomerProfileForm({"remark_name": "名" * 65, "tags": ""})
    assert not form.is_valid() and "remark_name" in form.errors
    assert "maxlength" not in str(form["remark_name"])


def test_an_empty_note_is_refused():
    form = CustomerNoteForm({"text": "   "})
    assert not form.is_valid()
    assert form.errors["text"] == ["Write the note first."]


# ------------------------------------------------------------------ selectors


def test_remark_names_are_looked_up_per_openid_within_the_account(account, customer):
    Customer.objects.filter(pk=customer.pk).update(remark_name="王女士")
    CustomerFactory(official_account=account, openid="o_plain")
    CustomerFactory(official_account=OfficialAccountFactory(), openid="o_wang", remark_name="别家的王")

    assert customer_remark_names(account=account, openids={"o_wang", "o_plain", "o_unknown"}) == {"o_wang": "王女士"}
    assert customer_remark_names(account=account) == {"o_wang": "王女士"}
    assert customer_remark_names(account=account, openids=set()) == {}


def test_customers_are_found_by_remark_name_ignoring_case_and_spaces(account):
    CustomerFactory(official_account=account, openid="o_1", remark_name="Ms Wang")
    assert customer_openids_named(account=account, name="  ms   WANG ") == ["o_1"]
    assert customer_openids_named(account=account, name="wang") == []
    assert customer_openids_named(account=account, name=" ") == []


def test_notes_come_newest_first(account, customer):
    boss = supervisor(account)
    first = customer_note_add(customer=customer, text="一", actor=boss)
    second = customer_note_add(customer=customer, text="二", actor=boss)
    CustomerNote.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(days=1))
    assert [n.text for n in customer_notes(customer=customer)] == [second.text, first.text]


def test_past_sessions_list_the_newest_with_their_agents_and_count_them_all(account, customer):
    alice = AgentFactory(official_account=account, kf_nick="Alice")
    now = timezone.now()
    for days in range(3):
        KfSessionFactory(
            official_account=account, customer=customer, agent=alice, state=KfSession.State.CLOSED,
            created_at=now - timedelta(days=days), closed_at=now - timedelta(days=days) + timedelta(minutes=5),
        )

    listed, total = customer_sessions(customer=customer, limit=2)

    assert total == 3
    assert [s.created_at for s in listed] == [now, now - timedelta(days=1)]
    assert listed[0].agent == alice
