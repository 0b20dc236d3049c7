"""factory_boy factories and the named personas the tests are written with.

Personas, each a dashboard user with one role on one official account:

- ``supervisor(account)`` — manages agents, users, sync; sees everything of that account.
- ``agent_user(account, agent=...)`` — works as one kf account (``Membership.agent``).
- ``auditor(account)`` — read-only: history, exports, audit log.
- ``outsider()`` — supervises a *different* official account, so it must get 404/403
  on everything of ``account``.

Every persona's password is :data:`PASSWORD`. Give ``username`` when one test needs
two of the same persona.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone

from accounts.models import (
    Agent,
    AgentPresence,
    AuditEvent,
    Membership,
    OfficialAccount,
    SyncState,
)
from messaging.models import MessageRecord, OutboundMessage, record_digest
from sessions_app.models import Customer, KfSession

PASSWORD = "kf-console-pass-2718"

User = get_user_model()


@functools.cache
def _password_hash() -> str:
    return make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    is_active = True

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):  # noqa: N805 - factory_boy hook
        if extracted:
            obj.set_password(extracted)
        else:
            # Hashing costs ~0.1 s; every persona shares one hash of PASSWORD.
            obj.password = _password_hash()
        if create:
            obj.save(update_fields=["password"])


class OfficialAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OfficialAccount

    name = factory.Sequence(lambda n: f"Official account {n}")
    appid = factory.Sequence(lambda n: f"wx{n:016d}")
    secret = factory.Sequence(lambda n: f"secret{n:026d}")
    wechat_id = factory.Sequence(lambda n: f"oa_shop{n}")
    original_id = factory.Sequence(lambda n: f"gh_{n:012d}")
    # Accepts a push in any mode; the callback tests choose theirs.
    callback_mode = OfficialAccount.CallbackMode.PLAIN
    # Tests that talk to WeChat point this at `emulator.base_url`; nothing else calls out.
    api_base_url = "http://127.0.0.1:9"
    time_zone = "Asia/Shanghai"
    agent_capacity = 5


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent

    official_account = factory.SubFactory(OfficialAccountFactory)
    kf_account = factory.LazyAttributeSequence(
        lambda o, n: f"kf{n}@{o.official_account.wechat_id}"
    )
    kf_id = factory.Sequence(lambda n: str(1001 + n))
    kf_nick = factory.Sequence(lambda n: f"客服{n}")
    kf_wx = factory.Sequence(lambda n: f"worker_wx{n}")
    online_status = 0
    accepted_case = 0
    last_listed_at = factory.LazyFunction(timezone.now)


class AgentPresenceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AgentPresence

    agent = factory.SubFactory(AgentFactory)
    online_status = 1
    accepted_case = 0


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    official_account = factory.SubFactory(OfficialAccountFactory)
    role = Membership.Role.SUPERVISOR
    agent = None


class SyncStateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncState
        django_get_or_create = ("official_account", "job")

    official_account = factory.SubFactory(OfficialAccountFactory)
    job = SyncState.Job.AGENTS
    last_started_at = factory.LazyFunction(timezone.now)
    last_success_at = factory.LazyFunction(timezone.now)


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    actor = factory.SubFactory(UserFactory)
    actor_label = factory.LazyAttribute(lambda o: o.actor.get_username() if o.actor else "system")
    official_account = factory.SubFactory(OfficialAccountFactory)
    action = "agent.add"
    target = "kf1@oa_shop"
    result = AuditEvent.Result.OK


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    official_account = factory.SubFactory(OfficialAccountFactory)
    openid = factory.Sequence(lambda n: f"o6_bmjrPTlm6_2sgVt7hMZOPfL{n:03d}")


class KfSessionFactory(factory.django.DjangoModelFactory):
    """A waiting customer by default; pass ``state="open", agent=...`` for a served one."""

    class Meta:
        model = KfSession

    official_account = factory.SubFactory(OfficialAccountFactory)
    customer = factory.SubFactory(
        CustomerFactory, official_account=factory.SelfAttribute("..official_account")
    )
    agent = None
    state = KfSession.State.WAITING


class MessageRecordFactory(factory.django.DjangoModelFactory):
    """A customer message (opercode 2003) by default."""

    class Meta:
        model = MessageRecord

    official_account = factory.SubFactory(OfficialAccountFactory)
    time = factory.LazyFunction(timezone.now)
    worker = ""
    openid = factory.Sequence(lambda n: f"o6_customer{n:04d}")
    opercode = MessageRecord.OperCode.AGENT_RECEIVED
    text = factory.Sequence(lambda n: f"你好 {n}")
    digest = factory.LazyAttribute(lambda o: record_digest(o.worker, o.openid, o.opercode, o.text))
    seq = 0


class OutboundMessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OutboundMessage

    official_account = factory.SubFactory(OfficialAccountFactory)
    customer = factory.SubFactory(
        CustomerFactory, official_account=factory.SelfAttribute("..official_account")
    )
    msgtype = OutboundMessage.MsgType.TEXT
    payload = factory.LazyFunction(lambda: {"content": "您好，请问有什么可以帮您？"})


# --------------------------------------------------------------------------- personas


def _member(
    account: OfficialAccount | None, role: str, username: str, agent: Agent | None = None
):
    account = account or OfficialAccountFactory()
    user = UserFactory(username=username)
    MembershipFactory(user=user, official_account=account, role=role, agent=agent)
    return user


def supervisor(account: OfficialAccount | None = None, *, username: str = "supervisor"):
    """A supervisor of ``account`` (a new account when None)."""
    return _member(account, Membership.Role.SUPERVISOR, username)


def agent_user(
    account: OfficialAccount | None = None,
    *,
    agent: Agent | None = None,
    username: str = "agent",
):
    """A dashboard user with the agent role, working as ``agent`` (a new kf account of
    ``account`` when None)."""
    account = account or (agent.official_account if agent else OfficialAccountFactory())
    agent = agent or AgentFactory(official_account=account)
    return _member(account, Membership.Role.AGENT, username, agent=agent)


def auditor(account: OfficialAccount | None = None, *, username: str = "auditor"):
    """A read-only auditor of ``account``."""
    return _member(account, Membership.Role.AUDITOR, username)


def outsider(*, username: str = "outsider"):
    """A supervisor of another official account: has no business with anyone else's."""
    return _member(OfficialAccountFactory(name="Another shop"), Membership.Role.SUPERVISOR, username)


