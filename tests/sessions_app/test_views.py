"""The queue page, its fragments, and the assign / close / transfer actions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from sessions_app.models import KfSession
from tests.factories import (
    AgentFactory,
    OfficialAccountFactory,
    agent_user,
    auditor,
    outsider,
    sent_to_login,
)
from tests.sessions_app.test_views_support import (
    emulated_agent,
    htmx,
    served_customer,
    triggered,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

QUEUE = reverse("sessions_app:queue")


@pytest.fixture
def account(emulator):
    return wired_account(emulator, agent_capacity=3)


def login(client, user):
    client.force_login(user)
    return client


# ------------------------------------------------------------------ queue page


def test_the_queue_lists_waiting_customers_in_arrival_order_with_their_last_message(boss_client, account, emulator):
    first = waiting_customer(account, emulator, text="第一个客户")
    second = waiting_customer(account, emulator, text="second customer")

    response = boss_client.get(QUEUE)

    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" in body
    assert body.index(first.openid) < body.index(second.openid)
    assert "第一个客户" in body and "second customer" in body
    assert reverse("sessions_app:assign", args=[first.openid]) in body
    assert response["Vary"].count("HX-Request") == 1


def test_the_queue_groups_open_sessions_by_agent_with_their_load(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice", nick="Alice")
    emulated_agent(account, emulator, "bob", nick="Bob", online=False)
    served_customer(account, alice, emulator, text="where is my parcel")
    served_customer(account, alice, emulator)

    body = boss_client.get(QUEUE).content.decode()

    assert "Alice" in body and "Bob" in body
    assert "2 of 3" in body  # Alice's load against the account's capacity
    assert "0 of 3" in body
    assert "where is my parcel" in body


def many_sessions(account, agents: list, per_agent: int) -> None:
    """Open sessions in kfadmin's copy only (the board reads nothing else)."""
    for agent in agents:
        for _ in range(per_agent):
            served_customer(account, agent, archived=False)


def test_a_large_board_lists_one_line_per_agent_and_no_sessions(boss_client, account, monkeypatch):
    from sessions_app import selectors

    monkeypatch.setattr(selectors, "BOARD_LIST_ALL_UP_TO", 3)
    alice = AgentFactory(official_account=account, kf_nick="Alice", online_status=1)
    bob = AgentFactory(official_account=account, kf_nick="Bob", online_status=1)
    AgentFactory(official_account=account, kf_nick="Idle Ivy", online_status=0)
    many_sessions(account, [alice, bob], 2)

    body = boss_client.get(QUEUE, **htmx("open-sessions")).content.decode()

    assert "Alice" in body and "Bob" in body and "2 of 3" in body
    assert "session-close-" not in body  # folded: nobody's sessions listed
    assert "Choose an agent to list their sessions." in body
    assert "Idle Ivy" not in body and "1 offline agent holds no session." in body
    assert f'href="{QUEUE}?agent={alice.pk}"' in body


def test_picking_an_agent_lists_their_sessions_and_the_poll_keeps_the_choice(boss_client, account, monkeypatch):
    from sessions_app import selectors

    monkeypatch.setattr(selectors, "BOARD_LIST_ALL_UP_TO", 3)
    alice = AgentFactory(official_account=account, kf_nick="Alice", online_status=1)
    bob = AgentFactory(official_account=account, kf_nick="Bob", online_status=1)
    many_sessions(account, [alice, bob], 2)
    alices = KfSession.objects.filter(agent=alice).select_related("customer")
    bobs = KfSession.objects.filter(agent=bob).select_related("customer")

    body = boss_client.get(f"{QUEUE}?agent={alice.pk}", **htmx("open-sessions")).content.decode()

    assert all(s.customer.openid in body for s in alices)
    assert not any(s.customer.openid in body for s in bobs)
    assert f'hx-get="{QUEUE}?agent={alice.pk}&amp;v=' in body  # with the token of what it shows
    assert 'aria-expanded="true"' in body
    # The whole page at that URL (a reload, a shared link) shows the same choice.
    page = boss_client.get(f"{QUEUE}?agent={alice.pk}").content.decode()
    assert all(s.customer.openid in page for s in alices)


