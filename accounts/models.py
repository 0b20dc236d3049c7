"""Official accounts, their kf agent accounts, dashboard roles, sync state and the audit log."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kfadmin.secrets import EncryptedTextField


class OfficialAccount(models.Model):
    class TokenEndpoint(models.TextChoices):
        STABLE = "stable_token", _("Stable token (recommended)")
        CLASSIC = "token", _("Classic token")

    class CallbackMode(models.TextChoices):
        # As set in WeChat's console (消息加解密方式); the values are the emulator's.
        PLAIN = "plain", _("Plaintext")
        COMPAT = "compat", _("Compatible")
        SAFE = "safe", _("Safe (AES)")

    name = models.CharField(_("name"), max_length=64)
    appid = models.CharField(_("AppID"), max_length=32, unique=True)
    secret = EncryptedTextField(_("AppSecret"))
    wechat_id = models.CharField(
        _("WeChat ID"), max_length=30, help_text=_("The official account's WeChat ID: the part after @ in every kf account.")
    )
    original_id = models.CharField(_("original ID"), max_length=32, blank=True, help_text="gh_…")
    callback_token = EncryptedTextField(_("callback token"), blank=True)
    encoding_aes_key = EncryptedTextField(_("EncodingAESKey"), blank=True)
    callback_mode = models.CharField(
        _("message encryption"), max_length=8, choices=CallbackMode.choices, default=CallbackMode.SAFE,
        help_text=_("As set in WeChat's console. In safe mode the callback receiver refuses plaintext pushes."),
    )
    api_base_url = models.URLField(_("API base URL"), default="https://api.weixin.qq.com")
    token_endpoint = models.CharField(
        _("token endpoint"), max_length=16, choices=TokenEndpoint.choices, default=TokenEndpoint.STABLE
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="Asia/Shanghai")
    agent_capacity = models.PositiveSmallIntegerField(
        _("sessions per agent"), default=5, help_text=_("How many sessions one agent can hold; drives load bars and warnings.")
    )
    # The shared access token: one fetch for all processes, refreshed under a row lock.
    access_token = EncryptedTextField(blank=True, default="")
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    # WeChat's true number of waiting customers (the list itself is capped at 100).
    waiting_count = models.PositiveIntegerField(default=0)
    # Alert thresholds (supervisors edit them): highlighted in the queue and the inbox,
    # and alerted to supervisors.
    alert_queue_wait_seconds = models.PositiveIntegerField(
        _("waiting in the queue longer than (seconds)"), default=180,
        help_text=_(
            "A customer waiting this long for an agent is highlighted and alerted to supervisors; "
            "the reports count such waits as too long."
        ),
    )
    alert_unanswered_seconds = models.PositiveIntegerField(
        _("unanswered longer than (seconds)"), default=120,
        help_text=_("A customer in a session waiting this long for an answer is highlighted and alerted to supervisors."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("official account")
        verbose_name_plural = _("official accounts")

    def __str__(self) -> str:
        return self.name

    def full_kf_account(self, prefix: str) -> str:
        return f"{prefix}@{self.wechat_id}"

    @property
    def zone(self) -> ZoneInfo:
        """The account's time zone: its days, and the times its pages show. A name
        this machine does not know falls back to settings.TIME_ZONE rather than
        failing every page of the account."""
        try:
            return ZoneInfo(self.time_zone or settings.TIME_ZONE)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(settings.TIME_ZONE)


class AgentQuerySet(models.QuerySet["Agent"]):
    def listed(self) -> AgentQuerySet:
        """The kf accounts WeChat still lists: a deleted one keeps its row (and its
        history) with `deleted_at` set."""
        return self.filter(deleted_at__isnull=True)


class Agent(models.Model):
    """A kf account ("客服帐号") as WeChat lists it, plus what kfadmin learned about it."""

    class InviteStatus(models.TextChoices):
        NONE = "", _("none")
        WAITING = "waiting", _("waiting")
        REJECTED = "rejected", _("rejected")
        EXPIRED = "expired", _("expired")

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="agents")
    kf_account = models.CharField(_("kf account"), max_length=64)
    kf_id = models.CharField(_("kf id"), max_length=32, blank=True)
    kf_nick = models.CharField(_("nickname"), max_length=32, blank=True)
    kf_headimgurl = models.URLField(_("avatar URL"), max_length=500, blank=True)
    kf_wx = models.CharField(_("bound WeChat ID"), max_length=64, blank=True)
    invite_wx = models.CharField(_("invited WeChat ID"), max_length=64, blank=True)
    invite_expire_time = models.DateTimeField(_("invitation expires"), null=True, blank=True)
    invite_status = models.CharField(_("invitation"), max_length=16, choices=InviteStatus.choices, blank=True)
    online_status = models.PositiveSmallIntegerField(_("online status"), default=0)  # 0 offline, 1 web online
    accepted_case = models.PositiveIntegerField(_("accepted sessions"), default=0)
    last_listed_at = models.DateTimeField(null=True, blank=True, help_text="When a sync last saw it in getkflist.")
    last_online_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, help_text="Set when WeChat no longer lists it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["kf_account"]
        constraints = [
            models.UniqueConstraint(fields=["official_account", "kf_account"], name="agent_unique_kf_account"),
        ]
        verbose_name = _("agent")
        verbose_name_plural = _("agents")

    def __str__(self) -> str:
        return f"{self.display_name} ({self.kf_account})"

    @property
    def display_name(self) -> str:
        """What people call the agent: the nickname, or the kf account while it has none."""
        return self.kf_nick or self.kf_account

    @property
    def prefix(self) -> str:
        return self.kf_account.split("@", 1)[0]

    @property
    def is_online(self) -> bool:
        return self.online_status > 0

    @property
    def is_bound(self) -> bool:
        return bool(self.kf_wx)


class AgentPresence(models.Model):
    """One row whenever an agent's online status or accepted count changes."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="presence")
    at = models.DateTimeField(default=timezone.now)
    online_status = models.PositiveSmallIntegerField()
    accepted_case = models.PositiveIntegerField()

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["agent", "-at"], name="presence_agent_at")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.at:%Y-%m-%d %H:%M} {self.online_status}/{self.accepted_case}"


