"""Auto-assignment: the queue sync hands waiting customers to agents.

Per official account, off by default (`AutoAssign`); a supervisor turns it on, pauses
and resumes it from the queue page. When on, every queue sync, right after storing
the queue, takes the waiting customers oldest first and hands each to an agent who is
online, bound to a WeChat user and below the account's capacity
(`OfficialAccount.agent_capacity`, the figure of the load bars and the assign
warnings; 0 means no limit). Load is kfadmin's count of the agent's open sessions,
as on the board, plus the customers being handed to them right now. The strategy:

- least loaded: the agent with the fewest sessions (ties: kf account order);
- last agent: the agent whose session with this customer is the latest, when they
  qualify; else the least loaded.

The hand-over is the supervisor's own path, `sessions_app.services.session_assign`:
WeChat's kfsession/create, the session open in kfadmin's copy, an audit row, here by
"auto-assignment" with no user. When WeChat refuses (the agent went offline meanwhile:
65415; another agent took the customer: 65414, ...) the customer stays waiting, the
refusal is in the audit log and the log, and the customer is tried again after
RETRY_AFTER; an agent refused for their own sake (offline, unbound) gets nobody else in
this run, and when WeChat cannot be reached at all the run stops. When WeChat's answer
is lost (the request may have been carried out) the customer is not tried again before
UNKNOWN_RETRY_AFTER: by then the queue sync has seen them leave the queue if WeChat
did assign them.

Exactly once: the choice of customer and agent is made under a row lock on the
account's AutoAssign row, and recorded as an `AutoAssignClaim` before WeChat is asked
(outside the lock: no database lock is held across an HTTP call). A second queue sync
running at the same time waits for the lock, then sees the claim (or the session
already open) and picks someone else; claimed customers count against their agent's
capacity while WeChat is asked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.audit import audit_event_record
from accounts.live import AUTO_ASSIGN, live_bump
from accounts.models import Agent, OfficialAccount
from kfadmin.wechat import WeChatError
from sessions_app.models import AutoAssign, AutoAssignClaim, KfSession
from sessions_app.services import session_assign

logger = logging.getLogger(__name__)

# How the audit log names who assigned (AuditEvent.actor_label, no user).
AUTO_ASSIGN_ACTOR = "auto-assignment"
# Customers handed over per queue sync at most: each is one WeChat call.
RUN_LIMIT = 20
# A claim outlives the WeChat call it covers (the client's timeout is far shorter);
# a worker that dies mid-call leaves a claim that frees the customer after this.
CLAIM_FOR = timedelta(seconds=60)
# A customer WeChat would not hand over is tried again after this.
RETRY_AFTER = timedelta(seconds=30)
# A customer whose hand-over may or may not have happened: not before this.
UNKNOWN_RETRY_AFTER = timedelta(minutes=2)
# Refusals that concern the agent, who then gets nobody else in the run: no such kf
# account, not bound to a WeChat user, not online (wechat-kf-api.md, kfsession/create).
# Others concern the customer (65414 served by another agent, 40003 unknown openid).
AGENT_REFUSALS = frozenset({65401, 65402, 65415})


@dataclass(frozen=True)
class AutoAssignResult:
    assigned: int
    failed: int


@dataclass(frozen=True)
class _Pick:
    session: KfSession
    agent: Agent
    load: int
    reason: str  # AutoAssign.Strategy value that chose the agent


@transaction.atomic
def auto_assign_set(*, account: OfficialAccount, state: str, strategy: str, actor) -> AutoAssign:
    """Turn auto-assignment on or off, pause or resume it, or change its strategy."""
    setting = _setting_locked(account)
    was = {"state": setting.state, "strategy": setting.strategy}
    setting.state = AutoAssign.State(state)
    setting.strategy = AutoAssign.Strategy(strategy)
    setting.changed_at = timezone.now()
    setting.changed_by = actor.get_username() if getattr(actor, "is_authenticated", False) else ""
    setting.save()
    audit_event_record(
        actor=actor, action="auto_assign_update", official_account=account, target=setting.state,
        params={"state": setting.state, "strategy": setting.strategy, "was": was},
    )
    return setting


def _setting_locked(account: OfficialAccount) -> AutoAssign:
    AutoAssign.objects.get_or_create(official_account=account)
    return AutoAssign.objects.select_for_update().get(official_account=account)


def auto_assign_run(*, account: OfficialAccount) -> AutoAssignResult | None:
    """Hand waiting customers to agents, if the account's auto-assignment is on (None
    when it is off or paused). For the queue sync, after it stored the queue. WeChat
    errors never escape: each is audited and the customer keeps waiting."""
    if not AutoAssign.objects.filter(official_account=account, state=AutoAssign.State.ON).exists():
        return None
    assigned = failed = 0
    refused_by: set[int] = set()
    for _ in range(RUN_LIMIT):
        pick = _claim_next(account, skip_agents=refused_by)
        if pick is None:
            break
        error = _hand_over(account, pick)
        if error is None:
            assigned += 1
            continue
        failed += 1
        if error.errcode is None:
            break  # WeChat could not be reached: the next sync tries again
        if error.errcode in AGENT_REFUSALS or error.outcome_unknown:
            refused_by.add(pick.agent.pk)
    setting = AutoAssign.objects.filter(official_account=account)
    # A run like the one before (nothing to hand over) bumps nothing; its time shows
    # within LIVE_RECHECK_SECONDS.
    if assigned or failed or setting.exclude(last_assigned=0, last_failed=0).exists():
        live_bump(account.pk, AUTO_ASSIGN)
    setting.update(last_run_at=timezone.now(), last_assigned=assigned, last_failed=failed)
    return AutoAssignResult(assigned=assigned, failed=failed)


@transaction.atomic
def _claim_next(account: OfficialAccount, *, skip_agents: set[int]) -> _Pick | None:
    """Under the account's lock: the oldest waiting customer nobody is handing over,
    the agent the strategy gives them, and the claim. None when auto-assignment was
    paused meanwhile, nobody waits or no agent qualifies."""
    setting = AutoAssign.objects.select_for_update().filter(official_account=account).first()
    if setting is None or setting.state != AutoAssign.State.ON:
        return None
    now = timezone.now()
    AutoAssignClaim.objects.filter(session__official_account=account, until__lt=now).delete()
    loads = _agent_loads(account, now=now, skip=skip_agents)
    if not loads:
        return None
    session = (
        KfSession.objects.filter(official_account=account, state=KfSession.State.WAITING, auto_claim__isnull=True)
        .select_related("customer")
        .order_by("created_at", "pk")
        .first()
    )
    if session is None:
        return None
    agent, reason = _choose(setting.strategy, session, loads)
    AutoAssignClaim.objects.create(session=session, agent=agent, until=now + CLAIM_FOR)
    return _Pick(session=session, agent=agent, load=loads[agent], reason=reason)


def _agent_loads(account: OfficialAccount, *, now, skip: set[int]) -> dict[Agent, int]:
    """Agents who may take one more customer now → their load: online, bound to a
    WeChat user, still listed by WeChat, below capacity."""
    agents = list(
        Agent.objects.listed()
        .filter(official_account=account, online_status__gt=0)
        .exclude(kf_wx="")
        .exclude(pk__in=skip)
        .order_by("kf_account")
    )
    if not agents:
        return {}
    open_sessions = dict(
        KfSession.objects.filter(official_account=account, state=KfSession.State.OPEN, agent__in=agents)
        .values("agent")
        .annotate(n=Count("pk"))
        .values_list("agent", "n")
    )
    claimed = dict(
        AutoAssignClaim.objects.filter(agent__in=agents, until__gte=now)
        .values("agent")
        .annotate(n=Count("pk"))
        .values_list("agent", "n")
    )
    capacity = account.agent_capacity
    loads = {agent: open_sessions.get(agent.pk, 0) + claimed.get(agent.pk, 0) for agent in agents}
    return {agent: load for agent, load in loads.items() if not capacity or load < capacity}


def _choose(strategy: str, session: KfSession, loads: dict[Agent, int]) -> tuple[Agent, str]:
    if strategy == AutoAssign.Strategy.LAST_AGENT:
        last_agent_id = (
            KfSession.objects.filter(customer_id=session.customer_id, agent__isnull=False)
            .exclude(pk=session.pk)
            .order_by("-created_at", "-pk")
            .values_list("agent_id", flat=True)
            .first()
        )
        for agent in loads:
            if agent.pk == last_agent_id:
                return agent, AutoAssign.Strategy.LAST_AGENT
    # Dicts keep the kf-account order the agents were read in: min() keeps the first tie.
    least = min(loads, key=lambda agent: loads[agent])
    return least, AutoAssign.Strategy.LEAST_LOADED


def _hand_over(account: OfficialAccount, pick: _Pick) -> WeChatError | None:
    """The hand-over, or WeChat's refusal (audited by session_assign)."""
    customer = pick.session.customer
    try:
        session_assign(
            account=account, customer=customer, agent=pick.agent, actor=None, confirmed=True,
            actor_label=AUTO_ASSIGN_ACTOR,
            params={"auto": True, "reason": pick.reason, "load": pick.load, "capacity": account.agent_capacity},
        )
    except WeChatError as error:
        unknown = error.outcome_unknown
        AutoAssignClaim.objects.filter(session=pick.session).update(
            # An assignment that may have happened still counts against the agent.
            agent=pick.agent if unknown else None,
            until=timezone.now() + (UNKNOWN_RETRY_AFTER if unknown else RETRY_AFTER),
        )
        logger.warning(
            "Auto-assignment of %s to %s on account %s failed (errcode %s): %s",
            customer.openid, pick.agent.kf_account, account.pk, error.errcode, error.errmsg,
        )
        return error
    AutoAssignClaim.objects.filter(session=pick.session).delete()
    return None
