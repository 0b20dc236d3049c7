"""Fixtures for the WeChat client tests: a `responses` mock at the HTTP seam and a
client whose token store already holds a valid token (so only the operation under
test goes over the wire unless a test says otherwise)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import responses

from kfadmin.wechat import MemoryTokenStore, WeChatClient
from tests.wechat.helpers import APPID, SECRET, TOKEN


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def store() -> MemoryTokenStore:
    tokens = MemoryTokenStore()
    tokens.set(APPID, TOKEN, datetime.now(UTC) + timedelta(hours=1))
    return tokens


@pytest.fixture
def kf(store: MemoryTokenStore) -> WeChatClient:
    return WeChatClient(APPID, SECRET, token_store=store)
