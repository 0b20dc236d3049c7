"""Dashboard users and roles (supervisors), and everyone's own password change."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts.models import AuditEvent, Membership
from tests.factories import (
    PASSWORD,
    AgentFactory,
    MembershipFactory,
    OfficialAccountFactory,
    UserFactory,
    agent_user,
    auditor,
    outsider,
    sent_to_login,
    supervisor,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

User = get_user_model()
HTMX = {"HX-Request": "true"}
NEW_PASSWORD = "tea-and-dumplings-77"


@pytest.fixture
def account():
    return OfficialAccountFactory(name="Shop A")


def user_url(user, action: str = "") -> str:
    return reverse(f"accounts:user_{action}" if action else "accounts:user_detail", args=[user.pk])


# --------------------------------------------------------------------------- list


def test_the_users_page_lists_people_with_their_roles_per_account(boss_client, account):
    other = OfficialAccountFactory(name="Shop B")
    MembershipFactory(user=UserFactory(username="b-only"), official_account=other)
    agent = AgentFactory(official_account=account, kf_account="kf7@shop")
    agent_user(account, agent=agent, username="xiaoli")

    response = boss_client.get(reverse("accounts:users"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "xiaoli" in html and "kf7@shop" in html and "Agent" in html and "supervisor" in html
    # Users of accounts this supervisor does not supervise stay hidden.
    assert "b-only" not in html and "Shop B" not in html


def test_the_users_fragment_is_the_table(boss_client):
    html = boss_client.get(reverse("accounts:users"), headers=HTMX).content.decode()

    assert html.lstrip().startswith('<section id="user-table"')


@pytest.mark.parametrize("persona", [agent_user, auditor])
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_agents_and_auditors_get_403_on_every_user_url(client, account, persona, headers):
    person = persona(account)
    victim = auditor(account, username="victim")
    client.force_login(person)

    assert client.get(reverse("accounts:users"), headers=headers).status_code == 403
    assert client.get(reverse("accounts:user_add"), headers=headers).status_code == 403
    assert client.post(reverse("accounts:user_add"), {"username": "x"}, headers=headers).status_code == 403
    assert client.get(user_url(victim), headers=headers).status_code == 403
    assert client.post(user_url(victim), {f"role_{account.pk}": "supervisor"}, headers=headers).status_code == 403
    assert client.post(user_url(victim, "password"), {}, headers=headers).status_code == 403
    assert client.post(user_url(victim, "active"), {"active": "0"}, headers=headers).status_code == 403
    assert Membership.objects.get(user=victim).role == "auditor"
    victim.refresh_from_db()
    assert victim.is_active


@pytest.mark.parametrize("action", ["", "password", "active"])
def test_users_of_another_account_are_a_404(client, account, action):
    stranger = auditor(account, username="stranger")
    client.force_login(outsider())

    assert client.get(user_url(stranger, action) if action != "password" else user_url(stranger)).status_code == 404
    assert client.post(user_url(stranger, action), {"active": "0", f"role_{account.pk}": ""}).status_code == 404
    stranger.refresh_from_db()
    assert stranger.is_active


@pytest.mark.parametrize("url_name", ["accounts:users", "accounts:user_add"])
def test_user_pages_need_a_login(client, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_user_urls_refuse_wrong_methods(boss_client, account):
    person = auditor(account)

    assert boss_client.post(reverse("accounts:users")).status_code == 405
    assert boss_client.put(reverse("accounts:user_add")).status_code == 405
    assert boss_client.get(user_url(person, "password")).status_code == 405
    assert boss_client.put(user_url(person, "active")).status_code == 405


# --------------------------------------------------------------------------- create


def test_creating_a_user_with_a_password_and_an_agent_role(boss_client, account):
    agent = AgentFactory(official_account=account)

    response = boss_client.post(
        reverse("accounts:user_add"),
        {"username": "xiaoming", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, f"role_{account.pk}": "agent", f"agent_{account.pk}": agent.pk},
    )

    assert response.status_code == 302 and response["Location"] == reverse("accounts:users")
    user = User.objects.get(username="xiaoming")
    assert user.check_password(NEW_PASSWORD)
    assert (Membership.objects.get(user=user).role, Membership.objects.get(user=user).agent) == ("agent", agent)
    assert AuditEvent.objects.get(action="user_create").target == "xiaoming"


def test_creating_a_user_with_htmx_goes_to_the_list(boss_client, account):
    response = boss_client.post(
        reverse("accounts:user_add"),
        {"username": "auditor2", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, f"role_{account.pk}": "auditor"},
        headers=HTMX,
    )

    assert response["HX-Redirect"] == reverse("accounts:users")
    assert User.objects.filter(username="auditor2").exists()


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"password2": "different-one-99"}, "password2", "differ"),
        ({"password1": "123", "password2": "123"}, "password1", "too short"),
        ({"role": "agent"}, "agent", "Choose the kf account"),
        ({"role": ""}, None, "at least one"),
        ({"username": "supervisor"}, "username", "taken"),
    ],
)
def test_bad_user_input_shows_next_to_the_field_and_creates_nothing(boss_client, account, data, field, words):
    post = {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, f"role_{account.pk}": "auditor"}
    post.update({k: v for k, v in data.items() if k not in ("role",)})
    if "role" in data:
        post[f"role_{account.pk}"] = data["role"]
    field_name = {"agent": f"agent_{account.pk}"}.get(field, field) if field else "__all__"

    response = boss_client.post(reverse("accounts:user_add"), post, headers=HTMX)

    assert response.status_code == 200
    assert words in " ".join(response.context["form"].errors[field_name])
    assert not User.objects.filter(username="newbie").exists()


def test_the_add_form_offers_only_supervised_accounts(boss_client, account):
    other = OfficialAccountFactory(name="Shop B")

    html = boss_client.get(reverse("accounts:user_add")).content.decode()

    assert f'name="role_{account.pk}"' in html and f'name="role_{other.pk}"' not in html


def test_a_role_on_an_unsupervised_account_cannot_be_smuggled_in(boss_client, account):
    other = OfficialAccountFactory(name="Shop B")

    boss_client.post(
        reverse("accounts:user_add"),
        {"username": "sneaky", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD, f"role_{account.pk}": "auditor", f"role_{other.pk}": "supervisor"},
    )

    assert list(Membership.objects.filter(user__username="sneaky").values_list("official_account", flat=True)) == [account.pk]


# --------------------------------------------------------------------------- roles


def test_changing_a_role_and_linking_an_agent(boss_client, account):
    person = auditor(account, username="zhang")
    agent = AgentFactory(official_account=account)

    response = boss_client.post(user_url(person), {f"role_{account.pk}": "agent", f"agent_{account.pk}": agent.pk})

    assert response.status_code == 302
    membership = Membership.objects.get(user=person)
    assert (membership.role, membership.agent) == ("agent", agent)
    assert AuditEvent.objects.get(action="user_role").params == {"role": "agent", "agent": agent.kf_account}


def test_changing_a_role_with_htmx_rerenders_the_form(boss_client, account):
    person = auditor(account, username="zhao")

    response = boss_client.post(user_url(person), {f"role_{account.pk}": "supervisor"}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="user-roles-form"')
    assert "Saved the roles" in html


def test_an_agent_of_another_account_cannot_be_linked(boss_client, account):
    person = auditor(account, username="qian")
    foreign = AgentFactory(official_account=OfficialAccountFactory())

    response = boss_client.post(user_url(person), {f"role_{account.pk}": "agent", f"agent_{account.pk}": foreign.pk})

    assert response.context["roles_form"].errors[f"agent_{account.pk}"]
    assert Membership.objects.get(user=person).role == "auditor"


def test_roles_on_accounts_the_supervisor_does_not_supervise_stay_untouched(boss_client, account):
    other = OfficialAccountFactory()
    person = auditor(account, username="sun")
    MembershipFactory(user=person, official_account=other, role="supervisor")

    boss_client.post(user_url(person), {f"role_{account.pk}": "", f"role_{other.pk}": ""})

    assert list(Membership.objects.filter(user=person).values_list("official_account", flat=True)) == [other.pk]


def test_a_supervisor_cannot_edit_their_own_roles(boss_client, boss, account):
    page = boss_client.get(user_url(boss)).content.decode()
    assert "cannot change your own roles" in page

    boss_client.post(user_url(boss), {f"role_{account.pk}": ""})

    assert Membership.objects.filter(user=boss).exists()


# --------------------------------------------------------------------------- password and deactivation


def test_setting_someones_password(boss_client, account):
    person = auditor(account, username="zhou")

    response = boss_client.post(user_url(person, "password"), {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert response.status_code == 302
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)


def test_a_mismatched_new_password_shows_next_to_the_field(boss_client, account):
    person = auditor(account, username="wu")

    response = boss_client.post(user_url(person, "password"), {"new_password1": NEW_PASSWORD, "new_password2": "x"}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="user-password-form"')
    assert response.context["password_form"].errors["new_password2"]
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


def test_deactivation_is_a_confirmation_step_first(boss_client, account):
    person = auditor(account, username="zheng")

    page = boss_client.get(user_url(person, "active")).content.decode()
    dialog = boss_client.get(user_url(person, "active"), headers=HTMX).content.decode()

    assert "Deactivate zheng?" in page and "<html" in page
    assert dialog.lstrip().startswith('<div id="modal"') and "<dialog" in dialog
    person.refresh_from_db()
    assert person.is_active


def test_deactivating_and_reactivating_a_user(boss_client, account):
    person = auditor(account, username="feng")

    response = boss_client.post(user_url(person, "active"), {"active": "0"}, headers=HTMX)
    assert response["HX-Redirect"] == reverse("accounts:users")
    person.refresh_from_db()
    assert not person.is_active

    boss_client.post(user_url(person, "active"), {"active": "1"})
    person.refresh_from_db()
    assert person.is_active
    events = AuditEvent.objects.filter(action__startswith="user_").order_by("id")
    assert [e.action for e in events] == ["user_deactivate", "user_activate"]


def test_a_user_who_also_works_elsewhere_cannot_be_deactivated_or_given_a_password(boss_client, account):
    person = auditor(account, username="chen")
    MembershipFactory(user=person, official_account=OfficialAccountFactory(), role="agent")

    assert boss_client.post(user_url(person, "active"), {"active": "0"}).status_code == 404
    assert boss_client.post(user_url(person, "password"), {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}).status_code == 404
    person.refresh_from_db()
    assert person.is_active and person.check_password(PASSWORD)


def test_nobody_deactivates_themselves_from_the_page(boss_client, boss):
    response = boss_client.post(user_url(boss, "active"), {"active": "0"})

    assert "cannot deactivate yourself" in response.content.decode()
    boss.refresh_from_db()
    assert boss.is_active


# --------------------------------------------------------------------------- own password


@pytest.mark.parametrize("persona", [supervisor, agent_user, auditor])
def test_everyone_changes_their_own_password(client, account, persona):
    person = persona(account)
    client.force_login(person)

    assert client.get(reverse("accounts:password_change")).status_code == 200
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    assert "Your password has been changed" in response.content.decode()
    person.refresh_from_db()
    assert person.check_password(NEW_PASSWORD)
    assert AuditEvent.objects.get(action="user_password").actor == person
    # Still logged in on this browser.
    assert client.get(reverse("home")).status_code == 200


def test_a_wrong_old_password_shows_next_to_the_field(client, account):
    person = auditor(account)
    client.force_login(person)

    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.context["form"].errors["old_password"]
    assert 'id="id_old_password_errors"' in response.content.decode()
    person.refresh_from_db()
    assert person.check_password(PASSWORD)


def test_a_user_without_an_official_account_can_still_change_their_password(client):
    person = UserFactory(username="lonely")
    client.force_login(person)

    assert client.get(reverse("accounts:password_change")).status_code == 200


def test_the_password_page_needs_a_login(client):
    response = client.get(reverse("accounts:password_change"))

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_removing_the_last_role_here_goes_back_to_the_list(boss_client, account):
    person = auditor(account, username="he")

    plain = boss_client.post(user_url(person), {f"role_{account.pk}": ""})
    assert plain.status_code == 302 and plain["Location"] == reverse("accounts:users")
    assert not Membership.objects.filter(user=person).exists()
    assert boss_client.get(user_url(person)).status_code == 404


def test_removing_the_last_role_with_htmx_redirects_the_browser(boss_client, account):
    person = auditor(account, username="lu")

    response = boss_client.post(user_url(person), {f"role_{account.pk}": ""}, headers=HTMX)

    assert response["HX-Redirect"] == reverse("accounts:users")


@pytest.mark.parametrize("action", ["", "password", "active"])
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_user_detail_urls_need_a_login(client, account, action, headers):
    person = auditor(account)

    response = client.post(user_url(person, action), {"active": "0"}, headers=headers)

    assert sent_to_login(response, htmx=bool(headers))
    person.refresh_from_db()
    assert person.is_active


def test_user_detail_and_password_change_refuse_other_methods(boss_client, account):
    assert boss_client.put(user_url(auditor(account))).status_code == 405
    assert boss_client.put(reverse("accounts:password_change")).status_code == 405
