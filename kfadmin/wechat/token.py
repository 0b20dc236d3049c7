"""Access-token provider and the store interface it caches in.

Every fetch of a classic token invalidates the previous one, so processes must
share one cached token and refresh it under a lock (wechat-kf-pitfalls.md §3). The
provider talks to WeChat; a :class:`TokenStore` keeps the token and serialises
refreshes — :class:`MemoryTokenStore` with a ``threading.Lock`` for one process, a
database-backed store with a row lock for many.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from .errors import WeChatInvalidArgument, WeChatResponseError
from .transport import ApiRequest, Transport
from .types import AccessToken, from_dict

__all__ = [
    "CachedToken",
    "MemoryTokenStore",
    "TokenEndpoint",
    "TokenProvider",
    "TokenStore",
]

logger = logging.getLogger("kfadmin.wechat")

TokenEndpoint = Literal["stable_token", "token"]
TOKEN_ENDPOINTS: tuple[str, ...] = ("stable_token", "token")
DEFAULT_MARGIN_SECONDS = 300.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CachedToken:
    """A token as kept in a :class:`TokenStore`.

    ``expires_at`` (timezone-aware) is the moment this client stops using the token:
    WeChat's expiry minus the safety margin, so a token read from a store is usable
    exactly while ``expires_at`` is in the future. ``wechat_expires_at`` is WeChat's
    own expiry (fetch time + the ``expires_in`` it answered), kept by stores that can;
    None when a store keeps only ``expires_at``.
    """

    access_token: str = field(repr=False)
    expires_at: datetime
    wechat_expires_at: datetime | None = None

    def is_fresh(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or _utcnow())

    def expires_in(self, now: datetime | None = None) -> int:
        """Whole seconds left before ``expires_at`` (never negative)."""
        return _seconds_until(self.expires_at, now)

    def wechat_expires_in(self, now: datetime | None = None) -> int:
        """Whole seconds WeChat still accepts the token; the client's own
        ``expires_in`` when WeChat's expiry was not kept."""
        if self.wechat_expires_at is None:
            return self.expires_in(now)
        return _seconds_until(self.wechat_expires_at, now)


def _seconds_until(moment: datetime, now: datetime | None) -> int:
    return max(0, math.floor((moment - (now or _utcnow())).total_seconds()))


@runtime_checkable
class TokenStore(Protocol):
    """Where tokens live between calls, keyed by AppID.

    ``refresh`` is the only way the provider replaces a token. An implementation
    must, while holding a lock shared by every process that uses the store:

    1. re-read the stored token;
    2. if it is fresh and differs from ``stale_token``, another process refreshed
       meanwhile — return it without calling ``fetch``;
    3. otherwise call ``fetch()``, store its result with :meth:`set` and return it.

    A Django store does this in ``transaction.atomic()`` with
    ``select_for_update()`` on the token row.
    """

    def get(self, appid: str) -> CachedToken | None: ...

    def set(self, appid: str, token: str, expires_at: datetime) -> None: ...

    def refresh(
        self, appid: str, fetch: Callable[[], CachedToken], stale_token: str | None
    ) -> CachedToken: ...


class MemoryTokenStore:
    """In-process :class:`TokenStore`; refreshes are serialised per AppID."""

    def __init__(self) -> None:
        self._tokens: dict[str, CachedToken] = {}
        self._lock = threading.Lock()
        self._refresh_locks: dict[str, threading.Lock] = {}

    def __repr__(self) -> str:
        return f"MemoryTokenStore(appids={sorted(self._tokens)!r})"

    def get(self, appid: str) -> CachedToken | None:
        with self._lock:
            return self._tokens.get(appid)

    def set(self, appid: str, token: str, expires_at: datetime) -> None:
        with self._lock:
            self._tokens[appid] = CachedToken(token, expires_at)

    def refresh(
        self, appid: str, fetch: Callable[[], CachedToken], stale_token: str | None
    ) -> CachedToken:
        with self._lock:
            refresh_lock = self._refresh_locks.setdefault(appid, threading.Lock())
        with refresh_lock:
            current = self.get(appid)
            if current is not None and current.access_token != stale_token and current.is_fresh():
                return current
            token = fetch()
            with self._lock:
                self._tokens[appid] = token  # the whole token, WeChat's expiry included
            return token


