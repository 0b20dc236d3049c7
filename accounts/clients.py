"""WeChat clients for official accounts, sharing one access token through the database.

Every fetch of a classic token invalidates the previous one, so all web processes and
workers must use one stored token and refresh it under a lock (DESIGN.md "Access
token"). The token lives encrypted on the `OfficialAccount` row; a refresh locks that
row with `select_for_update`, re-reads it and fetches only if the token is still the
stale one, so N workers hitting an expired token cause exactly one fetch. On SQLite
`select_for_update` is a no-op, but its IMMEDIATE transactions take the database write
lock up front, which serialises refreshes the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime

import requests
from django.conf import settings
from django.db import transaction

from accounts.models import OfficialAccount
from kfadmin.wechat import WeChatClient, WeChatError, WeChatTransportError
from kfadmin.wechat.token import CachedToken


class DatabaseTokenStore:
    """`kfadmin.wechat.token.TokenStore` on `OfficialAccount.access_token`, keyed by AppID."""

    def __repr__(self) -> str:
        return "DatabaseTokenStore()"

    def get(self, appid: str) -> CachedToken | None:
        row = (
            OfficialAccount.objects.filter(appid=appid)
            .values_list("access_token", "access_token_expires_at")
            .first()
        )
        return _cached(row)

    def set(self, appid: str, token: str, expires_at: datetime) -> None:
        OfficialAccount.objects.filter(appid=appid).update(
            access_token=token, access_token_expires_at=expires_at
        )

    def refresh(
        self, appid: str, fetch: Callable[[], CachedToken], stale_token: str | None
    ) -> CachedToken:
        with transaction.atomic():
            # Waits here while another process refreshes, then sees its result.
            row = (
                OfficialAccount.objects.select_for_update()
                .filter(appid=appid)
                .values_list("access_token", "access_token_expires_at")
                .first()
            )
            current = _cached(row)
            if current is not None and current.access_token != stale_token and current.is_fresh():
                return current
            token = fetch()
            self.set(appid, token.access_token, token.expires_at)
            return token


def _cached(row: tuple[str, datetime | None] | None) -> CachedToken | None:
    if row is None:
        return None
    token, expires_at = row
    if not token or expires_at is None:
        return None
    return CachedToken(token, expires_at)


class _Clients(threading.local):
    """This thread's clients, by account. One client per thread because a
    `requests.Session` is not promised to be thread-safe (psf/requests#2766: one
    session per thread is the maintainers' advice), and a lock around a shared one
    would make a slow send hold up every other of the process. The cost is one pool
    per thread and account, bounded by gunicorn's threads and the worker concurrency."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.by_account: dict[int | str, tuple[tuple[object, ...], WeChatClient]] = {}


_clients = _Clients()


def wechat_client_for(account: OfficialAccount) -> WeChatClient:
    """A client for `account` that shares the database-stored access token.

    The same client (and its connection pool, so calls reuse a kept-alive
    connection) comes back on every call in this thread and process until the
    account's AppID, secret, API base URL or token endpoint, or WECHAT_TIMEOUT, change."""
    clients = _clients
    if clients.pid != os.getpid():
        # A forked child (a Celery prefork worker) must not write on the parent's
        # pooled sockets; the parent's clients are dropped, not closed, as the
        # parent still uses those connections.
        clients.pid = os.getpid()
        clients.by_account = {}
    config = (
        account.appid,
        account.secret,
        account.api_base_url,
        account.token_endpoint,
        settings.WECHAT_TIMEOUT,
    )
    key = account.pk if account.pk is not None else account.appid
    cached = clients.by_account.get(key)
    if cached is not None and cached[0] == config:
        return cached[1]
    client = WeChatClient(
        account.appid,
        account.secret,
        base_url=account.api_base_url,
        timeout=settings.WECHAT_TIMEOUT,
        token_endpoint=account.token_endpoint,
        token_store=DatabaseTokenStore(),
    )
    clients.by_account[key] = (config, client)
    if cached is not None:
        cached[1].close()
    return client


def emulator_callback_set(*, account: OfficialAccount, url: str, mode: str = "safe") -> None:
    """Point the bundled emulator's message push for `account` at `url`.

    Only the emulator has this (real WeChat's push URL is set in its admin console).
    Raises `WeChatTransportError` (retryable) while the emulator is not up, and
    `WeChatError` if it refuses, e.g. because it does not know the account.
    """
    endpoint = f"{account.api_base_url.rstrip('/')}/__emulator__/set_callback"
    try:
        response = requests.post(
            endpoint, json={"appid": account.appid, "url": url, "mode": mode}, timeout=settings.WECHAT_TIMEOUT
        )
        data = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise WeChatTransportError(f"The emulator at {endpoint} did not answer ({type(exc).__name__}).") from None
    if not isinstance(data, dict) or data.get("errcode") != 0:
        errmsg = data.get("errmsg", "") if isinstance(data, dict) else ""
        raise WeChatError(None, f"The emulator refused to set the callback URL: {errmsg}")
