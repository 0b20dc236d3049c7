"""Claiming a sync job so two runs never overlap, and recording how runs end."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from accounts.models import SyncState
from accounts.sync import (
    SyncLeaseLost,
    sync_claimed_run,
    sync_state_claim,
    sync_state_recording,
    sync_state_release,
    sync_state_renew,
)
from kfadmin.wechat import WeChatRateLimited, WeChatSystemBusy
from tests.factories import OfficialAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def account():
    return OfficialAccountFactory()


def test_a_second_claim_is_refused_while_the_first_holds(account):
    first = sync_state_claim(account_id=account.pk, job="online")
    assert first
    assert sync_state_claim(account_id=account.pk, job="online") is None
    # Other jobs and other accounts are independent.
    assert sync_state_claim(account_id=account.pk, job="queue")
    assert sync_state_claim(account_id=OfficialAccountFactory().pk, job="online")


def test_a_released_claim_can_be_taken_again(account):
    token = sync_state_claim(account_id=account.pk, job="agents")
    assert sync_state_release(account_id=account.pk, job="agents", token=token)
    state = SyncState.objects.get(official_account=account, job="agents")
    assert state.running_since is None and state.running_token == ""
    assert sync_state_claim(account_id=account.pk, job="agents")


def test_a_claim_whose_lease_ran_out_is_taken_over(account):
    stale = sync_state_claim(account_id=account.pk, job="sessions")
    SyncState.objects.filter(official_account=account, job="sessions").update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    fresh = sync_state_claim(account_id=account.pk, job="sessions")
    assert fresh and fresh != stale
    # The dead worker, waking up, must neither renew nor release the new holder's claim.
    with pytest.raises(SyncLeaseLost):
        sync_state_renew(account_id=account.pk, job="sessions", token=stale)
    assert not sync_state_release(account_id=account.pk, job="sessions", token=stale)
    assert SyncState.objects.get(official_account=account, job="sessions").running_token == fresh


def test_a_claim_within_its_lease_is_respected_however_old_the_run(account):
    sync_state_claim(account_id=account.pk, job="sessions")
    SyncState.objects.filter(official_account=account, job="sessions").update(
        running_since=timezone.now() - timedelta(hours=2)
    )
    assert sync_state_claim(account_id=account.pk, job="sessions") is None


@override_settings(SYNC_LEASE_SECONDS=60)
def test_a_claim_lasts_one_short_lease_and_each_heartbeat_extends_it(account):
    before = timezone.now()
    token = sync_state_claim(account_id=account.pk, job="history")
    state = SyncState.objects.get(official_account=account, job="history")
    assert timedelta(seconds=59) <= state.lease_until - before <= timedelta(seconds=61)
    first_lease = state.lease_until

    sync_state_renew(account_id=account.pk, job="history", token=token)

    state.refresh_from_db()
    assert state.lease_until > first_lease and state.heartbeat_at > before
    assert state.lease_until - state.heartbeat_at == timedelta(seconds=60)


def test_a_released_claim_leaves_no_lease_behind(account):
    token = sync_state_claim(account_id=account.pk, job="queue")
    sync_state_release(account_id=account.pk, job="queue", token=token)
    state = SyncState.objects.get(official_account=account, job="queue")
    assert state.lease_until is None and not state.lease_expired(timezone.now())


def test_claimed_run_hands_the_run_a_heartbeat_that_renews_the_claim(account):
    seen = []

    def run(heartbeat):
        before = SyncState.objects.get(official_account=account, job="sessions").lease_until
        heartbeat()
        seen.append((before, SyncState.objects.get(official_account=account, job="sessions").lease_until))
        return "ran"

    assert sync_claimed_run(account_id=account.pk, job="sessions", run=run) == "ran"
    (before, after), = seen
    assert after > before


def test_claimed_run_stops_quietly_when_another_run_took_over(account):
    def run(heartbeat):
        SyncState.objects.filter(official_account=account, job="sessions").update(running_token="other")
        heartbeat()
        raise AssertionError("unreachable: the heartbeat stops a run that lost its claim")

    assert sync_claimed_run(account_id=account.pk, job="sessions", run=run) is None
    assert SyncState.objects.get(official_account=account, job="sessions").running_token == "other"


def test_claimed_run_skips_when_another_run_holds_the_claim(account):
    sync_state_claim(account_id=account.pk, job="online")
    ran = []
    assert sync_claimed_run(account_id=account.pk, job="online", run=lambda heartbeat: ran.append(1)) is None
    assert ran == []


def test_claimed_run_releases_the_claim_when_the_run_fails(account):
    def boom(heartbeat):
        raise WeChatSystemBusy(-1, "system error")

    with pytest.raises(WeChatSystemBusy):
        sync_claimed_run(account_id=account.pk, job="online", run=boom)
    assert SyncState.objects.get(official_account=account, job="online").running_since is None
    assert sync_claimed_run(account_id=account.pk, job="online", run=lambda heartbeat: "ran") == "ran"


def test_claimed_run_skips_inactive_and_missing_accounts(account):
    account.is_active = False
    account.save()
    assert sync_claimed_run(account_id=account.pk, job="online", run=lambda heartbeat: "ran") is None
    assert sync_claimed_run(account_id=987654, job="online", run=lambda heartbeat: "ran") is None
    assert not SyncState.objects.exists()


def test_recording_keeps_wechats_explanation_as_the_error(account):
    with pytest.raises(WeChatRateLimited):
        with sync_state_recording(account_id=account.pk, job="agents"):
            raise WeChatRateLimited(45011, "api minute-quota reach limit rid: 1")
    state = SyncState.objects.get(official_account=account, job="agents")
    assert state.last_error.startswith("Too many calls to this WeChat API in the last minute.")
    assert "rid" not in state.last_error
    assert state.last_started_at and state.last_error_at and state.last_success_at is None


def test_recording_a_success_clears_the_error(account):
    with pytest.raises(ValueError):
        with sync_state_recording(account_id=account.pk, job="queue"):
            raise ValueError("bug")
    state = SyncState.objects.get(official_account=account, job="queue")
    assert state.last_error == "The queue sync failed unexpectedly (ValueError); see the worker log."
    with sync_state_recording(account_id=account.pk, job="queue"):
        pass
    state.refresh_from_db()
    assert state.last_error == "" and state.last_success_at >= state.last_error_at
