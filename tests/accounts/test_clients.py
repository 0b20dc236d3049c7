"""The database-backed token store: one stored token for every process, refreshed by
exactly one of them however many hit a stale token at once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from accounts.clients import DatabaseTokenStore, wechat_client_for
from accounts.models import OfficialAccount
from kfadmin.wechat import WeChatClient, WeChatForbidden
from kfadmin.wechat.transport import ApiRequest

ROOT = Path(__file__).resolve().parents[2]
TOKEN_PATHS = ("/cgi-bin/token", "/cgi-bin/stable_token")


def token_calls(emulator) -> list:
    return [call for call in emulator.calls if call.path in TOKEN_PATHS]


def api_calls(emulator, path: str) -> list:
    return [call for call in emulator.calls if call.path == path]


@pytest.mark.django_db
@override_settings(WECHAT_TIMEOUT=7)
def test_the_client_is_built_from_the_account(kf_account_row):
    kf_account_row.token_endpoint = OfficialAccount.TokenEndpoint.CLASSIC
    client = wechat_client_for(kf_account_row)
    assert isinstance(client, WeChatClient)
    assert client.appid == kf_account_row.appid
    assert client.base_url == kf_account_row.api_base_url
    assert client.token_endpoint == "token"
    assert isinstance(client.token_store, DatabaseTokenStore)
    assert client._transport.timeout == 7


@pytest.mark.django_db
def test_the_first_call_stores_the_token_encrypted(emulator, kf_account_row):
    wechat_client_for(kf_account_row).get_account_list()
    kf_account_row.refresh_from_db()
    assert len(token_calls(emulator)) == 1
    assert token_calls(emulator)[0].path == "/cgi-bin/stable_token"
    used = api_calls(emulator, "/cgi-bin/customservice/getkflist")[0].query["access_token"]
    assert kf_account_row.access_token == used
    assert kf_account_row.access_token_expires_at > timezone.now() + timedelta(minutes=90)
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM accounts_officialaccount WHERE id = %s", [kf_account_row.pk])
        (stored,) = cursor.fetchone()
    assert used not in stored


@pytest.mark.django_db
def test_another_client_reuses_the_stored_token(emulator, kf_account_row):
    wechat_client_for(kf_account_row).get_account_list()
    fresh_row = OfficialAccount.objects.get(pk=kf_account_row.pk)
    wechat_client_for(fresh_row).get_online_list()
    wechat_client_for(fresh_row).get_wait_case()
    assert len(token_calls(emulator)) == 1


@pytest.mark.django_db
def test_an_expired_stored_token_is_replaced(emulator, kf_account_row):
    wechat_client_for(kf_account_row).get_account_list()
    OfficialAccount.objects.filter(pk=kf_account_row.pk).update(
        access_token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    wechat_client_for(kf_account_row).get_account_list()
    assert len(token_calls(emulator)) == 2
    kf_account_row.refresh_from_db()
    assert kf_account_row.access_token_expires_at > timezone.now()


@pytest.mark.django_db
def test_refresh_reuses_a_token_another_process_stored_meanwhile(kf_account_row):
    store = DatabaseTokenStore()
    later = timezone.now() + timedelta(hours=1)
    store.set(kf_account_row.appid, "newer-token", later)
    fetched = []
    token = store.refresh(kf_account_row.appid, lambda: fetched.append(1), stale_token="older-token")
    assert token.access_token == "newer-token"
    assert fetched == []


@pytest.mark.django_db
def test_refresh_fetches_when_the_stored_token_is_the_stale_one(kf_account_row):
    from kfadmin.wechat import CachedToken

    store = DatabaseTokenStore()
    store.set(kf_account_row.appid, "rejected-token", timezone.now() + timedelta(hours=1))
    new = CachedToken("brand-new-token", timezone.now() + timedelta(hours=2))
    assert store.refresh(kf_account_row.appid, lambda: new, stale_token="rejected-token") is new
    assert store.get(kf_account_row.appid).access_token == "brand-new-token"


@pytest.mark.django_db
def test_a_failed_fetch_keeps_the_old_token(emulator, kf_account_row):
    DatabaseTokenStore().set(kf_account_row.appid, "old", timezone.now() - timedelta(minutes=1))
    emulator.control("add_fault", kind="errcode", errcode=40164, next=1, path_prefix="/cgi-bin/stable_token")
    with pytest.raises(WeChatForbidden):
        wechat_client_for(kf_account_row).get_account_list()
    kf_account_row.refresh_from_db()
    assert kf_account_row.access_token == "old"


def _hammer(account_id: int, workers: int, call) -> list:
    """Run `call(client)` from `workers` threads released at the same moment."""
    barrier = threading.Barrier(workers)

    def one(_):
        try:
            account = OfficialAccount.objects.get(pk=account_id)
            client = wechat_client_for(account)
            barrier.wait()
            return call(client)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(workers)))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", ["token", "stable_token"])
def test_many_threads_with_no_token_cause_exactly_one_fetch(emulator, kf_account_row, endpoint):
    OfficialAccount.objects.filter(pk=kf_account_row.pk).update(token_endpoint=endpoint)
    results = _hammer(kf_account_row.pk, 12, lambda client: client.get_account_list())
    assert len(results) == 12
    assert len(token_calls(emulator)) == 1
    used = {call.query["access_token"] for call in api_calls(emulator, "/cgi-bin/customservice/getkflist")}
    assert len(used) == 1


@pytest.mark.django_db(transaction=True)
def test_many_threads_hitting_a_revoked_token_refresh_it_once(emulator, kf_account_row):
    OfficialAccount.objects.filter(pk=kf_account_row.pk).update(token_endpoint="token")
    wechat_client_for(OfficialAccount.objects.get(pk=kf_account_row.pk)).get_account_list()
    emulator.state.invalidate_tokens(appid=emulator.appid)  # every caller now gets 40001
    _hammer(kf_account_row.pk, 10, lambda client: client.get_online_list())
    # One fetch before, exactly one after the revocation.
    assert len(token_calls(emulator)) == 2
    retried = api_calls(emulator, "/cgi-bin/customservice/getonlinekflist")
    assert len({call.query["access_token"] for call in retried}) == 2  # the revoked one and the new one


CHILD = """
import sys, django
django.setup()
from accounts.clients import wechat_client_for
from accounts.models import OfficialAccount
from pathlib import Path
import time
client = wechat_client_for(OfficialAccount.objects.get(pk=int(sys.argv[1])))
Path(sys.argv[3]).touch()  # ready: set up, connected, token read as stale next
gate = Path(sys.argv[2])
while not gate.exists():
    time.sleep(0.001)
