"""Customers (openids of an official account) and their kf sessions, including the queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Agent, OfficialAccount

# The reply window's grants (wechat-kf-api.md §6.4; the rules are in sessions_app.services).
MESSAGE_WINDOW = timedelta(hours=48)
MESSAGE_BUDGET = 5
EVENT_WINDOW = timedelta(seconds=60)
EVENT_BUDGET = 3

# The customer's profile kept by kfadmin (sessions_app.services.customer_profile_update).
REMARK_NAME_MAX = 64
TAG_MAX = 24
TAGS_MAX = 12
NOTE_MAX = 2000


class Customer(models.Model):
    """A WeChat user as the official account knows them, with their reply window.

    WeChat accepts kf messages only after the customer interacted, through two grants
    kept apart (wechat-kf-api.md §6.4): a message grants 5 sends within 48 h; a menu
    click, follow or QR scan grants 3 within a minute and "does not create the
    user-message quota". A send spends the running grant that ends first. kfadmin
    derives both from records, callbacks and its own sends (sessions_app.services).
    """

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="customers")
    openid = models.CharField(max_length=64)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    last_message_at = models.DateTimeField(null=True, blank=True, help_text="Latest message from the customer.")
    # The message grant (5 sends, 48 h from last_message_at).
    window_expires_at = models.DateTimeField(null=True, blank=True)
    window_remaining = models.PositiveSmallIntegerField(default=0)
    # The event grant (3 sends, 60 s from last_event_at: follow, menu click, scan).
    last_event_at = models.DateTimeField(null=True, blank=True, help_text="Latest follow, menu click or scan.")
    event_expires_at = models.DateTimeField(null=True, blank=True)
    event_remaining = models.PositiveSmallIntegerField(default=0)
    # Last interaction of any kind, for the typing indicator's 30-second rule.
    last_interaction_at = models.DateTimeField(null=True, blank=True)
    # kfadmin's own words about the customer (WeChat's user-info API is not among the
    # kf operations kfadmin calls): a name people recognise, and free-text tags.
    # Defaults in the database too: the bulk touches and the benchmarks insert rows with SQL.
    remark_name = models.CharField(max_length=REMARK_NAME_MAX, blank=True, default="", db_default="")
    tags = models.JSONField(
        default=list, db_default=Value([], output_field=models.JSONField()), blank=True,
        help_text="Short labels, e.g. ['VIP', 'refund'].",
    )

    # Everything the reply window is read from (refresh these to show it fresh).
    WINDOW_FIELDS = (
        "last_message_at", "window_expires_at", "window_remaining",
        "last_event_at", "event_expires_at", "event_remaining", "last_interaction_at",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "openid"], name="customer_unique_openid"),
        ]
        indexes = [models.Index(fields=["official_account", "-last_seen_at"], name="customer_recent")]

    def __str__(self) -> str:
        return self.openid

    def grants(self, now: datetime | None = None) -> list[Grant]:
        """The grants running at `now` (used up or not), the one a send spends first
        (the one that ends first) first."""
        now = now or timezone.now()
        running = [
            Grant(kind, expires_at, remaining)
            for kind, expires_at, remaining in (
                (Grant.Kind.EVENT, self.event_expires_at, self.event_remaining),
                (Grant.Kind.MESSAGE, self.window_expires_at, self.window_remaining),
            )
            if expires_at is not None and expires_at > now
        ]
        return sorted(running, key=lambda g: g.expires_at)

    def window_running(self, now: datetime | None = None) -> bool:
        """Some grant runs: WeChat answers a send with 45047 when its sends are used up,
        not 45015."""
        return bool(self.grants(now))

    def sends_left(self, now: datetime | None = None) -> int:
        return sum(g.remaining for g in self.grants(now))

    def window_open(self, now: datetime | None = None) -> bool:
        """WeChat would take one more message now."""
        return self.sends_left(now) > 0

    @property
    def display_name(self) -> str:
        """The remark name people gave the customer, else the openid."""
        return self.remark_name or self.openid


class CustomerNote(models.Model):
    """Something a person wrote down about a customer, kept with who and when."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    # The username at the time: the note keeps its author if the user is deleted.
    author_label = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"], name="customernote_customer_at")]

    def __str__(self) -> str:
        return f"{self.customer} · {self.author_label} · {self.created_at:%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class Grant:
    """One running reply grant of a customer."""

    class Kind(StrEnum):
        MESSAGE = "message"  # the customer wrote: 5 sends, 48 h
        EVENT = "event"  # follow, menu click or scan: 3 sends, 60 s

    kind: Kind
    expires_at: datetime
    remaining: int


class KfSession(models.Model):
    """A customer waiting for, or being served by, one agent."""

    class State(models.TextChoices):
        WAITING = "waiting", _("waiting")
        OPEN = "open", _("open")
        CLOSED = "closed", _("closed")

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="kf_sessions")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="sessions")
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="sessions")
    state = models.CharField(max_length=8, choices=State.choices)
    created_at = models.DateTimeField(default=timezone.now, help_text="Queued, or WeChat's createtime.")
    accepted_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    latest_time = models.DateTimeField(null=True, blank=True, help_text="The customer's latest message.")
    last_synced_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # A customer is in at most one live session (waiting or open) at a time.
            models.UniqueConstraint(
                fields=["customer"], condition=~Q(state="closed"), name="kfsession_one_live_per_customer"
            ),
        ]
        indexes = [
            models.Index(fields=["official_account", "state", "created_at"], name="kfsession_state_created"),
            models.Index(fields=["agent", "state"], name="kfsession_agent_state"),
        ]

    def __str__(self) -> str:
        return f"{self.customer} · {self.state}"


class AutoAssign(models.Model):
    """An official account's auto-assignment: off (the default), on, or paused.

    When on, each queue sync hands waiting customers to online, bound agents below the
    account's capacity (`OfficialAccount.agent_capacity`), as `sessions_app.auto_assign`
    describes. Paused keeps the strategy and stops assigning until resumed."""

    class State(models.TextChoices):
        OFF = "off", _("off")
        ON = "on", _("assigning")
        PAUSED = "paused", _("paused")

    class Strategy(models.TextChoices):
        LEAST_LOADED = "least_loaded", _("Least loaded agent")
        LAST_AGENT = "last_agent", _("Their last agent, else the least loaded")

    official_account = models.OneToOneField(OfficialAccount, on_delete=models.CASCADE, related_name="auto_assign")
    state = models.CharField(max_length=8, choices=State.choices, default=State.OFF)
    strategy = models.CharField(max_length=16, choices=Strategy.choices, default=Strategy.LEAST_LOADED)
    changed_at = models.DateTimeField(null=True, blank=True)
    changed_by = models.CharField(max_length=150, blank=True, help_text="Username of who last changed it.")
    # The last run that found it on: when, and what it did (for the queue page).
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_assigned = models.PositiveIntegerField(default=0)
    last_failed = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.official_account} · auto-assignment {self.state}"


class AutoAssignClaim(models.Model):
    """A waiting session auto-assignment is handing to an agent, or will not try again
    before `until` (WeChat refused, or the outcome is unknown).

    Claimed under the account's AutoAssign row lock, so two queue syncs running at
    once never hand the same customer over twice, and an agent's claimed customers
    count against their capacity while WeChat is being asked."""

    session = models.OneToOneField(KfSession, on_delete=models.CASCADE, primary_key=True, related_name="auto_claim")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.session_id} → {self.agent_id} until {self.until:%H:%M:%S}"
