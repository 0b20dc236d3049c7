"""Inputs found by fuzzing that once answered 500: they get a field error or a safe redirect."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from tests.factories import OfficialAccountFactory, supervisor
from tests.sessions_app.test_views_support import wired_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

EDGE_DAYS = ["9999-12-31", "0001-01-01"]


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.mark.parametrize("day", EDGE_DAYS)
@pytest.mark.parametrize("field", ["day_from", "day_to"])
def test_an_audit_filter_day_out_of_range_is_a_field_error(boss_client, field, day):
    response = boss_client.get(reverse("accounts:audit"), {field: day})

    assert response.status_code == 200
    assert "out of range" in response.context["form"].errors[field][0]


@pytest.mark.parametrize("day", EDGE_DAYS)
@pytest.mark.parametrize("field", ["since", "until"])
def test_a_history_filter_day_out_of_range_is_a_field_error(client, emulator, field, day):
    client.force_login(supervisor(wired_account(emulator)))

    response = client.get(reverse("messaging:history"), {field: day})

    assert response.status_code == 200
    assert "out of range" in response.context["form"].errors[field][0]


@pytest.mark.parametrize("day", EDGE_DAYS)
def test_an_export_with_a_day_out_of_range_sends_the_user_back(client, emulator, day):
    client.force_login(supervisor(wired_account(emulator)))

    response = client.get(reverse("messaging:export", args=["csv"]), {"until": day})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("messaging:history"))
    assert not AuditEvent.objects.filter(action="history_export").exists()


@pytest.mark.parametrize(
    "next_url",
    ["javascript:alert(1)", "//evil.example/", "home", "accounts:users", "https:evil", "\\\\evil", " /x", "", "nothing", "/\\\\evil"],
)
def test_switching_with_a_next_that_is_not_a_local_path_goes_home(boss_client, account, next_url):
    response = boss_client.post(reverse("accounts:account_switch"), {"account": account.pk, "next": next_url})

    assert response.status_code == 302 and response["Location"] == "/"


def test_switching_keeps_a_local_path_with_its_query(boss_client, account):
    response = boss_client.post(
        reverse("accounts:account_switch"), {"account": account.pk, "next": "/history/?q=a"}
    )

    assert response["Location"] == "/history/?q=a"
