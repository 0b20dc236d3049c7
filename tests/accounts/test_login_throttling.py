"""Login throttling (django-axes) on /login/ and /admin/login/, and login events in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY

from accounts.models import AuditEvent
from tests.factories import MembershipFactory, OfficialAccountFactory, UserFactory, supervisor

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

PASSWORD = "correct horse battery"
HERE = "198.51.100.7"
ELSEWHERE = "203.0.113.9"


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def mei(account):
    user = UserFactory(username="mei", password=PASSWORD)
    MembershipFactory(user=user, official_account=account, role="supervisor")
    return user


def log_in(client, password: str, *, username: str = "mei", ip: str = HERE, path: str = "/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_limit_of_wrong_passwords_locks_out_even_the_right_one(client, mei, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "wrong").status_code == 200
    locked = log_in(client, "wrong")

    response = log_in(client, PASSWORD)

    assert locked.status_code == 429
    assert response.status_code == 429 and SESSION_KEY not in client.session
    assert "Try again in 15 minutes" in response.content.decode()
    assert response.templates[0].name == "registration/login.html"


def test_the_same_username_still_logs_in_from_another_address(client, mei, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")

    response = log_in(client, PASSWORD, ip=ELSEWHERE)

    assert response.status_code == 302 and client.session[SESSION_KEY] == str(mei.pk)


def test_the_lockout_ends_after_the_cool_off(client, mei, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))

    response = log_in(client, PASSWORD)

    assert response.status_code == 302 and client.session[SESSION_KEY] == str(mei.pk)


def test_tries_during_a_lockout_do_not_extend_it(client, mei, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    locked_at = AccessAttempt.objects.get().attempt_time

    for _ in range(3):
        assert log_in(client, "wrong").status_code == 429

    attempt = AccessAttempt.objects.get()
    assert attempt.attempt_time == locked_at and attempt.failures_since_start == settings.AXES_FAILURE_LIMIT


def test_the_admin_login_is_throttled_too(client, settings):
    UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong", username="root", path="/admin/login/")

    response = log_in(client, PASSWORD, username="root", path="/admin/login/")

    assert response.status_code == 429 and SESSION_KEY not in client.session


def test_behind_trusted_proxies_the_forwarded_client_address_is_counted(client, mei, settings):
    settings.AXES_IPWARE_PROXY_COUNT = 1
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    proxy = "10.0.0.2"
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/login/", {"username": "mei", "password": "wrong"}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{HERE}, {proxy}")

    response = client.post(
        "/login/", {"username": "mei", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{ELSEWHERE}, {proxy}"
    )

    assert AccessAttempt.objects.get().ip_address == HERE
    assert response.status_code == 302


# --------------------------------------------------------------------------- audit


def test_logins_and_logouts_are_in_the_audit_log_of_the_users_accounts(client, mei, account):
    other = OfficialAccountFactory()
    MembershipFactory(user=mei, official_account=other, role="auditor")

    log_in(client, PASSWORD)
    client.post("/logout/", REMOTE_ADDR=HERE)

    for action in ("login", "logout"):
        events = AuditEvent.objects.filter(action=action)
        assert {e.official_account for e in events} == {account, other}
        assert {(e.actor, e.target, e.params["ip"]) for e in events} == {(mei, "mei", HERE)}


def test_failed_logins_and_the_lockout_are_recorded_once_each(client, mei, account, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT + 3):
        log_in(client, "wrong")

    failed = AuditEvent.objects.filter(action="login_failed", official_account=account)
    lockout = AuditEvent.objects.get(action="login_lockout", official_account=account)
    assert failed.count() == settings.AXES_FAILURE_LIMIT
    assert {(e.actor, e.target, e.result, e.params["ip"]) for e in failed} == {(None, "mei", "error", HERE)}
    assert lockout.target == "mei" and lockout.params["ip"] == HERE


def test_supervisors_see_failed_logins_and_lockouts_in_the_audit_page(client, mei, account, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "wrong")
    client.force_login(supervisor(account, username="boss"))

    html = client.get("/audit/").content.decode()

    assert "Failed login" in html and "Login locked out" in html and HERE in html


def test_a_failed_login_for_nobody_is_kept_without_an_account(client):
    log_in(client, "wrong", username="nobody")

    event = AuditEvent.objects.get(action="login_failed")
    assert event.official_account is None and event.target == "nobody"
