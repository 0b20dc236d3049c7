"""Deactivating a user ends their sessions, cached copies included."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from accounts import services
from tests.factories import OfficialAccountFactory, agent_user, supervisor

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["db", "cached_db"])
def session_engine(request, settings):
    """Both engines kfadmin uses: rows only, and rows read through a shared Redis cache
    (CACHE_URL set, the documented production set-up)."""
    if request.param == "cached_db":
        redis_url = settings.CELERY_BROKER_URL
        if not redis_url.startswith("redis://"):
            pytest.skip("needs Redis: run with CELERY_BROKER_URL=redis://…")
        settings.CACHES = {"default": {"BACKEND": "kfadmin.cache.RedisCache", "LOCATION": redis_url}}
    settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{request.param}"
    yield request.param
    caches.close_all()


def test_a_deactivated_users_old_cookie_does_not_work_after_reactivation(client, session_engine):
    account = OfficialAccountFactory()
    boss = supervisor(account)
    person = agent_user(account)
    client.force_login(person)
    assert client.get("/").status_code == 200
    session_key = client.session.session_key

    services.user_active_set(actor=boss, user=person, active=False)
    services.user_active_set(actor=boss, user=person, active=True)

    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    if session_engine == "cached_db":
        from django.contrib.sessions.backends.cached_db import KEY_PREFIX

        assert caches["default"].get(KEY_PREFIX + session_key) is None


def test_other_users_sessions_are_kept(client, session_engine):
    account = OfficialAccountFactory()
    boss = supervisor(account)
    client.force_login(boss)

    services.user_active_set(actor=boss, user=agent_user(account), active=False)

    assert client.get("/").status_code == 200
