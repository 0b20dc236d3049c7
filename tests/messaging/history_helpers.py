"""Helpers shared by the history-sync tests (tests/messaging, tests/reliability)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from kfadmin.wechat import WeChatRetryableError
from messaging.models import MessageRecord

MSGLIST_PATH = "/customservice/msgrecord/getmsglist"

T = TypeVar("T")


def now_s() -> int:
    return int(time.time())


def at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def emulator_records(emulator) -> Counter:
    """Every record the emulator holds for the test account, as a multiset."""
    store = emulator.state.record_store(appid=emulator.appid)
    rows = store.dump(limit=10**9)
    return Counter((r["time"], r["worker"], r["openid"], r["opercode"], r["text"]) for r in rows)


def archive_records(account) -> Counter:
    """Every archived record of `account`, as the same multiset."""
    rows = MessageRecord.objects.filter(official_account=account).values_list(
        "time", "worker", "openid", "opercode", "text"
    )
    return Counter((int(t.timestamp()), w, o, c, x) for t, w, o, c, x in rows)


def msglist_calls(emulator) -> list:
    return [c for c in emulator.calls if c.path == MSGLIST_PATH]


def until_done(run: Callable[[], T], *, attempts: int = 40) -> tuple[T, int]:
    """Call `run` again after each retryable WeChat error, like the task's autoretry.
    Returns the result and how many attempts failed."""
    failures = 0
    for _ in range(attempts):
        try:
            return run(), failures
        except WeChatRetryableError:
            failures += 1
    raise AssertionError(f"still failing after {attempts} attempts")


class Killed(Exception):
    """Stands for a worker dying between two pages."""


def kill_after(pages: int) -> Callable:
    """An `on_page` hook that 'kills' the sync after `pages` stored pages."""
    seen = {"n": 0}

    def hook(page) -> None:
        seen["n"] += 1
        if seen["n"] == pages:
            raise Killed(f"killed after page {pages}")

    return hook