@pytest.mark.parametrize("value", ["abc", "-1", "99999999", "1" * 40])
def test_a_bad_or_unknown_agent_choice_shows_the_folded_board(boss_client, account, monkeypatch, value):
    from sessions_app import selectors

    monkeypatch.setattr(selectors, "BOARD_LIST_ALL_UP_TO", 1)
    alice = AgentFactory(official_account=account, kf_nick="Alice", online_status=1)
    many_sessions(account, [alice], 2)
    response = boss_client.get(f"{QUEUE}?agent={value}", **htmx("open-sessions"))
    assert response.status_code == 200
    assert "Alice" in response.content.decode() and "session-close-" not in response.content.decode()


def test_another_accounts_agent_cannot_be_picked(boss_client, account, monkeypatch):
    from sessions_app import selectors

    monkeypatch.setattr(selectors, "BOARD_LIST_ALL_UP_TO", 1)
    other = OfficialAccountFactory()
    stranger = AgentFactory(official_account=other, online_status=1)
    many_sessions(other, [stranger], 2)
    many_sessions(account, [AgentFactory(official_account=account, online_status=1)], 2)
    body = boss_client.get(f"{QUEUE}?agent={stranger.pk}", **htmx("open-sessions")).content.decode()
    assert stranger.kf_account not in body
    assert not any(s.customer.openid in body for s in KfSession.objects.filter(agent=stranger))


def test_an_agent_always_sees_all_of_their_own_sessions(client, account, monkeypatch):
    from sessions_app import selectors

    monkeypatch.setattr(selectors, "BOARD_LIST_ALL_UP_TO", 1)
    alice = AgentFactory(official_account=account, kf_nick="Alice", online_status=1)
    bob = AgentFactory(official_account=account, kf_nick="Bob", online_status=1)
    many_sessions(account, [alice, bob], 2)
    login(client, agent_user(account, agent=alice))
    body = client.get(f"{QUEUE}?agent={bob.pk}", **htmx("open-sessions")).content.decode()
    assert all(s.customer.openid in body for s in KfSession.objects.filter(agent=alice).select_related("customer"))
    assert "Bob" not in body


def test_an_empty_queue_says_what_happens_next(boss_client):
    body = boss_client.get(QUEUE).content.decode()
    assert "Nobody is waiting" in body
    assert "No agents yet" in body


