"""Writes on agents (kf accounts at WeChat), dashboard users and sync jobs.

Agent writes call WeChat first and change the local copy only after WeChat said yes,
in one transaction with the audit row, so nothing is half-saved. A refused or failed
call leaves the local rows as they were, writes an audit row with the errcode and
raises `ServiceError` carrying a sentence for the person who asked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import Agent, AlertPreference, Membership, OfficialAccount, SyncState
from accounts.selectors import SYNC_RUN_ACTION, agent_can_invite
from accounts.sentences import wechat_error_message
from accounts.sync import agents_sync
from kfadmin.wechat import WeChatClient, WeChatError, WeChatTransportError

logger = logging.getLogger(__name__)

User = get_user_model()


class ServiceError(Exception):
    """A write that did not happen. `message` is a sentence for the person who asked;
    `errcode` is WeChat's code when WeChat refused."""

    def __init__(self, message: str, *, errcode: int | None = None):
        super().__init__(message)
        self.message = message
        self.errcode = errcode


# --------------------------------------------------------------------------- WeChat errors


def _audit_text(exc: WeChatError) -> str:
    # The audit log keeps the English sentence (translated when shown) and, for a
    # transport failure, the redacted technical detail.
    return exc.errmsg if isinstance(exc, WeChatTransportError) else exc.explanation


def _call_wechat(
    *,
    account: OfficialAccount,
    actor,
    action: str,
    target: str,
    params: dict,
    call: Callable[[WeChatClient], object],
) -> None:
    """Run one WeChat call; on failure record it and raise `ServiceError`."""
    try:
        call(wechat_client_for(account))
    except WeChatError as exc:
        audit_event_record(
            actor=actor,
            action=action,
            official_account=account,
            target=target,
            params=params,
            ok=False,
            errcode=exc.errcode,
            message=_audit_text(exc),
        )
        raise ServiceError(wechat_error_message(exc), errcode=exc.errcode) from exc


def _agents_refresh(account: OfficialAccount) -> None:
    """Re-read the agent list from WeChat after a write, for what only WeChat knows
    (the new kf id, avatar URL, invitation expiry). The write already succeeded and the
    local row already shows it, so a failure here is only logged; the next sync heals."""
    try:
        agents_sync(account_id=account.pk)
    except WeChatError as exc:
        logger.warning("Agent list refresh after a write failed for account %s: %s", account.pk, exc)


# --------------------------------------------------------------------------- agents


def agent_create(*, account: OfficialAccount, actor, prefix: str, nickname: str) -> Agent:
    """Add the kf account `prefix@<account.wechat_id>` with `nickname` at WeChat."""
    if not account.wechat_id:
        raise ServiceError(
            _("Set the official account's WeChat ID first: every kf account ends with it.")
        )
    kf_account = account.full_kf_account(prefix)
    params = {"nickname": nickname}
    _call_wechat(
        account=account,
        actor=actor,
        action="agent_add",
        target=kf_account,
        params=params,
        call=lambda client: client.add_account(kf_account, nickname),
    )
    with transaction.atomic():
        agent, _created = Agent.objects.update_or_create(
            official_account=account,
            kf_account=kf_account,
            defaults={
                "kf_nick": nickname,
                "kf_id": "",
                "kf_headimgurl": "",
                "kf_wx": "",
                "invite_wx": "",
                "invite_status": "",
                "invite_expire_time": None,
                "online_status": 0,
                "accepted_case": 0,
                "deleted_at": None,
                "last_listed_at": timezone.now(),
            },
        )
        audit_event_record(
            actor=actor, action="agent_add", official_account=account, target=kf_account, params=params
        )
    _agents_refresh(account)
    agent.refresh_from_db()
    return agent


def agent_update(*, agent: Agent, actor, nickname: str) -> Agent:
    """Change an agent's nickname at WeChat, then here."""
    account = agent.official_account
    params = {"nickname": nickname, "previous": agent.kf_nick}
    _call_wechat(
        account=account,
        actor=actor,
        action="agent_update",
        target=agent.kf_account,
        params=params,
        call=lambda client: client.update_account(agent.kf_account, nickname),
    )
    with transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(kf_nick=nickname, updated_at=timezone.now())
        audit_event_record(
            actor=actor, action="agent_update", official_account=account, target=agent.kf_account, params=params
        )
    agent.refresh_from_db()
    return agent


