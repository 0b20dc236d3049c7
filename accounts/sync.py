"""Keeping kfadmin's copy of the agents and the online list in step with WeChat.

Every sync reads from WeChat first and only then writes, in one short transaction, so
no database lock is held across an HTTP call (SQLite, the embedded default, has one
write lock for the whole database). Each run is recorded on its `SyncState` row.

Two runs of the same job for the same account must not overlap: a task claims the
row with a conditional UPDATE (`sync_state_claim`) and releases it afterwards. The
claim is a short lease (settings.SYNC_LEASE_SECONDS) that the run renews after each
step it completes (`sync_state_renew`, its heartbeat), so a run killed anywhere blocks
the next one for one lease at most, and a claim whose lease ran out is taken over.
The lease is renewed from the work itself, never from a timer thread: a run stuck in
a step stops renewing and is shown as stopped instead of looking alive forever.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.clients import wechat_client_for
from accounts.live import AGENTS, SYNC, live_bump
from accounts.models import Agent, AgentPresence, OfficialAccount, SyncState
from kfadmin.wechat import WeChatError
from kfadmin.wechat.types import Account, OnlineAccount

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SyncLeaseLost(RuntimeError):
    """Another run took over this job's claim (ours ran out): stop without writing."""


def sync_lease() -> timedelta:
    """How long a claim lasts without being renewed (see settings.SYNC_LEASE_SECONDS)."""
    return timedelta(seconds=settings.SYNC_LEASE_SECONDS)


# --------------------------------------------------------------------------- sync state


def sync_state_get(*, account_id: int, job: str) -> SyncState:
    state, _ = SyncState.objects.get_or_create(official_account_id=account_id, job=job)
    return state


def sync_state_claim(*, account_id: int, job: str, lease: timedelta | None = None) -> str | None:
    """Claim the (account, job) pair for one run. Returns the claim token, or None
    when another run holds a claim whose lease has not run out."""
    state = sync_state_get(account_id=account_id, job=job)
    now = timezone.now()
    token = uuid.uuid4().hex
    free = Q(running_token="") | Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    claimed = (
        SyncState.objects.filter(pk=state.pk)
        .filter(free)
        .update(running_since=now, running_token=token, heartbeat_at=now, lease_until=now + (lease or sync_lease()))
    )
    if claimed and state.lease_expired(now):
        # The row we read said another run held it and had stopped renewing.
        logger.warning(
            "%s sync of account %s: took over a claim last renewed at %s (its run died or hangs).",
            job, account_id, state.heartbeat_at or state.running_since,
        )
    return token if claimed else None


def sync_state_renew(*, account_id: int, job: str, token: str, lease: timedelta | None = None, **fields) -> None:
    """The run's heartbeat: extend its claim by one lease from now (and write `fields`
    in the same UPDATE). Raises SyncLeaseLost when another run has taken the claim."""
    now = timezone.now()
    renewed = SyncState.objects.filter(
        official_account_id=account_id, job=job, running_token=token
    ).update(heartbeat_at=now, lease_until=now + (lease or sync_lease()), **fields)
    if not renewed:
        raise SyncLeaseLost(f"The {job} claim of account {account_id} was taken over.")


def sync_state_release(*, account_id: int, job: str, token: str) -> bool:
    """Release a claim; a claim taken over after its lease ran out is left alone."""
    released = SyncState.objects.filter(
        official_account_id=account_id, job=job, running_token=token
    ).update(running_since=None, running_token="", lease_until=None)
    return bool(released)


def sync_state_held_until(*, account_id: int, job: str) -> datetime | None:
    """When the current claim's lease runs out (None when nobody holds it)."""
    return (
        SyncState.objects.filter(official_account_id=account_id, job=job)
        .exclude(running_token="")
        .values_list("lease_until", flat=True)
        .first()
    )


Heartbeat = Callable[[], None]


