"""Shared pytest fixtures, one section per kind: the emulator, the accounts wired to it,
waiting for background work, and the dashboard pages' language and supervisor."""

from __future__ import annotations

# ------------------------------------------------------------------------- emulator
#
#   emulator_server  session scope: one Emulator served on 127.0.0.1, port 0, in a thread
#   emulator         function scope: state reset, one official account, returns EmulatorHandle
#
# No database is involved; these fixtures work in tests without the `db` fixture.
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from kfadmin.emulator import Call, Emulator
from kfadmin.emulator.server import ServerHandle, serve_in_thread

EMULATOR_APPID = "wx1234567890abcdef"
EMULATOR_SECRET = "0123456789abcdef0123456789abcdef"
EMULATOR_WECHAT_ID = "test_oa"
EMULATOR_ORIGINAL_ID = "gh_0123456789ab"
EMULATOR_CALLBACK_TOKEN = "emulatorToken123"
EMULATOR_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@dataclass
class EmulatorHandle:
    """What a test needs to talk to (and steer) the emulator for one official account."""

    base_url: str
    appid: str
    secret: str
    wechat_id: str
    original_id: str
    callback_token: str
    encoding_aes_key: str
    state: Emulator
    http: requests.Session

    @property
    def calls(self) -> list[Call]:
        """API requests received during this test (control requests are not logged)."""
        return self.state.calls()

    def control(self, name: str, **payload: Any) -> dict[str, Any]:
        """POST to /__emulator__/<name> and return the JSON (errors included, never raised)."""
        response = self.http.post(f"{self.base_url}/__emulator__/{name}", json=payload, timeout=30)
        return response.json()

    def kf_account(self, prefix: str) -> str:
        return f"{prefix}@{self.wechat_id}"

    def bound_agent(self, prefix: str, *, online: bool = True, nickname: str | None = None) -> str:
        """Create a bound agent (online unless told otherwise); returns the full kf_account."""
        self.state.add_agent(appid=self.appid, prefix=prefix, nickname=nickname, online=online)
        return self.kf_account(prefix)

    def customer(self, openid: str | None = None, text: str = "你好") -> str:
        """A customer who just wrote (window open, waiting in the queue); returns the openid."""
        return self.state.customer_writes(appid=self.appid, openid=openid, text=text)["openid"]

    def media(self, kind: str, media_id: str | None = None, **fields: Any) -> str:
        """Give the account a media to send (image, voice, video, thumb; news for
        mpnews; article for mpnewsarticle), permanent unless `permanent=False`;
        returns its id. WeChat refuses a send naming an id it does not hold (40007)."""
        return self.state.add_material(appid=self.appid, kind=kind, media_id=media_id, **fields)["id"]

    def access_token(self) -> str:
        """A valid access token for this OA (the stable token, no HTTP round trip)."""
        return self.state.issue_token(appid=self.appid)["access_token"]

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET a WeChat path with a fresh token; returns the JSON."""
        params.setdefault("access_token", self.access_token())
        return self.http.get(self.base_url + path, params=params, timeout=30).json()

    def post(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        """POST a JSON body (raw UTF-8, as WeChat wants) with a fresh token; returns the JSON."""
        params.setdefault("access_token", self.access_token())
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self.http.post(self.base_url + path, params=params, data=data, timeout=30).json()


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[ServerHandle]:
    handle = serve_in_thread(Emulator(), host="127.0.0.1", port=0)
    yield handle
    handle.shutdown()


@pytest.fixture
def emulator(emulator_server: ServerHandle) -> Iterator[EmulatorHandle]:
    emu = emulator_server.emulator
    emu.reset()
    emu.add_official_account(
        appid=EMULATOR_APPID,
        secret=EMULATOR_SECRET,
        wechat_id=EMULATOR_WECHAT_ID,
        original_id=EMULATOR_ORIGINAL_ID,
        token=EMULATOR_CALLBACK_TOKEN,
        encoding_aes_key=EMULATOR_AES_KEY,
    )
    with requests.Session() as http:
        yield EmulatorHandle(
            base_url=emulator_server.base_url,
            appid=EMULATOR_APPID,
            secret=EMULATOR_SECRET,
            wechat_id=EMULATOR_WECHAT_ID,
            original_id=EMULATOR_ORIGINAL_ID,
            callback_token=EMULATOR_CALLBACK_TOKEN,
            encoding_aes_key=EMULATOR_AES_KEY,
            state=emu,
            http=http,
        )
    emu.reset()


# -------------------------------------------------------- sync, tasks and callbacks
#
#   kf_account_row  the OfficialAccount row of the emulator's official account, with
#                   its callback token and AES key, talking to the emulator over HTTP
#                   (the history sync, the other syncs, the tasks and the callback)
#   wait_until      polls a condition (for work done by a Celery worker thread or by
#                   the emulator's push thread); fails the test after `timeout` s


@pytest.fixture
def kf_account_row(db, emulator):
    from tests.factories import OfficialAccountFactory

    return OfficialAccountFactory(
        appid=emulator.appid,
        secret=emulator.secret,
        wechat_id=emulator.wechat_id,
        original_id=emulator.original_id,
        callback_token=emulator.callback_token,
        encoding_aes_key=emulator.encoding_aes_key,
        api_base_url=emulator.base_url,
    )


@pytest.fixture
def wait_until():
    import time

    def wait(condition, *, timeout: float = 30.0, interval: float = 0.05, message: str = ""):
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(message or f"condition not met within {timeout} s")
            time.sleep(interval)

    return wait


# ------------------------------------------------------------------ dashboard pages
#
#   english_cookie   English pages for `client` (its language cookie) and English in the
#                    test's own code
#   english_default  English as the site's default language (settings.LANGUAGE_CODE) and
#                    in the test's own code
#   boss             the supervisor of `account`
#   boss_client      `client`, logged in as `boss`
#
# Chinese is the site's default language and the assertions read English, so a module
# turns one of the english fixtures on for all its tests with
#   pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]
# The two are kept apart: one sets only the test client's cookie, the other the default
# for every request and every rendering outside a request.
# `account` is each module's own fixture (a plain official account, one wired to the
# emulator, one with a given capacity, ...): `boss` and `boss_client` use that one.


@pytest.fixture
def english_cookie(client, settings):
    from django.utils import translation

    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def english_default(settings):
    from django.utils import translation

    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def boss(account):
    from tests.factories import supervisor

    return supervisor(account)


@pytest.fixture
def boss_client(client, boss):
    client.force_login(boss)
    return client


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path_factory):
    """Files kfadmin keeps (media sent and received) go to a folder of the test run,
    never to the checkout's var/."""
    settings.MEDIA_ROOT = tmp_path_factory.mktemp("media")
    return settings.MEDIA_ROOT
