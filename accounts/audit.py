"""Writing the audit log: every service that changes something here or at WeChat calls this."""

from __future__ import annotations

from typing import Any

from accounts.live import live_changed
from accounts.models import AuditEvent, OfficialAccount

_SECRET_KEYS = {"secret", "password", "access_token", "callback_token", "encoding_aes_key"}


def audit_event_record(
    *,
    actor: Any | None,
    action: str,
    official_account: OfficialAccount | None = None,
    target: str = "",
    params: dict | None = None,
    ok: bool = True,
    errcode: int | None = None,
    message: str = "",
) -> AuditEvent:
    """Record who did what. `actor` is a user, or None for the system (sync, tasks)."""
    clean = {k: ("•••" if k in _SECRET_KEYS else v) for k, v in (params or {}).items()}
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if official_account is not None:
        # The account's live regions must show this change on their next refresh.
        live_changed(account_id=official_account.pk)
    return AuditEvent.objects.create(
        actor=user,
        actor_label=user.get_username() if user is not None else "system",
        official_account=official_account,
        action=action,
        target=target[:200],
        params=clean,
        result=AuditEvent.Result.OK if ok else AuditEvent.Result.ERROR,
        errcode=errcode,
        message=message,
    )