class Membership(models.Model):
    """Gives a dashboard user a role on one official account."""

    class Role(models.TextChoices):
        SUPERVISOR = "supervisor", _("Supervisor")
        AGENT = "agent", _("Agent")
        AUDITOR = "auditor", _("Auditor")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    agent = models.ForeignKey(
        Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="memberships",
        help_text=_("For the agent role: the kf account this person works as."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "official_account"], name="membership_unique_user_account"),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.official_account} · {self.role}"


class SyncState(models.Model):
    """Progress and health of one periodic sync job for one official account."""

    class Job(models.TextChoices):
        AGENTS = "agents", _("Agents")
        ONLINE = "online", _("Online list")
        QUEUE = "queue", _("Waiting queue")
        SESSIONS = "sessions", _("Sessions")
        HISTORY = "history", _("Chat history")
        BACKFILL = "backfill", _("History backfill")
        TAIL = "tail", _("Live messages")
        LIBRARY = "library", _("Media library")

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="sync_states")
    job = models.CharField(max_length=16, choices=Job.choices)
    # Claimed by a worker while it runs (`accounts.sync.sync_state_claim`). The run
    # renews its lease as it makes progress (its heartbeat); a claim whose lease has
    # run out belongs to a dead or stuck run, and the next run takes it over.
    running_since = models.DateTimeField(null=True, blank=True)
    running_token = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # History: everything before this instant is stored.
    cursor = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    # WeChat answered 45009/45011 (a call quota used up): no run until then.
    paused_until = models.DateTimeField(null=True, blank=True)
    # Live tail: someone has a conversation of this account open in a browser (the
    # conversation's poll renews it), so the tail runs even without an open session.
    watched_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "job"], name="syncstate_unique_job"),
        ]

    def __str__(self) -> str:
        return f"{self.official_account} · {self.job}"

    @property
    def last_sign_of_life(self) -> datetime | None:
        """When the claiming run last renewed its lease (or started)."""
        return self.heartbeat_at or self.running_since

    def lease_expired(self, now: datetime) -> bool:
        """Claimed, but the run stopped renewing its lease: it died or hangs, and the
        next run takes the claim over."""
        return self.running_since is not None and (self.lease_until is None or self.lease_until < now)


class AuditEvent(models.Model):
    class Result(models.TextChoices):
        OK = "ok", _("succeeded")
        ERROR = "error", _("failed")

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    actor_label = models.CharField(max_length=150, help_text="Username at the time, or 'system'.")
    official_account = models.ForeignKey(OfficialAccount, on_delete=models.SET_NULL, null=True, blank=True)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.CharField(max_length=8, choices=Result.choices)
    errcode = models.IntegerField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["official_account", "-at"], name="audit_account_at"),
            models.Index(fields=["actor", "-at"], name="audit_actor_at"),
            models.Index(fields=["action", "-at"], name="audit_action_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.target}"


class AlertPreference(models.Model):
    """How one person wants to be told that a customer waits or wrote: each of the
    tab title's count, a sound and a browser notification, on or off."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_preference")
    title_count = models.BooleanField(_("count in the tab title"), default=True)
    sound = models.BooleanField(_("play a sound"), default=False)
    notify = models.BooleanField(_("browser notification"), default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user} alerts"
