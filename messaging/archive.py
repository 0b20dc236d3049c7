"""Who hears about changes to the archive.

Apps above messaging keep figures derived from the archive (the reports' rollups);
they register a listener when they load, and every path that stores or deletes
records (the history sync's storing of a page, which the live tail shares; the
callback receiver; kfadmin's own sends) calls `archive_changed` inside its
transaction, with the customers and times it touched. A listener must be idempotent:
being told twice about the same records changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from accounts.live import MESSAGES, conversation_domain, live_bump

# (account id, [(openid, time), …]) of the records stored or deleted.
ArchiveListener = Callable[[int, list[tuple[str, datetime]]], None]

_listeners: list[ArchiveListener] = []


def archive_listen(listener: ArchiveListener) -> None:
    """Call `listener` on every change of the archive (once per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def archive_changed(*, account_id: int, changes: Iterable[tuple[str, datetime]]) -> None:
    """Tell the listeners which records of an account were stored or deleted."""
    touched = list(changes)
    if not touched:
        return
    # The live regions showing these conversations render on their next poll.
    live_bump(account_id, MESSAGES, *{conversation_domain(openid) for openid, _ in touched})
    for listener in _listeners:
        listener(account_id, touched)