def _agent_mark_deleted(agent: Agent) -> None:
    # Kept as a soft-deleted row (as the agents sync does): history and sessions still
    # name it, and an agent added again under the same account comes back.
    Agent.objects.filter(pk=agent.pk).update(
        deleted_at=timezone.now(), online_status=0, accepted_case=0, updated_at=timezone.now()
    )


def agent_delete(*, agent: Agent, actor) -> None:
    """Delete an agent's kf account at WeChat, then mark it deleted here."""
    account = agent.official_account
    try:
        wechat_client_for(account).delete_account(agent.kf_account)
    except WeChatError as exc:
        if exc.errcode != 65401:
            audit_event_record(
                actor=actor,
                action="agent_delete",
                official_account=account,
                target=agent.kf_account,
                ok=False,
                errcode=exc.errcode,
                message=_audit_text(exc),
            )
            raise ServiceError(wechat_error_message(exc), errcode=exc.errcode) from exc
        # 65401: WeChat has no such account any more; the local row was just stale.
        message = gettext_noop("WeChat no longer had this kf account; removed it here too.")
    else:
        message = ""
    with transaction.atomic():
        _agent_mark_deleted(agent)
        audit_event_record(
            actor=actor, action="agent_delete", official_account=account, target=agent.kf_account, message=message
        )


def agent_avatar_upload(*, agent: Agent, actor, content: bytes, width: int, height: int) -> Agent:
    """Upload a JPEG (already checked by the form) as the agent's avatar."""
    account = agent.official_account
    params = {"bytes": len(content), "width": width, "height": height}
    _call_wechat(
        account=account,
        actor=actor,
        action="agent_avatar",
        target=agent.kf_account,
        params=params,
        call=lambda client: client.upload_avatar(agent.kf_account, content),
    )
    audit_event_record(
        actor=actor, action="agent_avatar", official_account=account, target=agent.kf_account, params=params
    )
    # Only WeChat knows the new avatar's URL.
    _agents_refresh(account)
    agent.refresh_from_db()
    return agent


def agent_invite(*, agent: Agent, actor, invite_wx: str) -> Agent:
    """Invite the WeChat user `invite_wx` to bind the agent's kf account."""
    account = agent.official_account
    if not agent_can_invite(agent):
        if agent.kf_wx:
            raise ServiceError(_("This kf account is already bound to a WeChat user."))
        raise ServiceError(
            _("This kf account already has a pending invitation. Wait for it to be accepted or to expire.")
        )
    params = {"invite_wx": invite_wx}
    _call_wechat(
        account=account,
        actor=actor,
        action="agent_invite",
        target=agent.kf_account,
        params=params,
        call=lambda client: client.invite_worker(agent.kf_account, invite_wx),
    )
    with transaction.atomic():
        # The expiry is WeChat's; the refresh below fetches it.
        Agent.objects.filter(pk=agent.pk).update(
            invite_wx=invite_wx,
            invite_status=Agent.InviteStatus.WAITING,
            invite_expire_time=None,
            updated_at=timezone.now(),
        )
        audit_event_record(
            actor=actor, action="agent_invite", official_account=account, target=agent.kf_account, params=params
        )
    _agents_refresh(account)
    agent.refresh_from_db()
    return agent


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class RoleChoice:
    """A user's role on one official account: role "" means no access."""

    account: OfficialAccount
    role: str
    agent: Agent | None = None