print(len(client.get_account_list().kf_list))
"""


@pytest.mark.django_db(transaction=True)
def test_many_processes_with_a_stale_token_cause_exactly_one_fetch(emulator, kf_account_row, tmp_path, wait_until):
    if connection.vendor != "postgresql":
        pytest.skip("child processes share the test database only on PostgreSQL")
    emulator.bound_agent("alice")
    OfficialAccount.objects.filter(pk=kf_account_row.pk).update(
        token_endpoint="token", access_token="stale", access_token_expires_at=timezone.now() - timedelta(seconds=5)
    )
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kfadmin.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    }
    gate = tmp_path / "go"
    ready = [tmp_path / f"ready{n}" for n in range(6)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(kf_account_row.pk), str(gate), str(flag)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for flag in ready
    ]
    wait_until(lambda: all(flag.exists() for flag in ready) or any(c.poll() is not None for c in children), timeout=120)
    gate.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0] * 6, [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["1"] * 6
    assert len(token_calls(emulator)) == 1


# --------------------------------------------------------------------------- one client per account


def send_text(account: OfficialAccount, openid: str, text: str) -> None:
    wechat_client_for(account).send_message(openid, "text", {"content": text})


@pytest.mark.django_db
def test_two_sends_reuse_one_connection(emulator, emulator_server, kf_account_row):
    openid = emulator.customer()
    send_text(kf_account_row, openid, "您好")  # may connect (and fetch the token)
    opened = emulator_server.connections

    send_text(OfficialAccount.objects.get(pk=kf_account_row.pk), openid, "还在吗")

    assert emulator_server.connections == opened
    assert len(api_calls(emulator, "/cgi-bin/message/custom/send")) == 2


@pytest.mark.django_db
def test_a_forked_child_gets_its_own_client_and_connection(emulator, emulator_server, kf_account_row):
    parent = wechat_client_for(kf_account_row)
    parent.get_account_list()  # the parent holds a kept-alive connection now
    opened = emulator_server.connections
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no database, no pytest teardown
        answer = b"E"
        try:
            child = wechat_client_for(kf_account_row)
            child._transport.send(ApiRequest("GET", "/__emulator__/health"))
            answer = b"1" if child is not parent and child._transport.session is not parent._transport.session else b"0"
        finally:
            os.write(write, answer)
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)

    assert answer == b"1"
    assert emulator_server.connections == opened + 1  # the child's own, not the parent's socket
    parent.get_online_list()
    assert emulator_server.connections == opened + 1  # the parent's connection still works
    assert wechat_client_for(kf_account_row) is parent


@pytest.mark.django_db
def test_each_thread_has_its_own_client(kf_account_row):
    here = wechat_client_for(kf_account_row)
    there: list[WeChatClient] = []
    thread = threading.Thread(target=lambda: there.append(wechat_client_for(kf_account_row)))
    thread.start()
    thread.join()
    assert there[0] is not here
    assert there[0]._transport.session is not here._transport.session
    assert wechat_client_for(kf_account_row) is here


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("appid", "wx0000000000000001"),
        ("secret", "f" * 32),
        ("api_base_url", "http://127.0.0.1:9/"),
        ("token_endpoint", OfficialAccount.TokenEndpoint.CLASSIC),
    ],
)
def test_a_changed_account_gets_a_new_client(kf_account_row, field, value):
    before = wechat_client_for(kf_account_row)
    setattr(kf_account_row, field, value)
    after = wechat_client_for(kf_account_row)
    assert after is not before
    assert wechat_client_for(kf_account_row) is after


@pytest.mark.django_db
def test_a_changed_timeout_gets_a_new_client(kf_account_row, settings):
    before = wechat_client_for(kf_account_row)
    settings.WECHAT_TIMEOUT = before._transport.timeout + 1
    assert wechat_client_for(kf_account_row)._transport.timeout == before._transport.timeout + 1