def test_the_waiting_fragment_is_served_to_htmx_polls(boss_client, account, emulator):
    customer = waiting_customer(account, emulator)
    response = boss_client.get(QUEUE, **htmx("queue-waiting"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body
    assert body.lstrip().startswith("<section id=\"queue-waiting\"")
    assert customer.openid in body
    assert 'hx-trigger="every 5s, sessionsChanged from:body"' in body


def test_the_sessions_fragment_is_served_to_htmx_polls(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    body = boss_client.get(QUEUE, **htmx("open-sessions")).content.decode()
    assert body.lstrip().startswith('<section id="open-sessions"')
    assert session.customer.openid in body
    assert "queue-waiting" not in body


def test_each_polled_fragment_builds_only_its_own_list(boss_client, monkeypatch):
    from sessions_app import selectors

    def must_not_run(**kwargs):
        raise AssertionError("this fragment does not show that list")

    with monkeypatch.context() as patch:
        patch.setattr(selectors, "sessions_board", must_not_run)
        assert boss_client.get(QUEUE, **htmx("queue-waiting")).status_code == 200
    with monkeypatch.context() as patch:
        patch.setattr(selectors, "queue_waiting", must_not_run)
        assert boss_client.get(QUEUE, **htmx("open-sessions")).status_code == 200


def test_a_history_restore_of_the_queue_gets_the_whole_page(boss_client, account, emulator):
    customer = waiting_customer(account, emulator)
    response = boss_client.get(QUEUE, **htmx(), HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    body = response.content.decode()
    assert "<html" in body and customer.openid in body
    assert 'id="queue-waiting"' in body and 'id="open-sessions"' in body


def test_a_customer_who_just_arrived_shows_up_on_the_next_poll(boss_client, account, emulator):
    assert "o_late" not in boss_client.get(QUEUE, **htmx("queue-waiting")).content.decode()
    waiting_customer(account, openid="o_late")
    assert "o_late" in boss_client.get(QUEUE, **htmx("queue-waiting")).content.decode()


def test_the_queue_requires_login(client):
    response = client.get(QUEUE)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_queue_fragment_requires_login(client):
    response = client.get(QUEUE, **htmx("queue-waiting"))
    # htmx takes the whole page to the login page rather than swapping the login form in.
    assert sent_to_login(response, htmx=True)


def test_an_auditor_cannot_see_the_queue_page_or_its_fragments(client, account):
    login(client, auditor(account))
    assert client.get(QUEUE).status_code == 403
    assert client.get(QUEUE, **htmx("queue-waiting")).status_code == 403
    assert client.get(QUEUE, **htmx("open-sessions")).status_code == 403


def test_another_accounts_supervisor_does_not_see_this_queue(client, account, emulator):
    customer = waiting_customer(account, emulator, text="secret")
    login(client, outsider())
    body = client.get(QUEUE).content.decode()
    assert customer.openid not in body and "secret" not in body


def test_the_queue_accepts_only_get(boss_client):
    assert boss_client.post(QUEUE).status_code == 405


def test_an_agent_sees_the_queue_and_only_their_own_sessions(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice", nick="Alice")
    carol = emulated_agent(account, emulator, "carol", nick="Carol")
    mine = served_customer(account, alice, emulator)
    theirs = served_customer(account, carol, emulator)
    waiting = waiting_customer(account, emulator)
    login(client, agent_user(account, agent=alice))

    body = client.get(QUEUE).content.decode()

    assert mine.customer.openid in body and waiting.openid in body
    assert theirs.customer.openid not in body and "Carol" not in body
    assert "My sessions" in body
    assert "Take" in body
    assert reverse("sessions_app:transfer", args=[mine.pk]) not in body


# ------------------------------------------------------------------ assign


def assign_url(customer):
    return reverse("sessions_app:assign", args=[customer.openid])


def test_the_assign_form_lists_bound_agents_with_their_state(boss_client, account, emulator):
    emulated_agent(account, emulator, "alice", nick="Alice")
    AgentFactory(official_account=account, kf_nick="Unbound", kf_wx="")
    customer = waiting_customer(account, emulator)

    page = boss_client.get(assign_url(customer))
    fragment = boss_client.get(assign_url(customer), **htmx("action-panel"))

    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.content.decode()
    body = fragment.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<section id="action-panel"')
    assert "Alice" in body and "online" in body
    assert "Unbound" not in body


def test_the_assign_page_of_its_own_posts_a_plain_form_and_goes_back(boss_client, account, emulator):
    emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)
    page = boss_client.get(assign_url(customer) + "?next=" + QUEUE).content.decode()
    panel = boss_client.get(assign_url(customer), **htmx("action-panel")).content.decode()
    assert "hx-post" not in page and f'action="{assign_url(customer)}"' in page
    assert "hx-post" in panel


def test_assigning_opens_the_session_and_redirects_back(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)

    response = boss_client.post(assign_url(customer), {"agent": alice.pk, "next": QUEUE})

    assert response.status_code == 302 and response["Location"] == QUEUE
    assert KfSession.objects.get(customer=customer).state == KfSession.State.OPEN
    assert [c.json for c in emulator.calls if c.path == "/customservice/kfsession/create"] == [
        {"kf_account": alice.kf_account, "openid": customer.openid}
    ]
    followed = boss_client.get(QUEUE).content.decode()
    assert "is now with alice" in followed


def test_assigning_with_htmx_empties_the_panel_and_refreshes_the_lists(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)

    response = boss_client.post(assign_url(customer), {"agent": alice.pk}, **htmx("action-panel"))

    assert response.status_code == 200
    assert "sessionsChanged" in triggered(response)
    body = response.content.decode()
    assert '<div id="action-panel"' in body
    assert 'id="messages"' in body and 'hx-swap-oob="true"' in body
    assert "is now with alice" in body


def test_assigning_to_an_offline_agent_warns_and_asks_to_confirm(boss_client, account, emulator):
    bob = emulated_agent(account, emulator, "bob", online=False)
    customer = waiting_customer(account, emulator)

    response = boss_client.post(assign_url(customer), {"agent": bob.pk}, **htmx("action-panel"))

    body = response.content.decode()
    assert response.status_code == 200
    assert "is offline" in body and "Assign anyway" in body
    assert 'name="confirm" value="1"' in body
    assert not [c for c in emulator.calls if c.path.startswith("/customservice/kfsession/")]

    confirmed = boss_client.post(assign_url(customer), {"agent": bob.pk, "confirm": "1"}, **htmx("action-panel"))
    assert "The agent is not online" in confirmed.content.decode()  # WeChat's 65415, in words
    assert KfSession.objects.get(customer=customer).state == KfSession.State.WAITING


def test_an_auditor_cannot_assign(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)
    login(client, auditor(account))
    assert client.get(assign_url(customer)).status_code == 403
    assert client.post(assign_url(customer), {"agent": alice.pk}).status_code == 403
    assert client.post(assign_url(customer), {"agent": alice.pk}, **htmx("action-panel")).status_code == 403
    assert not emulator.calls


def test_assigning_another_accounts_customer_is_not_found(client, account, emulator):
    customer = waiting_customer(account, emulator)
    intruder = outsider()
    login(client, intruder)
    their_agent = AgentFactory(official_account=intruder.memberships.get().official_account)
    assert client.get(assign_url(customer)).status_code == 404
    assert client.post(assign_url(customer), {"agent": their_agent.pk}).status_code == 404


def test_assign_rejects_an_agent_of_another_account(boss_client, account, emulator):
    emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)
    stranger = AgentFactory(official_account=OfficialAccountFactory())
    body = boss_client.post(assign_url(customer), {"agent": stranger.pk}).content.decode()
    assert "Choose one of the listed agents" in body
    assert not [c for c in emulator.calls if c.path.startswith("/customservice/kfsession/")]


def test_assign_accepts_only_get_and_post(boss_client, account, emulator):
    customer = waiting_customer(account, emulator)
    assert boss_client.put(assign_url(customer)).status_code == 405


def test_an_agent_takes_a_waiting_customer_for_themselves_only(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    customer = waiting_customer(account, emulator)
    login(client, agent_user(account, agent=alice))

    form = client.get(assign_url(customer), **htmx("action-panel")).content.decode()
    assert "carol" not in form

    refused = client.post(assign_url(customer), {"agent": carol.pk}, **htmx("action-panel"))
    assert "Choose one of the listed agents" in refused.content.decode()
    taken = client.post(assign_url(customer), {"agent": alice.pk}, **htmx("action-panel"))
    assert "sessionsChanged" in triggered(taken)
    assert KfSession.objects.get(customer=customer).agent == alice


def test_an_agent_cannot_take_a_customer_who_is_not_waiting(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, carol, emulator)
    login(client, agent_user(account, agent=alice))
    assert client.get(assign_url(session.customer)).status_code == 404


# ------------------------------------------------------------------ close


def close_url(session):
    return reverse("sessions_app:close", args=[session.pk])


def test_close_asks_for_confirmation_first(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    emulator.state.clear_calls()

    page = boss_client.get(close_url(session))
    fragment = boss_client.get(close_url(session), **htmx("action-panel"))

    assert "Close this session?" in page.content.decode() and "<html" in page.content.decode()
    assert fragment.content.decode().lstrip().startswith('<section id="action-panel"')
    assert not emulator.calls
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.OPEN


def test_closing_ends_the_session(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)

    response = boss_client.post(close_url(session), **htmx("action-panel"))

    assert "sessionsChanged" in triggered(response)
    assert "is closed" in response.content.decode()
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.CLOSED


def test_closing_without_htmx_redirects_to_next(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    back = reverse("messaging:conversation", args=[session.customer.openid])
    response = boss_client.post(close_url(session), {"next": back})
    assert response.status_code == 302 and response["Location"] == back


def test_close_ignores_a_next_url_pointing_elsewhere(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    response = boss_client.post(close_url(session), {"next": "https://evil.example/"})
    assert response["Location"] == QUEUE


def test_an_agent_closes_their_own_session_but_not_anothers(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    mine = served_customer(account, alice, emulator)
    theirs = served_customer(account, carol, emulator)
    login(client, agent_user(account, agent=alice))

    assert client.post(close_url(theirs)).status_code == 404
    assert client.post(close_url(mine)).status_code == 302
    assert KfSession.objects.get(pk=mine.pk).state == KfSession.State.CLOSED
    assert KfSession.objects.get(pk=theirs.pk).state == KfSession.State.OPEN


def test_an_auditor_cannot_close(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    login(client, auditor(account))
    assert client.get(close_url(session)).status_code == 403
    assert client.post(close_url(session)).status_code == 403
    assert client.post(close_url(session), **htmx("action-panel")).status_code == 403
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.OPEN


def test_closing_another_accounts_session_is_not_found(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    login(client, outsider())
    assert client.get(close_url(session)).status_code == 404
    assert client.post(close_url(session)).status_code == 404


def test_close_accepts_only_get_and_post(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    assert boss_client.delete(close_url(session)).status_code == 405


def test_a_failed_close_shows_wechats_reason_in_the_panel(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    emulator.control("add_fault", kind="errcode", errcode=45011, path_prefix="/customservice/kfsession/close", next=1)
    response = boss_client.post(close_url(session), **htmx("action-panel"))
    body = response.content.decode()
    assert "Too many calls to this WeChat API in the last minute" in body
    assert "HX-Trigger" not in response
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.OPEN


# ------------------------------------------------------------------ transfer


def transfer_url(session):
    return reverse("sessions_app:transfer", args=[session.pk])


def test_the_transfer_form_explains_the_two_steps(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    emulated_agent(account, emulator, "carol", nick="Carol")
    session = served_customer(account, alice, emulator)
    body = boss_client.get(transfer_url(session), **htmx("action-panel")).content.decode()
    assert "two steps" in body and "Carol" in body
    assert f'value="{alice.pk}"' not in body  # not to the current agent


def test_transferring_moves_the_session(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)

    response = boss_client.post(transfer_url(session), {"to_agent": carol.pk}, **htmx("action-panel"))

    assert "sessionsChanged" in triggered(response)
    assert KfSession.objects.get(pk=session.pk).agent == carol


def test_a_half_done_transfer_is_explained_in_a_flash_message(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    emulator.state.agent_online(appid=emulator.appid, kf_account=carol.kf_account, online=False)

    response = boss_client.post(transfer_url(session), {"to_agent": carol.pk}, **htmx("action-panel"))

    body = response.content.decode()
    assert "sessionsChanged" in triggered(response)
    assert "message-error" in body and "no longer serves this customer" in body
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.CLOSED


def test_an_agent_cannot_transfer(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    login(client, agent_user(account, agent=alice))
    assert client.get(transfer_url(session)).status_code == 403
    assert client.post(transfer_url(session), {"to_agent": carol.pk}).status_code == 403


def test_an_auditor_cannot_transfer(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    login(client, auditor(account))
    assert client.get(transfer_url(session), **htmx("action-panel")).status_code == 403
    assert client.post(transfer_url(session), {"to_agent": carol.pk}).status_code == 403
    assert not AuditEvent.objects.filter(action="session_transfer").exists()


def test_transferring_another_accounts_session_is_not_found(client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    login(client, outsider())
    assert client.get(transfer_url(session)).status_code == 404


def test_transfer_accepts_only_get_and_post(boss_client, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    assert boss_client.patch(transfer_url(session)).status_code == 405


def test_cancel_returns_an_empty_panel(boss_client):
    url = reverse("sessions_app:panel_empty")
    assert boss_client.get(url, **htmx("action-panel")).content.decode().startswith('<div id="action-panel"')
    assert boss_client.get(url).status_code == 302


@pytest.mark.parametrize("name", ["assign", "close", "transfer", "panel_empty"])
def test_the_session_actions_require_login(client, account, emulator, name):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    args = {"assign": [session.customer.openid], "close": [session.pk], "transfer": [session.pk], "panel_empty": []}[name]
    url = reverse(f"sessions_app:{name}", args=args)
    assert sent_to_login(client.get(url)) and sent_to_login(client.post(url))
    assert sent_to_login(client.get(url, **htmx("action-panel")), htmx=True)
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.OPEN


def test_an_auditor_cannot_open_the_action_panel(client, account):
    login(client, auditor(account))
    assert client.get(reverse("sessions_app:panel_empty"), **htmx("action-panel")).status_code == 403


def test_the_empty_panel_accepts_only_get(boss_client):
    assert boss_client.post(reverse("sessions_app:panel_empty")).status_code == 405


def test_the_queue_says_when_wechat_cut_its_list_short(boss_client, account):
    for n in range(100):
        waiting_customer(account, openid=f"o_many_{n:03d}")
    account.waiting_count = 130
    account.save()
    body = boss_client.get(QUEUE, **htmx("queue-waiting")).content.decode()
    assert "WeChat lists only the first 100 of 130 waiting customers." in body


def test_the_queue_count_follows_the_list_when_it_is_complete(boss_client, account):
    waiting_customer(account, openid="o_only")
    account.waiting_count = 2  # from the last sync, before a customer was assigned
    account.save()
    body = boss_client.get(QUEUE, **htmx("queue-waiting")).content.decode()
    assert "WeChat lists only" not in body
    assert '<span class="count"' in body and ">1</span>" in body