def _roles_apply(*, actor, user, roles: list[RoleChoice], action: str) -> None:
    current = {m.official_account_id: m for m in Membership.objects.filter(user=user)}
    for choice in roles:
        account = choice.account
        agent = choice.agent if choice.role == Membership.Role.AGENT else None
        if agent is not None and agent.official_account_id != account.pk:
            raise ServiceError(_("The kf account must belong to the same official account."))
        membership = current.get(account.pk)
        if not choice.role:
            if membership is None:
                continue
            membership.delete()
        elif membership is None:
            Membership.objects.create(user=user, official_account=account, role=choice.role, agent=agent)
        elif (membership.role, membership.agent_id) != (choice.role, agent.pk if agent else None):
            membership.role = choice.role
            membership.agent = agent
            membership.save(update_fields=["role", "agent"])
        else:
            continue
        audit_event_record(
            actor=actor,
            action=action,
            official_account=account,
            target=user.get_username(),
            params={"role": choice.role or "none", "agent": agent.kf_account if agent else ""},
        )


@transaction.atomic
def user_create(*, actor, username: str, password: str, roles: list[RoleChoice]):
    """A new dashboard login with `password` and the given roles."""
    if not any(choice.role for choice in roles):
        raise ServiceError(_("Give the new user a role on at least one official account."))
    user = User(username=username, is_active=True)
    user.set_password(password)
    user.save()
    _roles_apply(actor=actor, user=user, roles=roles, action="user_create")
    return user


@transaction.atomic
def user_roles_set(*, actor, user, roles: list[RoleChoice]) -> None:
    """Set `user`'s role on each account in `roles` (other accounts are untouched)."""
    if user.pk == actor.pk:
        raise ServiceError(_("You cannot change your own roles; ask another supervisor."))
    _roles_apply(actor=actor, user=user, roles=roles, action="user_role")


@transaction.atomic
def user_active_set(*, actor, user, active: bool) -> None:
    """Deactivate (the login stops working at once) or reactivate a user."""
    if user.pk == actor.pk:
        raise ServiceError(_("You cannot deactivate yourself."))
    if user.is_active == active:
        return
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        # End their open sessions now rather than at the next request.
        _user_sessions_end(user)
    for membership in Membership.objects.filter(user=user).select_related("official_account"):
        audit_event_record(
            actor=actor,
            action="user_activate" if active else "user_deactivate",
            official_account=membership.official_account,
            target=user.get_username(),
        )