def sync_claimed_run(*, account_id: int, job: str, run: Callable[[Heartbeat], T]) -> T | None:
    """Run `run(heartbeat)` under the (account, job) claim; None if another run holds it.

    `run` calls `heartbeat()` after each step that may take a while (it renews the
    claim, and raises SyncLeaseLost if another run took it over). The claim is
    released however `run` ends, so a failed run (which Celery may retry) does not
    block the next one. An account deleted or deactivated since the task was queued
    is skipped.
    """
    if not OfficialAccount.objects.filter(pk=account_id, is_active=True).exists():
        logger.info("Skipping %s sync of account %s: it is gone or inactive.", job, account_id)
        return None
    token = sync_state_claim(account_id=account_id, job=job)
    if token is None:
        logger.info("Skipping %s sync of account %s: another run holds it.", job, account_id)
        return None
    try:
        return run(lambda: sync_state_renew(account_id=account_id, job=job, token=token))
    except SyncLeaseLost:
        logger.warning("%s sync of account %s stopped: another run took over its claim.", job, account_id)
        return None
    finally:
        sync_state_release(account_id=account_id, job=job, token=token)


@contextmanager
def sync_state_recording(*, account_id: int, job: str) -> Iterator[None]:
    """Record a run's start, success or failure (as a sentence a person can act on)."""
    state = sync_state_get(account_id=account_id, job=job)
    SyncState.objects.filter(pk=state.pk).update(last_started_at=timezone.now())
    try:
        yield
    except SyncLeaseLost:
        raise  # not a failure of the job: the run that took over records its outcome
    except WeChatError as exc:
        SyncState.objects.filter(pk=state.pk).update(
            last_error_at=timezone.now(), last_error=exc.explanation
        )
        live_bump(account_id, SYNC)
        raise
    except Exception as exc:
        SyncState.objects.filter(pk=state.pk).update(
            last_error_at=timezone.now(),
            last_error=f"The {job} sync failed unexpectedly ({type(exc).__name__}); see the worker log.",
        )
        live_bump(account_id, SYNC)
        raise
    SyncState.objects.filter(pk=state.pk).update(last_success_at=timezone.now(), last_error="")
    if state.last_error or state.last_success_at is None:
        # Recovered, or the first success: the overview's warning goes. A run like the
        # one before bumps nothing (the last-sync time shows within LIVE_RECHECK_SECONDS).
        live_bump(account_id, SYNC)


def from_unix(seconds: int) -> datetime | None:
    """WeChat's unix seconds as an aware datetime; 0 (absent) as None."""
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


# --------------------------------------------------------------------------- agents


def agent_get_or_stub(*, account: OfficialAccount, kf_account: str) -> Agent:
    """The agent named `kf_account`; a bare row if WeChat mentions one (in a session
    list or a callback) before the agents sync has listed it. That sync fills it in."""
    agent, _ = Agent.objects.get_or_create(official_account=account, kf_account=kf_account[:64])
    return agent


@dataclass(frozen=True)
class AgentsSyncResult:
    listed: int
    created: int
    deleted: int
    undeleted: int


_AGENT_FIELDS = [
    "kf_id",
    "kf_nick",
    "kf_headimgurl",
    "kf_wx",
    "invite_wx",
    "invite_expire_time",
    "invite_status",
    "last_listed_at",
    "deleted_at",
]


def _agent_shown(agent: Agent) -> tuple:
    """What the pages show of an agent that the agents sync writes."""
    return tuple(getattr(agent, name) for name in _AGENT_FIELDS if name != "last_listed_at")


def agents_sync(*, account_id: int) -> AgentsSyncResult:
    """getkflist → upsert every listed agent; agents WeChat no longer lists are
    soft-deleted (`deleted_at`), and undeleted if they come back."""
    account = OfficialAccount.objects.get(pk=account_id)
    with sync_state_recording(account_id=account_id, job=SyncState.Job.AGENTS):
        kf_list = wechat_client_for(account).get_account_list().kf_list
        return _agents_store(account, kf_list)