def aware(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: str = "Asia/Shanghai"
) -> datetime:
    """An aware datetime in ``tz`` (the official accounts' default time zone)."""
    return datetime(year, month, day, hour, minute, tzinfo=zoneinfo.ZoneInfo(tz))


def sent_to_login(response, *, htmx: bool = False) -> bool:
    """The answer to a logged-out request: a page load is redirected to the login page
    (302); an htmx request is told to take the whole page there (HX-Redirect)."""
    if htmx:
        return response.status_code == 200 and response.get("HX-Redirect", "").startswith("/login/")
    return response.status_code == 302 and response["Location"].startswith("/login/")


def agents_bulk(account: OfficialAccount, count: int, *, online_every: int = 3, unbound_every: int = 10) -> list[Agent]:
    """`count` listed agents of `account` in one INSERT (a large team): kf accounts
    agent0000@…, agent0001@…, nicknames 客服0000…; every `online_every`th online,
    every `unbound_every`th not bound to a WeChat user."""
    now = timezone.now()
    agents = [
        Agent(
            official_account=account,
            kf_account=f"agent{i:04d}@{account.wechat_id}",
            kf_id=str(5000 + i),
            kf_nick=f"客服{i:04d}",
            kf_wx="" if i % unbound_every == 0 else f"wx_agent{i}",
            online_status=1 if i % online_every == 0 else 0,
            last_listed_at=now,
        )
        for i in range(count)
    ]
    return Agent.objects.bulk_create(agents)
