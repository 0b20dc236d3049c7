"""The history search page: filters, highlight, keyset pages, roles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from messaging.templatetags.highlight import highlight
from tests.factories import AgentFactory, agent_user, auditor, aware, outsider, sent_to_login
from tests.sessions_app.test_views_support import archive, htmx, wired_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

HISTORY = reverse("messaging:history")


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


def test_a_two_character_chinese_word_is_found_and_highlighted(boss_client, account):
    hit = archive(account, "o_a", "我要退款，谢谢")
    archive(account, "o_b", "什么时候发货")

    response = boss_client.get(HISTORY, {"q": "退款"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "我要<mark>退款</mark>，谢谢" in body
    assert "什么时候发货" not in body
    assert f"{reverse('messaging:conversation', args=['o_a'])}?at={hit.pk}#r{hit.pk}" in body


def test_a_single_character_and_latin_words_in_any_case_are_found(boss_client, account):
    archive(account, "o_a", "Refund please")
    archive(account, "o_b", "好")
    assert "<mark>Refund</mark> please" in boss_client.get(HISTORY, {"q": "refund"}).content.decode()
    assert "<mark>好</mark>" in boss_client.get(HISTORY, {"q": "好"}).content.decode()


def test_the_highlight_escapes_first_and_marks_every_match():
    assert highlight('<b>退款</b> & 退款', "退款") == "&lt;b&gt;<mark>退款</mark>&lt;/b&gt; &amp; <mark>退款</mark>"
    assert highlight("a<mark>", "<mark>") == "a<mark>&lt;mark&gt;</mark>"
    assert highlight("ABC abc", "b") == "A<mark>B</mark>C a<mark>b</mark>c"
    assert highlight("<i>", "") == "&lt;i&gt;"


def test_filters_by_agent_customer_and_kind(boss_client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@test_oa")
    archive(account, "o_a", "客户说：退款", opercode=2003, worker=alice.kf_account)
    archive(account, "o_a", "客服说：退款已办理", opercode=2002, worker=alice.kf_account)
    archive(account, "o_b", "别的客户说退款", opercode=2001)

    by_agent = boss_client.get(HISTORY, {"q": "退款", "agent": alice.pk}).content.decode()
    assert "客户说" in by_agent and "客服说" in by_agent and "别的客户" not in by_agent
    by_customer = boss_client.get(HISTORY, {"q": "退款", "openid": "o_b"}).content.decode()
    assert "别的客户" in by_customer and "客服说" not in by_customer
    by_kind = boss_client.get(HISTORY, {"q": "退款", "kinds": ["agent"]}).content.decode()
    assert "客服说" in by_kind and "客户说：" not in by_kind


def test_session_events_are_a_kind_of_their_own(boss_client, account):
    archive(account, "o_a", "", opercode=1004, worker="alice@test_oa")
    archive(account, "o_a", "hello", opercode=2001)
    body = boss_client.get(HISTORY, {"kinds": ["session"]}).content.decode()
    assert "session closed" in body and "hello" not in body


def test_dates_are_whole_days_in_the_accounts_time_zone(boss_client, account):
    archive(account, "o_a", "late evening in Shanghai", at=aware(2025, 3, 1, 23, 30))
    archive(account, "o_a", "just after midnight in Shanghai", at=aware(2025, 3, 2, 0, 10))
    body = boss_client.get(HISTORY, {"since": "2025-03-01", "until": "2025-03-01"}).content.decode()
    assert "late evening in Shanghai" in body
    assert "just after midnight" not in body
    assert "2025-03-01 23:30:00" in body  # shown in the account's time, not UTC


def test_an_end_before_the_start_is_a_form_error(boss_client):
    body = boss_client.get(HISTORY, {"since": "2025-03-02", "until": "2025-03-01"}).content.decode()
    assert "The end date is before the start date." in body


def test_an_htmx_search_with_an_end_before_the_start_shows_the_error_beside_the_date(boss_client):
    body = boss_client.get(
        HISTORY, {"since": "2025-03-02", "until": "2025-03-01"}, **htmx("history-results")
    ).content.decode()

    until_slot = body.split('id="filter-until-errors"')[1].split("</div>")[0]
    assert 'hx-swap-oob="true"' in until_slot and "The end date is before the start date." in until_slot


def test_an_htmx_search_that_is_valid_again_empties_the_error_slots(boss_client, account):
    body = boss_client.get(HISTORY, {"since": "2025-03-01", "until": "2025-03-02"}, **htmx("history-results")).content.decode()

    until_slot = body.split('id="filter-until-errors"')[1].split("</div>")[0]
    assert 'hx-swap-oob="true"' in until_slot and "errorlist" not in until_slot


def test_the_results_say_how_many_records_match(boss_client, account):
    for n in range(60):
        archive(account, "o_a", f"订单{n:02d}")
    archive(account, "o_b", "别的")

    body = boss_client.get(HISTORY, {"q": "订单"}).content.decode()
    assert "60 records" in body and 'data-total="60"' in body
    assert 'data-total="61"' in boss_client.get(HISTORY).content.decode()


def test_beyond_the_cap_the_count_says_more_than(boss_client, account, monkeypatch):
    from messaging import selectors

    monkeypatch.setattr(selectors, "COUNT_CAP", 5)
    monkeypatch.setattr(selectors.records_count, "__kwdefaults__", {**selectors.records_count.__kwdefaults__, "cap": 5})
    for n in range(8):
        archive(account, "o_a", f"订单{n}")

    body = boss_client.get(HISTORY, {"q": "订单"}).content.decode()
    assert "More than 5 records" in body and 'data-total="5+"' in body


def test_results_are_paged_newest_first_with_an_older_link(boss_client, account):
    start = timezone.now() - timedelta(days=1)
    for n in range(60):
        archive(account, "o_a", f"订单{n:02d}", at=start + timedelta(minutes=n))

    first = boss_client.get(HISTORY, {"q": "订单"}).content.decode()
    assert "订单</mark>59" in first and "订单</mark>10" in first and "订单</mark>09" not in first
    older_href = first.split('class="pager"><a class="button" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "q=%E8%AE%A2%E5%8D%95" in older_href and "cursor=" in older_href

    second = boss_client.get(older_href).content.decode()
    assert "订单</mark>09" in second and "订单</mark>00" in second and "订单</mark>10" not in second
    assert 'class="pager"' not in second


def test_a_broken_cursor_asks_to_search_again(boss_client, account):
    archive(account, "o_a", "x")
    body = boss_client.get(HISTORY, {"q": "x", "cursor": "not-a-cursor"}).content.decode()
    assert "no longer valid" in body


def test_htmx_searches_get_only_the_results_fragment(boss_client, account):
    archive(account, "o_a", "退款")
    response = boss_client.get(HISTORY, {"q": "退款"}, **htmx("history-results"))
    body = response.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<section id="history-results"')
    assert "<mark>退款</mark>" in body
    assert "HX-Request" in response["Vary"]


def test_an_empty_result_says_what_to_try(boss_client, account):
    body = boss_client.get(HISTORY, {"q": "不存在的词"}).content.decode()
    assert "Nothing matches" in body


def test_before_searching_the_newest_records_are_shown(boss_client, account):
    archive(account, "o_a", "最新的一条")
    assert "最新的一条" in boss_client.get(HISTORY).content.decode()


def test_history_requires_login(client):
    assert sent_to_login(client.get(HISTORY))
    assert sent_to_login(client.get(HISTORY, **htmx("history-results")), htmx=True)


def test_an_auditor_searches_the_whole_account(client, account):
    archive(account, "o_a", "审计可见")
    client.force_login(auditor(account))
    assert "<mark>审计</mark>可见" in client.get(HISTORY, {"q": "审计"}).content.decode()


def test_an_agent_sees_only_the_conversations_they_took_part_in(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@test_oa")
    archive(account, "o_a", "退款给alice", opercode=2002, worker=alice.kf_account)
    archive(account, "o_b", "退款给carol", opercode=2002, worker="carol@test_oa")
    client.force_login(agent_user(account, agent=alice))

    body = client.get(HISTORY, {"q": "退款"}).content.decode()
    assert "alice" in body and "carol" not in body
    # Naming another agent changes nothing: the filter is locked to themselves.
    other = AgentFactory(official_account=account, kf_account="carol@test_oa")
    assert "给carol" not in client.get(HISTORY, {"q": "退款", "agent": other.pk}).content.decode()
    assert "给carol" not in client.get(HISTORY).content.decode()


def test_an_agent_not_linked_to_a_kf_account_sees_nothing(client, account):
    archive(account, "o_a", "秘密")
    user = agent_user(account)
    Membership.objects.filter(user=user).update(agent=None)
    client.force_login(user)
    assert "秘密</p>" not in client.get(HISTORY).content.decode()
    assert "<mark>秘密</mark>" not in client.get(HISTORY, {"q": "秘密"}).content.decode()


def test_another_accounts_records_never_show(client, account):
    archive(account, "o_a", "别人的退款")
    client.force_login(outsider())
    assert "别人的退款" not in client.get(HISTORY, {"q": "退款"}).content.decode()
    assert "别人的退款" not in client.get(HISTORY).content.decode()


def test_history_accepts_only_get(boss_client):
    assert boss_client.post(HISTORY).status_code == 405