@transaction.atomic
def _agents_store(account: OfficialAccount, kf_list: list[Account]) -> AgentsSyncResult:
    now = timezone.now()
    listed = {item.kf_account: item for item in kf_list if item.kf_account}
    existing = {
        agent.kf_account: agent
        for agent in Agent.objects.select_for_update().filter(official_account=account)
    }
    to_create: list[Agent] = []
    to_update: list[Agent] = []
    undeleted = 0
    shown_changed = False  # anything the pages show (not only last_listed_at)
    for kf_account, item in listed.items():
        agent = existing.get(kf_account)
        before: tuple | None = None
        if agent is None:
            agent = Agent(official_account=account, kf_account=kf_account)
            to_create.append(agent)
        else:
            to_update.append(agent)
            before = _agent_shown(agent)
            if agent.deleted_at is not None:
                undeleted += 1
        agent.kf_id = item.kf_id[:32]
        agent.kf_nick = item.kf_nick[:32]
        agent.kf_headimgurl = item.kf_headimgurl[:500]
        agent.kf_wx = item.kf_wx[:64]
        agent.invite_wx = item.invite_wx[:64]
        agent.invite_expire_time = from_unix(item.invite_expire_time)
        agent.invite_status = item.invite_status if item.invite_status in Agent.InviteStatus.values else ""
        agent.last_listed_at = now
        agent.deleted_at = None
        agent.updated_at = now
        shown_changed = shown_changed or before != _agent_shown(agent)
    gone = [
        agent
        for kf_account, agent in existing.items()
        if kf_account not in listed and agent.deleted_at is None
    ]
    for agent in gone:
        # A deleted account is neither online nor serving anyone.
        agent.deleted_at = now
        agent.online_status = 0
        agent.accepted_case = 0
        agent.updated_at = now
    # A callback may have just created a bare row for a new agent: update it then.
    Agent.objects.bulk_create(
        to_create,
        update_conflicts=True,
        unique_fields=["official_account", "kf_account"],
        update_fields=[*_AGENT_FIELDS, "updated_at"],
    )
    Agent.objects.bulk_update(to_update, [*_AGENT_FIELDS, "updated_at"])
    Agent.objects.bulk_update(gone, ["deleted_at", "online_status", "accepted_case", "updated_at"])
    if shown_changed or gone:
        live_bump(account.pk, AGENTS)
    return AgentsSyncResult(
        listed=len(listed), created=len(to_create), deleted=len(gone), undeleted=undeleted
    )


def agents_bootstrap(*, account_id: int) -> None:
    """List the agents now if that never succeeded for this account.

    The online list and the sessions hang off agent rows; on a fresh install the
    first of those syncs may run before the first agents sync (all start together
    when beat starts) and would otherwise show nothing until the agents' next turn.
    An upsert, so racing the regular agents sync is harmless.
    """
    if not SyncState.objects.filter(
        official_account_id=account_id, job=SyncState.Job.AGENTS, last_success_at__isnull=False
    ).exists():
        agents_sync(account_id=account_id)


# --------------------------------------------------------------------------- online list


@dataclass(frozen=True)
class OnlineSyncResult:
    online: int
    changed: int
    unknown: int


def online_sync(*, account_id: int) -> OnlineSyncResult:
    """getonlinekflist → each agent's online status and accepted count; agents not
    listed are offline with 0. An `AgentPresence` row is written only on a change."""
    account = OfficialAccount.objects.get(pk=account_id)
    agents_bootstrap(account_id=account_id)
    with sync_state_recording(account_id=account_id, job=SyncState.Job.ONLINE):
        online_list = wechat_client_for(account).get_online_list().kf_online_list
        return _online_store(account, online_list)


@transaction.atomic
def _online_store(account: OfficialAccount, online_list: list[OnlineAccount]) -> OnlineSyncResult:
    now = timezone.now()
    listed = {item.kf_account: item for item in online_list if item.kf_account}
    agents = list(Agent.objects.select_for_update().filter(official_account=account))
    known = {agent.kf_account for agent in agents}
    changed: list[Agent] = []
    presence: list[AgentPresence] = []
    online_now: list[int] = []
    for agent in agents:
        item = listed.get(agent.kf_account)
        status = max(item.status, 0) if item else 0
        accepted = max(item.accepted_case, 0) if item else 0
        if status > 0:
            online_now.append(agent.pk)
        if (status, accepted) != (agent.online_status, agent.accepted_case):
            agent.online_status = status
            agent.accepted_case = accepted
            agent.updated_at = now
            changed.append(agent)
            presence.append(
                AgentPresence(agent=agent, at=now, online_status=status, accepted_case=accepted)
            )
    Agent.objects.bulk_update(changed, ["online_status", "accepted_case", "updated_at"])
    AgentPresence.objects.bulk_create(presence)
    if changed:  # a run that changed nobody's presence or load bumps nothing
        live_bump(account.pk, AGENTS)
    if online_now:
        Agent.objects.filter(pk__in=online_now).update(last_online_at=now)
    unknown = len(set(listed) - known)
    if unknown:
        # Agents created since the last agents sync; that sync will list them.
        logger.info("Online list of account %s names %s agent(s) not synced yet.", account.pk, unknown)
    return OnlineSyncResult(online=len(online_now), changed=len(changed), unknown=unknown)
