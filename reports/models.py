"""The rollups reports read instead of the archive: facts derived from a customer's
records (sessions, answers, queue waits) and message counts per hour.

Every row here is a function of the archive (reports/facts.py says how), kept in step
whenever messaging stores or deletes records (`reports.services.rollups_follow_archive`
notes the change in PendingCustomer / PendingHour, `rollups_catch_up` on the sync
queue derives it), and rebuilt from scratch by `manage.py reports_rebuild`. Times are WeChat's
whole seconds, so every duration is a whole number of seconds and the medians and
percentiles computed from these rows are exact. `origin_time` / `origin_id` name the
record a fact came from (its first record): a refresh of a customer from a given
record on deletes exactly the facts that came from that record or a later one.
"""

from __future__ import annotations

from django.db import models

from accounts.models import OfficialAccount


class SessionFact(models.Model):
    """One agent's hold of one customer's session: from its start (1001, 1002, 1005, or
    a transfer to this agent, 1003) to its close (1004) or transfer away (1003)."""

    class End(models.IntegerChoices):
        CLOSED = 1004
        TRANSFERRED = 1003
        # Another start arrived with no close between: WeChat lost the close record.
        SUPERSEDED = 0

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    openid = models.CharField(max_length=64)
    worker = models.CharField(max_length=64)
    origin_time = models.DateTimeField()
    origin_id = models.BigIntegerField()
    start_code = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    queued_at = models.DateTimeField(null=True)
    # When the first-response clock started: the start, if the customer was waiting for
    # an answer then, else the customer's first message in the session.
    asked_at = models.DateTimeField(null=True)
    first_reply_at = models.DateTimeField(null=True)
    ended_at = models.DateTimeField(null=True)
    end_code = models.PositiveSmallIntegerField(null=True, choices=End.choices)
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["official_account", "started_at"], name="sessionfact_started"),
            models.Index(fields=["official_account", "ended_at"], name="sessionfact_ended"),
            models.Index(fields=["official_account", "openid", "origin_time"], name="sessionfact_origin"),
            models.Index(fields=["official_account", "worker", "started_at"], name="sessionfact_worker"),
        ]

    def __str__(self) -> str:
        return f"{self.openid} {self.worker} {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def unanswered(self) -> bool:
        """Ended with the customer having written (or waiting at the start) and no answer."""
        return self.ended_at is not None and self.asked_at is not None and self.first_reply_at is None


class ResponseFact(models.Model):
    """An agent's message answering a customer's unanswered message within a session."""

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    openid = models.CharField(max_length=64)
    worker = models.CharField(max_length=64)
    origin_time = models.DateTimeField()
    origin_id = models.BigIntegerField()
    asked_at = models.DateTimeField()
    answered_at = models.DateTimeField()
    seconds = models.PositiveIntegerField()
    # The session's first answer (first response time); the others are reply times.
    first = models.BooleanField()

    class Meta:
        indexes = [
            models.Index(fields=["official_account", "asked_at"], name="responsefact_asked"),
            models.Index(fields=["official_account", "openid", "origin_time"], name="responsefact_origin"),
        ]

    def __str__(self) -> str:
        return f"{self.worker} {self.seconds}s"


class QueueFact(models.Model):
    """A customer's stay in the waiting queue: from 1000 to the session start that
    took them (served) or a close while waiting (left)."""

    class Outcome(models.TextChoices):
        WAITING = "", "waiting"
        SERVED = "served", "served"
        LEFT = "left", "left"

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    openid = models.CharField(max_length=64)
    worker = models.CharField(max_length=64, blank=True)
    origin_time = models.DateTimeField()
    origin_id = models.BigIntegerField()
    queued_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["official_account", "queued_at"], name="queuefact_queued"),
            models.Index(fields=["official_account", "openid", "origin_time"], name="queuefact_origin"),
        ]

    def __str__(self) -> str:
        return f"{self.openid} {self.queued_at:%Y-%m-%d %H:%M:%S} {self.outcome}"


class MessageHour(models.Model):
    """Messages of one UTC hour by one worker: customers' (in) and agents' (out)."""

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    worker = models.CharField(max_length=64, blank=True)
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "hour", "worker"], name="messagehour_key"),
        ]
        # The report's sums read only this index (an index-only scan once vacuumed).
        indexes = [
            models.Index(
                fields=["official_account", "hour", "worker", "messages_in", "messages_out"],
                name="messagehour_sums",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H} {self.worker} {self.messages_in}/{self.messages_out}"


class MessageDay(models.Model):
    """Messages of one UTC day by one worker: the sum of the day's MessageHour rows.

    A period of the account's local days is a run of whole UTC days plus the hours at
    its edges (in Asia/Shanghai, 8 hours before the first whole day and 16 after the
    last), so the per-agent sums read a day row instead of 24 hour rows."""

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    day = models.DateTimeField()  # 00:00 UTC
    worker = models.CharField(max_length=64, blank=True)
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "day", "worker"], name="messageday_key"),
        ]
        indexes = [
            models.Index(
                fields=["official_account", "day", "worker", "messages_in", "messages_out"],
                name="messageday_sums",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.worker} {self.messages_in}/{self.messages_out}"


class TeamHour(models.Model):
    """Messages of one UTC hour, all workers together: the sum of the hour's
    MessageHour rows (the page's series, days and heat map read these; a year is
    8,760 rows instead of one per worker and hour)."""

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    messages_in = models.PositiveIntegerField(default=0)
    messages_out = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "hour"], name="teamhour_key"),
        ]
        indexes = [
            models.Index(fields=["official_account", "hour", "messages_in", "messages_out"], name="teamhour_sums"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H} {self.messages_in}/{self.messages_out}"


class PendingCustomer(models.Model):
    """A customer whose facts a change of the archive made stale from `since` on.

    The storing path only appends these (one bulk insert per page, never a conflict
    or a lock); `reports.services.rollups_catch_up`, on the sync queue, derives the
    customers again and deletes exactly the rows it read. Duplicates are harmless:
    deriving again is a recomputation."""

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    openid = models.CharField(max_length=64)
    since = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["official_account", "id"], name="pendingcustomer_order")]

    def __str__(self) -> str:
        return f"{self.openid} since {self.since:%Y-%m-%d %H:%M:%S}"


class PendingHour(models.Model):
    """A UTC hour whose message counts a change of the archive made stale."""

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["official_account", "id"], name="pendinghour_order")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}"
