"""Auto-assignment against the emulator: the queue sync hands waiting customers to
online, bound agents below capacity, once each, through the supervisor's assign."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from accounts.models import AuditEvent, SyncState
from sessions_app.auto_assign import AUTO_ASSIGN_ACTOR, auto_assign_set
from sessions_app.models import AutoAssign, AutoAssignClaim, KfSession
from sessions_app.sync import queue_sync
from tests.factories import AgentFactory, CustomerFactory, supervisor
from tests.sessions_app.test_views_support import emulated_agent, served_customer

CREATE = "/customservice/kfsession/create"


def turn_on(account, strategy: str = AutoAssign.Strategy.LEAST_LOADED) -> None:
    auto_assign_set(account=account, state=AutoAssign.State.ON, strategy=strategy, actor=supervisor(account))


def wechat_sessions(emulator) -> dict[str, str]:
    """openid → kf account of every session WeChat (the emulator) holds."""
    state = emulator.state.state(appid=emulator.appid, customers=False)["official_accounts"][0]
    return {s["openid"]: s["kf_account"] for s in state["sessions"]}


def create_calls(emulator) -> Counter:
    """How many kfsession/create calls the emulator received, per openid."""
    return Counter(call.json["openid"] for call in emulator.state.calls(path_prefix=CREATE))


def agent_of(openid: str) -> str | None:
    session = KfSession.objects.exclude(state="closed").get(customer__openid=openid)
    return session.agent.kf_account if session.state == "open" else None


def waiting(emulator, *openids: str) -> list[str]:
    return [emulator.customer(openid=openid) for openid in openids]


@pytest.mark.django_db
class TestChoosing:
    def test_off_by_default_nobody_is_assigned(self, emulator, kf_account_row):
        emulated_agent(kf_account_row, emulator, "alice")
        customers = waiting(emulator, "o_c1", "o_c2")

        result = queue_sync(account_id=kf_account_row.pk)

        assert (result.queued, result.auto_assigned, result.auto_failed) == (2, 0, 0)
        assert [agent_of(c) for c in customers] == [None, None]
        assert create_calls(emulator) == Counter()
        assert not AutoAssign.objects.filter(official_account=kf_account_row).exists()

    def test_least_loaded_first_then_kf_account_order(self, emulator, kf_account_row):
        alice = emulated_agent(kf_account_row, emulator, "alice")
        bob = emulated_agent(kf_account_row, emulator, "bob")
        for _ in range(2):
            served_customer(kf_account_row, alice, emulator, archived=False)
        customers = waiting(emulator, "o_c1", "o_c2", "o_c3")
        turn_on(kf_account_row)

        result = queue_sync(account_id=kf_account_row.pk)

        # bob (0) takes two, then both hold two and alice comes first by kf account.
        assert result.auto_assigned == 3
        assert [agent_of(c) for c in customers] == [bob.kf_account, bob.kf_account, alice.kf_account]
        assert {c: wechat_sessions(emulator)[c] for c in customers} == {
            "o_c1": bob.kf_account, "o_c2": bob.kf_account, "o_c3": alice.kf_account
        }
        assert create_calls(emulator) == Counter({"o_c1": 1, "o_c2": 1, "o_c3": 1})
        assert not AutoAssignClaim.objects.exists()

    def test_the_last_agent_is_preferred_when_online_and_below_capacity(self, emulator, kf_account_row):
        alice = emulated_agent(kf_account_row, emulator, "alice")
        bob = emulated_agent(kf_account_row, emulator, "bob")
        served_customer(kf_account_row, alice, emulator, archived=False)
        served_before(kf_account_row, "o_carol", alice)
        served_before(kf_account_row, "o_dan", alice)
        waiting(emulator, "o_carol")
        turn_on(kf_account_row, AutoAssign.Strategy.LAST_AGENT)

        queue_sync(account_id=kf_account_row.pk)

        assert agent_of("o_carol") == alice.kf_account  # although bob holds fewer sessions
        assert AuditEvent.objects.get(action="session_assign", target="o_carol").params["reason"] == "last_agent"
        # With the other strategy the least loaded takes them.
        auto_assign_set(
            account=kf_account_row, state="on", strategy="least_loaded", actor=supervisor(kf_account_row, username="s2")
        )
        waiting(emulator, "o_dan")
        queue_sync(account_id=kf_account_row.pk)
        assert agent_of("o_dan") == bob.kf_account

    def test_an_offline_or_full_last_agent_gives_way_to_the_least_loaded(self, emulator, kf_account_row):
        kf_account_row.agent_capacity = 1
        kf_account_row.save()
        alice = emulated_agent(kf_account_row, emulator, "alice")
        offline = emulated_agent(kf_account_row, emulator, "olga", online=False)
        bob = emulated_agent(kf_account_row, emulator, "bob")
        carl = emulated_agent(kf_account_row, emulator, "carl")
        served_customer(kf_account_row, alice, emulator, archived=False)  # alice is full
        served_before(kf_account_row, "o_c1", alice)
        served_before(kf_account_row, "o_c2", offline)
        waiting(emulator, "o_c1", "o_c2")
        turn_on(kf_account_row, AutoAssign.Strategy.LAST_AGENT)

        queue_sync(account_id=kf_account_row.pk)

        assert [agent_of("o_c1"), agent_of("o_c2")] == [bob.kf_account, carl.kf_account]
        reasons = {e.target: e.params["reason"] for e in AuditEvent.objects.filter(action="session_assign")}
        assert reasons == {"o_c1": "least_loaded", "o_c2": "least_loaded"}

    def test_offline_and_unbound_agents_are_never_chosen(self, emulator, kf_account_row):
        emulated_agent(kf_account_row, emulator, "olga", online=False)
        # Shown online in kfadmin's copy, but bound to no WeChat user.
        AgentFactory(official_account=kf_account_row, kf_account=f"ursula@{emulator.wechat_id}", kf_wx="", online_status=1)
        # Online and bound, but WeChat no longer lists it.
        gone = emulated_agent(kf_account_row, emulator, "gone")
        gone.deleted_at = timezone.now()
        gone.save()
        customers = waiting(emulator, "o_c1", "o_c2")
        turn_on(kf_account_row)

        result = queue_sync(account_id=kf_account_row.pk)

        assert (result.auto_assigned, result.auto_failed) == (0, 0)
        assert [agent_of(c) for c in customers] == [None, None]
        assert create_calls(emulator) == Counter()

    def test_capacity_is_respected(self, emulator, kf_account_row):
        kf_account_row.agent_capacity = 2
        kf_account_row.save()
        alice = emulated_agent(kf_account_row, emulator, "alice")
        served_customer(kf_account_row, alice, emulator, archived=False)
        customers = waiting(emulator, "o_c1", "o_c2", "o_c3")
        turn_on(kf_account_row)

        result = queue_sync(account_id=kf_account_row.pk)

        assert result.auto_assigned == 1
        assert [agent_of(c) for c in customers] == [alice.kf_account, None, None]
        assert KfSession.objects.filter(agent=alice, state="open").count() == 2
        # The next run finds her still full.
        assert queue_sync(account_id=kf_account_row.pk).auto_assigned == 0
        assert create_calls(emulator) == Counter({"o_c1": 1})

    def test_paused_assigns_nobody_and_resuming_does(self, emulator, kf_account_row):
        alice = emulated_agent(kf_account_row, emulator, "alice")
        customers = waiting(emulator, "o_c1")
        boss = supervisor(kf_account_row)
        auto_assign_set(account=kf_account_row, state="on", strategy="least_loaded", actor=boss)
        auto_assign_set(account=kf_account_row, state="paused", strategy="least_loaded", actor=boss)

        result = queue_sync(account_id=kf_account_row.pk)

        assert (result.queued, result.auto_assigned) == (1, 0)
        assert agent_of(customers[0]) is None and create_calls(emulator) == Counter()
        setting = AutoAssign.objects.get(official_account=kf_account_row)
        assert (setting.state, setting.changed_by, setting.last_run_at) == ("paused", boss.username, None)

        auto_assign_set(account=kf_account_row, state="on", strategy="least_loaded", actor=boss)
        assert queue_sync(account_id=kf_account_row.pk).auto_assigned == 1
        assert agent_of(customers[0]) == alice.kf_account

    def test_every_assignment_is_audited_as_auto_assignment(self, emulator, kf_account_row):
        alice = emulated_agent(kf_account_row, emulator, "alice")
        waiting(emulator, "o_c1")
        turn_on(kf_account_row)

        queue_sync(account_id=kf_account_row.pk)

        event = AuditEvent.objects.get(action="session_assign")
        assert (event.actor, event.actor_label, event.official_account, event.target, event.result) == (
            None, AUTO_ASSIGN_ACTOR, kf_account_row, "o_c1", "ok"
        )
        assert event.params == {
            "openid": "o_c1", "kf_account": alice.kf_account, "confirmed_warnings": [], "auto": True,
            "reason": "least_loaded", "load": 0, "capacity": kf_account_row.agent_capacity,
        }
        setting = AutoAssign.objects.get(official_account=kf_account_row)
        assert (setting.last_assigned, setting.last_failed) == (1, 0) and setting.last_run_at is not None
        # Turning it on was audited too, with the supervisor.
        change = AuditEvent.objects.get(action="auto_assign_update")
        assert (change.actor_label, change.params["state"], change.params["was"]["state"]) == ("supervisor", "on", "off")


@pytest.mark.django_db
class TestWhenWeChatRefuses:
    def test_an_agent_who_went_offline_leaves_the_customer_waiting_and_the_sync_running(self, emulator, kf_account_row):
        alice = emulated_agent(kf_account_row, emulator, "alice")
        bob = emulated_agent(kf_account_row, emulator, "bob")
        # alice logged out since the online list was read: kfadmin still shows her online.
        emulator.state.agent_online(appid=emulator.appid, kf_account=alice.kf_account, online=False)
        customers = waiting(emulator, "o_c1", "o_c2")
        turn_on(kf_account_row)

        result = queue_sync(account_id=kf_account_row.pk)

        # alice (first by kf account) refuses o_c1; she gets nobody else this run.
        assert (result.auto_assigned, result.auto_failed) == (1, 1)
        assert [agent_of(c) for c in customers] == [None, bob.kf_account]
        refused = AuditEvent.objects.get(action="session_assign", target="o_c1")
        assert (refused.result, refused.errcode, refused.actor_label) == ("error", 65415, AUTO_ASSIGN_ACTOR)
        assert refused.message  # WeChat's sentence
        state = SyncState.objects.get(official_account=kf_account_row, job="queue")
        assert state.last_error == "" and state.last_success_at is not None
        # o_c1 is not tried again before the retry delay ...
        assert queue_sync(account_id=kf_account_row.pk).auto_failed == 0
        assert create_calls(emulator)["o_c1"] == 1
        # ... then bob (now the only one WeChat accepts) gets them once alice is shown offline.
        AutoAssignClaim.objects.update(until=timezone.now() - timedelta(seconds=1))
        alice.online_status = 0
        alice.save()
        assert queue_sync(account_id=kf_account_row.pk).auto_assigned == 1
        assert agent_of("o_c1") == bob.kf_account

    @pytest.mark.parametrize(
        ("fault", "outcome"),
        [
            # The customer's own trouble: the agent takes the next customer in the same run.
            ({"kind": "errcode", "errcode": 65414}, (1, 1)),
            # The agent's: nobody else goes to them in this run.
            ({"kind": "errcode", "errcode": 65402}, (0, 1)),
            # WeChat cannot be reached: the run stops.
            ({"kind": "http", "status": 503}, (0, 1)),
        ],
    )
    def test_what_a_refusal_concerns_decides_who_is_tried_next(self, emulator, kf_account_row, fault, outcome):
        emulated_agent(kf_account_row, emulator, "alice")
        waiting(emulator, "o_c1", "o_c2")
        emulator.state.add_fault(next=1, path_prefix=CREATE, **fault)
        turn_on(kf_account_row)

        result = queue_sync(account_id=kf_account_row.pk)

        assert (result.auto_assigned, result.auto_failed) == outcome
        assert agent_of("o_c1") is None
        assert create_calls(emulator)["o_c1"] == 1
        assert SyncState.objects.get(official_account=kf_account_row, job="queue").last_error == ""

    def test_a_lost_answer_is_not_retried_and_counts_against_the_agent(self, emulator, kf_account_row):
        kf_account_row.agent_capacity = 1
        kf_account_row.save()
        alice = emulated_agent(kf_account_row, emulator, "alice")
        emulator.state.add_fault(kind="drop", next=1, path_prefix=CREATE)
        waiting(emulator, "o_c1", "o_c2")
        turn_on(kf_account_row)

        result = queue_sync(account_id=kf_account_row.pk)

        assert (result.auto_assigned, result.auto_failed) == (0, 1)
        claim = AutoAssignClaim.objects.get(session__customer__openid="o_c1")
        assert claim.agent == alice and claim.until > timezone.now() + timedelta(seconds=60)
        # Her one place is held by the doubtful hand-over: o_c2 is not given to her.
        assert queue_sync(account_id=kf_account_row.pk).auto_assigned == 0
        assert create_calls(emulator) == Counter({"o_c1": 1})


@pytest.mark.django_db(transaction=True)
def test_two_queue_syncs_at_once_assign_each_customer_once(emulator, kf_account_row):
    kf_account_row.agent_capacity = 3
    kf_account_row.save()
    agents = [emulated_agent(kf_account_row, emulator, name) for name in ("alice", "bob", "carl")]
    customers = waiting(emulator, *[f"o_c{n:02d}" for n in range(12)])
    queue_sync(account_id=kf_account_row.pk)  # the waiting rows exist before both start
    turn_on(kf_account_row)
    # Each hand-over takes a while at WeChat, so the two runs overlap throughout.
    emulator.state.add_fault(kind="slow", rate=1.0, path_prefix=CREATE, delay=0.1)
    start = threading.Barrier(2)
    results, errors = [], []

    def worker() -> None:
        try:
            start.wait()
            results.append(queue_sync(account_id=kf_account_row.pk))
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(r.auto_assigned for r in results) == 9  # 3 agents × capacity 3
    calls = create_calls(emulator)
    assert len(calls) == 9 and set(calls.values()) == {1}  # nobody handed over twice
    held = wechat_sessions(emulator)
    assert Counter(held.values()) == {agent.kf_account: 3 for agent in agents}
    assert {c: agent_of(c) for c in customers if agent_of(c)} == {c: held[c] for c in held}
    ok = AuditEvent.objects.filter(action="session_assign", result="ok")
    assert Counter(ok.values_list("target", flat=True)) == Counter(dict.fromkeys(held, 1))
    assert not AutoAssignClaim.objects.exists()


def served_before(account, openid: str, agent) -> None:
    """`openid` had a session with `agent` that has ended (kfadmin's copy)."""
    customer = CustomerFactory(official_account=account, openid=openid)
    at = timezone.now() - timedelta(hours=2)
    KfSession.objects.create(
        official_account=account, customer=customer, agent=agent, state="closed",
        created_at=at, accepted_at=at, closed_at=at + timedelta(minutes=10),
    )
