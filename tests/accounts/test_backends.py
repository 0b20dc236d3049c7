"""The authentication backend's per-request user read (accounts/backends.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.backends import KfAdminBackend

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def person():
    return User.objects.create_user("mei", password="a-long-pass-phrase-42", email="mei@example.com", is_staff=True)


def test_it_reads_the_user_in_one_query_and_the_timestamps_when_asked_for(person, django_assert_num_queries):
    with django_assert_num_queries(1):
        got = KfAdminBackend().get_user(person.pk)
    expected = User.objects.get(pk=person.pk)
    for field in ("pk", "username", "email", "password", "first_name", "is_staff", "is_superuser", "is_active"):
        assert getattr(got, field) == getattr(expected, field), field
    assert got.is_active is True and got.is_superuser is False
    assert got.get_deferred_fields() == {"last_login", "date_joined"}
    with django_assert_num_queries(1):
        assert got.date_joined == expected.date_joined


def test_an_inactive_unknown_or_malformed_id_is_nobody(person):
    assert KfAdminBackend().get_user(987654) is None
    assert KfAdminBackend().get_user("not-a-number") is None
    User.objects.filter(pk=person.pk).update(is_active=False)
    assert KfAdminBackend().get_user(person.pk) is None


def test_logging_in_through_the_form_uses_it_and_a_new_password_ends_the_session(client, person):
    response = client.post(reverse("login"), {"username": "mei", "password": "a-long-pass-phrase-42"})
    assert response.status_code == 302
    assert client.session["_auth_user_backend"] == "accounts.backends.KfAdminBackend"
    assert client.get(reverse("accounts:password_change")).status_code == 200

    person.set_password("another-long-pass-99")
    person.save()
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_user_made_inactive_is_logged_out_on_the_next_request(client, person):
    client.force_login(person)
    assert client.get(reverse("accounts:password_change")).status_code == 200
    User.objects.filter(pk=person.pk).update(is_active=False)
    assert client.get(reverse("accounts:password_change")).status_code == 302
