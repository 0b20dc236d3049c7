"""`manage.py demo_setup`: the demo supervisor, the demo official account on the
emulator, and the emulator's push pointed back at kfadmin."""

from __future__ import annotations

import socket
from io import StringIO
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import override_settings

from accounts.models import Membership, OfficialAccount
from accounts.tasks import connect_emulator_callback_task
from kfadmin.emulator import (
    DEMO_APPID,
    DEMO_CALLBACK_TOKEN,
    DEMO_ENCODING_AES_KEY,
    DEMO_ORIGINAL_ID,
    DEMO_SECRET,
    DEMO_WECHAT_ID,
)

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def demo_emulator(emulator):
    emulator.state.seed_demo(seed=1)
    return emulator


def run(tmp_path, port: int, *args: str) -> str:
    out = StringIO()
    with override_settings(BASE_DIR=tmp_path, EMULATOR_PORT=port):
        call_command("demo_setup", *args, stdout=out)
    return out.getvalue()


def demo_push(emulator) -> tuple[str, str]:
    state = emulator.state.state(appid=DEMO_APPID, customers=False)["official_accounts"][0]
    return state["callback_url"], state["callback_mode"]


def test_it_creates_the_demo_account_on_the_emulator(tmp_path, demo_emulator):
    port = urlsplit(demo_emulator.base_url).port
    output = run(tmp_path, port)
    account = OfficialAccount.objects.get(appid=DEMO_APPID)
    assert (account.secret, account.wechat_id, account.original_id) == (DEMO_SECRET, DEMO_WECHAT_ID, DEMO_ORIGINAL_ID)
    assert (account.callback_token, account.encoding_aes_key) == (DEMO_CALLBACK_TOKEN, DEMO_ENCODING_AES_KEY)
    assert account.api_base_url == f"http://127.0.0.1:{port}"
    assert account.token_endpoint == "stable_token" and account.is_active
    membership = Membership.objects.get(official_account=account)
    assert (membership.user.username, membership.role) == ("supervisor", "supervisor")
    assert "Demo login: supervisor / " in output
    assert (tmp_path / ".local" / "demo_login").exists()


def test_it_points_the_emulators_push_at_the_receiver(tmp_path, demo_emulator):
    output = run(tmp_path, urlsplit(demo_emulator.base_url).port, "--web-url", "http://127.0.0.1:8123")
    assert demo_push(demo_emulator) == (f"http://127.0.0.1:8123/wechat/callback/{DEMO_APPID}/", "safe")
    assert OfficialAccount.objects.get(appid=DEMO_APPID).callback_mode == "safe"
    assert "pushes messages to" in output


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_the_account_expects_the_mode_the_emulator_pushes_in(tmp_path, demo_emulator, mode):
    port = urlsplit(demo_emulator.base_url).port
    run(tmp_path, port, "--callback-mode", "plain")
    run(tmp_path, port, "--callback-mode", mode)
    assert demo_push(demo_emulator)[1] == mode
    assert OfficialAccount.objects.get(appid=DEMO_APPID).callback_mode == mode


def test_running_it_again_changes_nothing_but_the_stale_token(tmp_path, demo_emulator):
    port = urlsplit(demo_emulator.base_url).port
    run(tmp_path, port)
    login = (tmp_path / ".local" / "demo_login").read_text()
    OfficialAccount.objects.filter(appid=DEMO_APPID).update(access_token="from-the-last-emulator")
    run(tmp_path, port)
    assert OfficialAccount.objects.filter(appid=DEMO_APPID).count() == 1
    assert Membership.objects.count() == 1
    assert OfficialAccount.objects.get(appid=DEMO_APPID).access_token == ""
    assert (tmp_path / ".local" / "demo_login").read_text() == login


def test_the_demo_account_syncs_from_the_emulator(tmp_path, demo_emulator):
    from accounts.sync import agents_sync
    from sessions_app.sync import queue_sync, sessions_sync

    run(tmp_path, urlsplit(demo_emulator.base_url).port)
    account = OfficialAccount.objects.get(appid=DEMO_APPID)
    assert agents_sync(account_id=account.pk).listed == 12
    assert queue_sync(account_id=account.pk).count > 0
    assert sessions_sync(account_id=account.pk).open > 0


def test_when_the_emulator_is_not_up_the_worker_is_asked_to_do_it(tmp_path, monkeypatch):
    queued = []
    monkeypatch.setattr(
        connect_emulator_callback_task, "apply_async", lambda args, **options: queued.append((args, options))
    )
    output = run(tmp_path, free_port())
    account = OfficialAccount.objects.get(appid=DEMO_APPID)
    ((args, options),) = queued
    assert args == [account.pk, f"http://127.0.0.1:8000/wechat/callback/{DEMO_APPID}/", "safe"]
    assert options["expires"] > 0
    assert "the worker will point its message push" in output


def test_the_worker_task_sets_the_push_once_the_emulator_answers(tmp_path, demo_emulator):
    run(tmp_path, urlsplit(demo_emulator.base_url).port)
    demo_emulator.control("set_callback", appid=DEMO_APPID, url="")
    account = OfficialAccount.objects.get(appid=DEMO_APPID)
    connect_emulator_callback_task.apply(args=[account.pk, "http://127.0.0.1:8000/wechat/callback/x/", "compat"])
    assert demo_push(demo_emulator) == ("http://127.0.0.1:8000/wechat/callback/x/", "compat")


def test_an_emulator_without_the_demo_account_is_reported(tmp_path, emulator):
    output = run(tmp_path, urlsplit(emulator.base_url).port)
    assert "was not set" in output
    assert OfficialAccount.objects.filter(appid=DEMO_APPID).exists()