def _user_sessions_end(user) -> None:
    """Delete every session logged in as `user` through the session engine, so a cached
    copy (the cached_db engine with CACHE_URL) goes too: deleting only the rows left
    the cache entry, and the old cookie worked again once the user was reactivated."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get(auth.SESSION_KEY)) == str(user.pk):
            store(session_key=session.session_key).delete()


@transaction.atomic
def user_password_set(*, actor, user, password: str) -> None:
    """A supervisor sets a new password for someone who lost theirs."""
    user.set_password(password)
    user.save(update_fields=["password"])
    for membership in Membership.objects.filter(user=user).select_related("official_account"):
        audit_event_record(
            actor=actor,
            action="user_password",
            official_account=membership.official_account,
            target=user.get_username(),
        )


def password_change_record(*, user) -> None:
    """Audit a user changing their own password (Django's form saved it)."""
    for membership in Membership.objects.filter(user=user).select_related("official_account"):
        audit_event_record(
            actor=user,
            action="user_password",
            official_account=membership.official_account,
            target=user.get_username(),
        )


# --------------------------------------------------------------------------- sync


# The task each "Sync now" button queues; each takes the official account's id.
SYNC_TASKS: dict[str, str] = {
    SyncState.Job.AGENTS: "accounts.tasks.sync_agents_task",
    SyncState.Job.ONLINE: "accounts.tasks.sync_online_task",
    SyncState.Job.QUEUE: "sessions_app.tasks.sync_queue_task",
    SyncState.Job.SESSIONS: "sessions_app.tasks.sync_sessions_task",
    SyncState.Job.HISTORY: "messaging.tasks.sync_history_task",
    SyncState.Job.LIBRARY: "messaging.tasks.sync_library_task",
}


def sync_run(*, account: OfficialAccount, actor, job: str) -> None:
    """Queue one run of `job` for `account`, after the surrounding transaction commits."""
    path = SYNC_TASKS.get(job)
    if path is None:
        raise ServiceError(_("This job cannot be started by hand."))
    task = import_string(path)
    account_id = account.pk
    transaction.on_commit(lambda: task.delay(account_id))
    audit_event_record(actor=actor, action=SYNC_RUN_ACTION, official_account=account, target=job)


# --------------------------------------------------------------------------- alerts


@transaction.atomic
def alert_preference_set(
    *, user, account: OfficialAccount, title_count: bool, sound: bool, notify: bool
) -> AlertPreference:
    """A person chooses how they are alerted (audited on the account they work on)."""
    preference, _created = AlertPreference.objects.update_or_create(
        user=user, defaults={"title_count": title_count, "sound": sound, "notify": notify}
    )
    audit_event_record(
        actor=user, action="alert_settings", official_account=account, target=user.get_username(),
        params={"title_count": title_count, "sound": sound, "notify": notify},
    )
    return preference


@transaction.atomic
def alert_thresholds_set(
    *, account: OfficialAccount, actor, queue_wait_seconds: int, unanswered_seconds: int
) -> None:
    """A supervisor sets when a waiting or unanswered customer counts as waiting too long."""
    before = OfficialAccount.objects.filter(pk=account.pk).values(
        "alert_queue_wait_seconds", "alert_unanswered_seconds"
    ).get()
    OfficialAccount.objects.filter(pk=account.pk).update(
        alert_queue_wait_seconds=queue_wait_seconds, alert_unanswered_seconds=unanswered_seconds
    )
    account.alert_queue_wait_seconds = queue_wait_seconds
    account.alert_unanswered_seconds = unanswered_seconds
    audit_event_record(
        actor=actor, action="alert_thresholds", official_account=account, target=account.name,
        params={
            "queue_wait_seconds": queue_wait_seconds,
            "unanswered_seconds": unanswered_seconds,
            "before": before,
        },
    )


# --------------------------------------------------------------------------- catalogue

# The WeChat client's sentences (kfadmin/wechat/errors.py), marked here so that
# `makemessages` keeps them in the catalogue; wechat_error_message() translates them
# by their text. tests/test_i18n.py fails when the client's wording and this list part.
_WECHAT_SENTENCES = (
    gettext_noop('WeChat is busy right now. Try again in a few seconds.'),
    gettext_noop('WeChat rejected the credentials: the AppSecret is wrong or the access token is no longer valid (another system may have fetched a newer one). Check the AppSecret and make sure only one system refreshes the token.'),
    gettext_noop('The token request used an invalid grant_type; it must be client_credential.'),
    gettext_noop('WeChat does not know this customer (invalid openid). Check that the openid belongs to this official account.'),
    gettext_noop('WeChat does not know this media type. Upload an image, voice, video or thumbnail.'),
    gettext_noop('WeChat rejected the file type. Avatars and thumbnails must be JPG, images PNG, JPG or GIF, voice AMR or MP3, video MP4.'),
    gettext_noop('WeChat rejected the file size. Images and voice may be at most 2 MB, video 10 MB, thumbnails 64 KB.'),
    gettext_noop('The media_id is invalid or has expired. Upload the media again and use the new id.'),
    gettext_noop('WeChat does not accept this message type.'),
    gettext_noop('The image file size is not accepted. Use a JPG of at most 5 MB.'),
    gettext_noop('WeChat does not recognise this AppID. Check the AppID configured for the official account.'),
    gettext_noop('The access token is invalid. A fresh token will be fetched; if this persists, check that no other system is invalidating it.'),
    gettext_noop('The request contained \\uXXXX-escaped characters, which WeChat refuses. This is a bug in the client.'),
    gettext_noop('WeChat does not know this URL. This is a bug in the client (wrong API path).'),
    gettext_noop("WeChat rejected the AppSecret. Copy it again from the official account's developer settings."),
    gettext_noop("This server's IP address is not in the official account's IP whitelist. Add it in the developer settings."),
    gettext_noop('This type of official account cannot use this feature (test accounts cannot send menu messages).'),
    gettext_noop('The request reached WeChat without an access token. This is a bug in the client.'),
    gettext_noop('The token request is missing the AppID. Configure the AppID.'),
    gettext_noop('The token request is missing the AppSecret. Configure the AppSecret.'),
    gettext_noop('The upload contained no file. Choose a file and try again.'),
    gettext_noop('The access token has expired. A fresh token will be fetched automatically.'),
    gettext_noop('WeChat requires a POST request here. This is a bug in the client.'),
    gettext_noop('This customer does not follow the official account, so WeChat will not deliver the message.'),
    gettext_noop("This customer is on the official account's blacklist. Remove them from the blacklist to send messages."),
    gettext_noop('The request body was empty. This is a bug in the client.'),
    gettext_noop('The message is too long for WeChat. Shorten it and send again.'),
    gettext_noop('WeChat accepts only one article per news message. Remove the extra articles.'),
    gettext_noop('The daily call quota for this WeChat API is used up. Wait until tomorrow or reset the quota in the official account platform.'),
    gettext_noop('Too many calls to this WeChat API in the last minute. Wait a minute and try again.'),
    gettext_noop('This customer has not written in the last 48 hours (or has unfollowed the account), so WeChat will not deliver the message. Wait until they write again.'),
    gettext_noop('You have already sent this customer as many messages as WeChat allows since their last interaction. Wait until they write again.'),
    gettext_noop('The typing command is invalid; it must be Typing or CancelTyping.'),
    gettext_noop("The typing indicator can only be shown within 30 seconds of the customer's last message."),
    gettext_noop('The typing indicator is already showing. Wait 15 seconds before sending it again.'),
    gettext_noop('WeChat could not understand the message content (invalid type). Check the message fields.'),
    gettext_noop('This official account is not authorised to use this API. Check its verification status and permissions.'),
    gettext_noop('WeChat reported a system error. Try again later.'),
    gettext_noop('WeChat reported an invalid parameter. Check the input.'),
    gettext_noop('The kf account is invalid. Use the form prefix@official_account_wechat_id.'),
    gettext_noop('A kf account with this name already exists. Choose another name.'),
    gettext_noop('The kf account name is too long. Use at most 10 letters or digits before the @.'),
    gettext_noop('The kf account name contains characters WeChat does not allow. Use letters and digits only.'),
    gettext_noop('The official account already has the maximum number of kf accounts. Delete one first.'),
    gettext_noop('WeChat rejected the avatar file type. Upload a JPG image.'),
    gettext_noop('Another agent is already serving this customer.'),
    gettext_noop('The agent is not online. Ask them to log in first.'),
    gettext_noop('WeChat rejected the date format of the query.'),
    gettext_noop('The new customer-service feature is not enabled for this official account (or was enabled only minutes ago). Enable it in the official account platform and wait a while.'),
    gettext_noop('This kf account does not exist. Refresh the agent list; it may have been deleted.'),
    gettext_noop('This kf account is not bound to a WeChat user yet. Invite an agent to bind it first.'),
    gettext_noop('WeChat rejected the nickname. Use at most 16 characters without special symbols.'),
    gettext_noop("WeChat rejected the kf account. Use up to 10 letters, digits or underscores, then @ and the official account's WeChat ID."),
    gettext_noop('The official account already has the maximum number of kf accounts (100). Delete one before adding another.'),
    gettext_noop('This WeChat user is already an agent of this official account.'),
    gettext_noop('This WeChat user has already been invited. Wait for them to accept or for the invitation to expire.'),
    gettext_noop("WeChat does not know this WeChat ID. Check the agent's WeChat ID and invite again."),
    gettext_noop('This WeChat user is already bound to too many kf accounts. Unbind one first.'),
    gettext_noop('This kf account already has a pending invitation. Wait for it to be accepted or to expire.'),
    gettext_noop('This kf account is already bound to a WeChat user.'),
    gettext_noop('This customer has no open session. Refresh the session list.'),
    gettext_noop('Another agent is already serving this customer. Close that session or transfer it instead.'),
    gettext_noop('The agent is not online. Ask them to log in to the web kf client first.'),
    gettext_noop('WeChat rejected the chat-history query parameters. Check the time window, msgid and number.'),
    gettext_noop('The chat-history query spans more than 24 hours. Query at most 24 hours at a time.'),
    gettext_noop("WeChat requires an administrator to confirm calls from this server's IP address. Ask an administrator to confirm it in the official account platform."),
)