class TokenProvider:
    """Fetches tokens from WeChat and caches them in a :class:`TokenStore`."""

    def __init__(
        self,
        appid: str,
        secret: str,
        transport: Transport,
        *,
        endpoint: str = "stable_token",
        store: TokenStore | None = None,
        margin: float = DEFAULT_MARGIN_SECONDS,
    ):
        if endpoint not in TOKEN_ENDPOINTS:
            raise WeChatInvalidArgument(
                None, f"token_endpoint must be 'stable_token' or 'token', not {endpoint!r}."
            )
        if margin < 60:
            raise WeChatInvalidArgument(None, "The token refresh margin must be at least 60 s.")
        self.appid = appid
        self._secret = secret
        self._transport = transport
        self.endpoint = endpoint
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self.margin = margin

    def __repr__(self) -> str:
        return f"TokenProvider(appid={self.appid!r}, endpoint={self.endpoint!r})"

    def current(self) -> CachedToken:
        """A usable token: the cached one while fresh, otherwise a refreshed one."""
        cached = self.store.get(self.appid)
        if cached is not None and cached.is_fresh():
            return cached
        return self.refresh(stale_token=cached.access_token if cached else None)

    def refresh(self, stale_token: str | None) -> CachedToken:
        """Replace ``stale_token`` under the store's lock (a concurrent refresh by
        another worker is reused instead of fetching again)."""
        return self.store.refresh(self.appid, self._fetch, stale_token)

    def fetch_access_token(self, force_refresh: bool = False) -> AccessToken:
        """The current token and WeChat's ``expires_in`` for it; ``force_refresh``
        bypasses the cache.

        When this call fetched, the answer is WeChat's own (its ``expires_in``, not
        reduced by the margin); a cached token comes with the seconds WeChat still
        accepts it. Even when forced, ``stable_token`` is asked in normal mode:
        WeChat's own ``force_refresh:true`` invalidates the token for every other
        process and is limited to 20 calls a day (wechat-kf-api.md §2.2).
        """
        answers: list[AccessToken] = []

        def fetch() -> CachedToken:
            cached, answer = self._fetch_answer()
            answers.append(answer)
            return cached

        stored = self.store.get(self.appid)
        if force_refresh or stored is None or not stored.is_fresh():
            stale = stored.access_token if stored else None
            token = self.store.refresh(self.appid, fetch, stale)
        else:
            token = stored
        if answers and answers[-1].access_token == token.access_token:
            return answers[-1]
        return AccessToken(access_token=token.access_token, expires_in=token.wechat_expires_in())

    def _request(self) -> ApiRequest:
        if self.endpoint == "token":
            # GET /cgi-bin/token?grant_type=client_credential&appid=..&secret=..
            return ApiRequest(
                "GET",
                "/cgi-bin/token",
                params=(
                    ("grant_type", "client_credential"),
                    ("appid", self.appid),
                    ("secret", self._secret),
                ),
            )
        # POST /cgi-bin/stable_token with a JSON body and no query.
        return ApiRequest.json(
            "/cgi-bin/stable_token",
            {
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self._secret,
                "force_refresh": False,
            },
        )

    def _fetch(self) -> CachedToken:
        return self._fetch_answer()[0]

    def _fetch_answer(self) -> tuple[CachedToken, AccessToken]:
        """WeChat's answer, and the token to cache: used until ``margin`` before
        WeChat's expiry."""
        fetched_at = _utcnow()
        data = self._transport.send(self._request())
        token = from_dict(AccessToken, data)
        if not token.access_token or token.expires_in <= 0:
            raise WeChatResponseError(
                None, f"The {self.endpoint} answer has no access_token or no positive expires_in."
            )
        # Stop using the token `margin` seconds early, but never spend more than half
        # its life in the margin: a short-lived token (stable_token may report a few
        # hundred seconds) would otherwise be refetched on every call.
        margin = min(self.margin, token.expires_in / 2)
        expires_at = fetched_at + timedelta(seconds=token.expires_in - margin)
        logger.info(
            "Fetched a new WeChat access token for appid %s via %s (valid %ss).",
            self.appid,
            self.endpoint,
            token.expires_in,
        )
        wechat_expires_at = fetched_at + timedelta(seconds=token.expires_in)
        return CachedToken(token.access_token, expires_at, wechat_expires_at), token
