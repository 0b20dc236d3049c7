"""The agents pages and their fragments: list, add, detail, nickname, avatar, invite, delete."""

from __future__ import annotations

import io
import json

import pytest
from django.urls import reverse
from PIL import Image

from accounts.models import Agent, AuditEvent
from tests.factories import (
    AgentFactory,
    OfficialAccountFactory,
    agent_user,
    auditor,
    outsider,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

HTMX = {"HX-Request": "true"}


def jpeg(width: int = 640, height: int = 640, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (240, 120, 20)).save(buffer, fmt)
    return buffer.getvalue()


def upload(content: bytes, name: str = "face.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type="image/jpeg")


@pytest.fixture
def account(kf_account_row):
    return kf_account_row


@pytest.fixture
def bound(account, emulator) -> Agent:
    kf = emulator.bound_agent("alice", nickname="Alice")
    return AgentFactory(official_account=account, kf_account=kf, kf_nick="Alice", kf_wx="wxid_alice")


@pytest.fixture
def unbound(account, emulator, boss_client) -> Agent:
    boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": "bob", "nickname": "Bob"})
    return Agent.objects.get(kf_account=f"bob@{emulator.wechat_id}")


def detail_url(agent: Agent, action: str = "") -> str:
    name = f"accounts:agent_{action}" if action else "accounts:agent_detail"
    return reverse(name, args=[agent.pk])


# --------------------------------------------------------------------------- list


def test_the_agents_page_lists_agents_with_their_binding_and_status(boss_client, account):
    AgentFactory(official_account=account, kf_nick="在线客服", online_status=1, accepted_case=3)
    AgentFactory(official_account=account, kf_nick="Pending", kf_wx="", invite_wx="someone_wx", invite_status="waiting")
    AgentFactory(official_account=account, kf_nick="Gone", deleted_at="2024-01-01T00:00:00Z")

    response = boss_client.get(reverse("accounts:agents"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "在线客服" in html and "Pending" in html and "someone_wx" in html
    assert "Gone" not in html
    assert 'id="agent-add-form"' in html and 'id="agent-table"' in html
    assert "HX-Request" in response["Vary"]


def test_the_agents_fragment_is_only_the_table(boss_client, account):
    AgentFactory(official_account=account, kf_nick="Alice")

    response = boss_client.get(reverse("accounts:agents"), headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="agent-table"')
    assert "Alice" in html and "<html" not in html


def test_the_agents_page_says_what_to_do_without_agents(boss_client):
    response = boss_client.get(reverse("accounts:agents"))

    assert "No agents yet" in response.content.decode()


def test_the_agents_page_escapes_wechat_data(boss_client, account):
    AgentFactory(official_account=account, kf_nick="<script>x</script>")

    html = boss_client.get(reverse("accounts:agents")).content.decode()

    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


def test_the_agents_page_shows_another_accounts_agents_to_nobody(boss_client):
    AgentFactory(kf_nick="Elsewhere")

    assert "Elsewhere" not in boss_client.get(reverse("accounts:agents")).content.decode()


@pytest.mark.parametrize("url_name", ["accounts:agents", "accounts:agent_add"])
def test_agent_pages_need_a_login(client, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("persona", [agent_user, auditor])
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_agents_and_auditors_get_403_on_agent_management(client, account, emulator, persona, headers):
    client.force_login(persona(account))

    assert client.get(reverse("accounts:agents"), headers=headers).status_code == 403
    assert client.get(reverse("accounts:agent_add"), headers=headers).status_code == 403
    assert client.post(reverse("accounts:agent_add"), {"kf_prefix": "x", "nickname": "x"}, headers=headers).status_code == 403
    assert emulator.calls == []
    assert not Agent.objects.filter(kf_account__startswith="x@").exists()


def test_the_agents_list_refuses_post(boss_client):
    assert boss_client.post(reverse("accounts:agents")).status_code == 405


# --------------------------------------------------------------------------- add


def test_adding_an_agent_redirects_to_its_page(boss_client, emulator):
    response = boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": "carol", "nickname": "卡罗"})

    agent = Agent.objects.get(kf_account=f"carol@{emulator.wechat_id}")
    assert response.status_code == 302
    assert response["Location"] == detail_url(agent)
    assert agent.kf_nick == "卡罗"


def test_adding_an_agent_with_htmx_resets_the_form_and_refreshes_the_table(boss_client, emulator):
    response = boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": "dan", "nickname": "Dan"}, headers=HTMX)

    assert response.status_code == 200
    assert "agentsChanged" in json.loads(response["HX-Trigger"])
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="agent-add-form"')
    assert 'hx-swap-oob="true"' in html and f"dan@{emulator.wechat_id}" in html
    assert Agent.objects.filter(kf_account=f"dan@{emulator.wechat_id}").exists()


def test_the_add_form_inputs_have_no_maxlength_that_would_cut_a_paste_silently(boss_client, emulator):
    html = boss_client.get(reverse("accounts:agent_add")).content.decode()

    assert 'id="id_kf_prefix"' in html and 'id="id_nickname"' in html
    assert "maxlength" not in html


def test_the_add_form_shows_the_accounts_wechat_id_as_the_suffix(boss_client, emulator):
    html = boss_client.get(reverse("accounts:agent_add")).content.decode()

    assert f"@{emulator.wechat_id}" in html


@pytest.mark.parametrize(
    ("prefix", "nickname", "field", "words"),
    [
        ("bad-name", "Ok", "kf_prefix", "letters, digits and underscores"),
        ("elevenchars", "Ok", "kf_prefix", "at most 10"),
        ("fine", "x" * 17, "nickname", "16"),
        ("fine", "   ", "nickname", "required"),
    ],
)
def test_bad_input_is_refused_before_calling_wechat(boss_client, emulator, prefix, nickname, field, words):
    response = boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": prefix, "nickname": nickname}, headers=HTMX)

    assert response.status_code == 200
    form = response.context["add_form"]
    assert words in " ".join(form.errors[field])
    assert emulator.calls == []
    assert not Agent.objects.exists()


def test_a_name_that_exists_here_is_refused_before_calling_wechat(boss_client, account, emulator):
    AgentFactory(official_account=account, kf_account=f"eve@{emulator.wechat_id}")

    response = boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": "eve", "nickname": "Eve"})

    assert "already exists" in " ".join(response.context["add_form"].errors["kf_prefix"])
    assert emulator.calls == []


def test_a_wechat_refusal_shows_next_to_the_field_and_saves_nothing(boss_client, emulator):
    emulator.state.add_fault(kind="errcode", errcode=65403, path_prefix="/customservice/kfaccount/add", next=1)

    response = boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": "fay", "nickname": "Fay"}, headers=HTMX)

    errors = response.context["add_form"].errors["nickname"]
    assert "WeChat error 65403" in errors[0]
    assert "WeChat error 65403" in response.content.decode()
    assert not Agent.objects.exists()
    assert AuditEvent.objects.get(action="agent_add").result == "error"


def test_a_wechat_failure_without_a_field_shows_above_the_form(boss_client, emulator):
    emulator.state.add_fault(kind="errcode", errcode=45011, path_prefix="/customservice/kfaccount/add", next=1)

    response = boss_client.post(reverse("accounts:agent_add"), {"kf_prefix": "gus", "nickname": "Gus"})

    assert response.status_code == 200
    assert "Wait a minute" in " ".join(response.context["add_form"].non_field_errors())
    assert 'class="form-errors"' in response.content.decode()


def test_adding_refuses_other_methods(boss_client):
    assert boss_client.put(reverse("accounts:agent_add")).status_code == 405


# --------------------------------------------------------------------------- detail


def test_the_agent_page_shows_the_agent_and_its_forms(boss_client, bound):
    response = boss_client.get(detail_url(bound))

    html = response.content.decode()
    assert response.status_code == 200
    for region in ("agent-card", "agent-invite", "agent-nickname-form", "agent-avatar-form"):
        assert f'id="{region}"' in html
    assert "wxid_alice" in html
    # A bound agent cannot be invited again.
    assert 'name="invite_wx"' not in html


def test_the_agent_page_fragment_is_the_card(boss_client, bound):
    html = boss_client.get(detail_url(bound), headers=HTMX).content.decode()

    assert html.lstrip().startswith('<section id="agent-card"')


def test_another_accounts_agent_is_a_404_on_every_agent_url(boss_client):
    stranger = AgentFactory(official_account=OfficialAccountFactory())

    assert boss_client.get(detail_url(stranger)).status_code == 404
    assert boss_client.get(detail_url(stranger, "delete")).status_code == 404
    for action in ("nickname", "invite", "avatar", "delete"):
        assert boss_client.post(detail_url(stranger, action), {"nickname": "x", "invite_wx": "abcdefg"}).status_code == 404
    assert Agent.objects.get(pk=stranger.pk).deleted_at is None


def test_an_outsider_gets_404_for_this_accounts_agent(client, bound):
    client.force_login(outsider())

    assert client.get(detail_url(bound)).status_code == 404
    assert client.get(detail_url(bound), headers=HTMX).status_code == 404


@pytest.mark.parametrize("action", ["nickname", "avatar", "invite"])
def test_agent_forms_refuse_get(boss_client, bound, action):
    assert boss_client.get(detail_url(bound, action)).status_code == 405


@pytest.mark.parametrize("action", ["", "nickname", "avatar", "invite", "delete"])
def test_agent_urls_are_403_for_an_auditor(client, account, bound, action):
    client.force_login(auditor(account))

    method = client.get if action in ("", "delete") else client.post
    assert method(detail_url(bound, action)).status_code == 403
    assert method(detail_url(bound, action), headers=HTMX).status_code == 403


@pytest.mark.parametrize("action", ["", "nickname", "avatar", "invite", "delete"])
def test_agent_urls_need_a_login(client, bound, action):
    response = client.get(detail_url(bound, action))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --------------------------------------------------------------------------- nickname


def test_renaming_redirects_back_to_the_agent(boss_client, bound):
    response = boss_client.post(detail_url(bound, "nickname"), {"nickname": "爱丽丝"})

    assert response.status_code == 302 and response["Location"] == detail_url(bound)
    bound.refresh_from_db()
    assert bound.kf_nick == "爱丽丝"


def test_renaming_with_htmx_rerenders_the_form_and_refreshes_the_card(boss_client, bound):
    response = boss_client.post(detail_url(bound, "nickname"), {"nickname": "Alicia"}, headers=HTMX)

    assert "agentChanged" in json.loads(response["HX-Trigger"])
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="agent-nickname-form"')
    assert 'value="Alicia"' in html
    assert "Nickname saved" in html


def test_a_refused_rename_keeps_the_typed_name_and_shows_why(boss_client, bound, emulator):
    emulator.state.add_fault(kind="errcode", errcode=65403, path_prefix="/customservice/kfaccount/update", next=1)

    response = boss_client.post(detail_url(bound, "nickname"), {"nickname": "Al!ce"}, headers=HTMX)

    html = response.content.decode()
    assert 'value="Al!ce"' in html and "65403" in html
    bound.refresh_from_db()
    assert bound.kf_nick == "Alice"


def test_a_refused_rename_without_htmx_renders_the_whole_page_with_the_error(boss_client, bound, emulator):
    emulator.state.add_fault(kind="errcode", errcode=65403, path_prefix="/customservice/kfaccount/update", next=1)

    response = boss_client.post(detail_url(bound, "nickname"), {"nickname": "Al!ce"})

    assert response.status_code == 200
    assert "<html" in response.content.decode() and "65403" in response.content.decode()


# --------------------------------------------------------------------------- avatar


def test_uploading_a_square_jpeg_succeeds_without_warnings(boss_client, bound, emulator):
    response = boss_client.post(detail_url(bound, "avatar"), {"avatar": upload(jpeg())}, headers=HTMX)

    html = response.content.decode()
    assert "Avatar uploaded" in html and "WeChat shows avatars square" not in html
    assert "agentChanged" in json.loads(response["HX-Trigger"])
    bound.refresh_from_db()
    assert bound.kf_headimgurl.startswith(emulator.base_url)


def test_uploading_a_small_oblong_jpeg_succeeds_with_advice(boss_client, bound):
    response = boss_client.post(detail_url(bound, "avatar"), {"avatar": upload(jpeg(300, 200))})

    assert response.status_code == 302
    follow = boss_client.get(response["Location"]).content.decode()
    assert "300×200" in follow and "smaller than the advised 640×640" in follow


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"GIF89a" + b"\0" * 100, "not a JPEG"),
        (jpeg(fmt="PNG"), "not a JPEG"),
        (b"\xff\xd8\xff\xe0" + b"garbage" * 20, "damaged"),
    ],
)
def test_anything_but_a_readable_jpeg_is_refused_with_the_reason(boss_client, bound, emulator, content, words):
    response = boss_client.post(detail_url(bound, "avatar"), {"avatar": upload(content)}, headers=HTMX)

    assert words in " ".join(response.context["avatar_form"].errors["avatar"])
    assert not [c for c in emulator.calls if "uploadheadimg" in c.path]


def test_a_file_over_5_mb_is_refused_before_calling_wechat(boss_client, bound, emulator):
    big = jpeg() + b"\0" * (5 * 1024 * 1024)

    response = boss_client.post(detail_url(bound, "avatar"), {"avatar": upload(big)}, headers=HTMX)

    assert "at most 5 MB" in " ".join(response.context["avatar_form"].errors["avatar"])
    assert not [c for c in emulator.calls if "uploadheadimg" in c.path]


def test_a_missing_file_is_an_error_next_to_the_field(boss_client, bound):
    response = boss_client.post(detail_url(bound, "avatar"), {}, headers=HTMX)

    assert response.context["avatar_form"].errors["avatar"]


def test_a_wechat_refusal_of_the_avatar_shows_next_to_the_field(boss_client, bound, emulator):
    emulator.state.add_fault(kind="errcode", errcode=40005, path_prefix="/customservice/kfaccount/uploadheadimg", next=1)

    response = boss_client.post(detail_url(bound, "avatar"), {"avatar": upload(jpeg())}, headers=HTMX)

    assert "40005" in " ".join(response.context["avatar_form"].errors["avatar"])


# --------------------------------------------------------------------------- invite


def test_the_page_of_an_unbound_agent_offers_the_invitation(boss_client, unbound):
    html = boss_client.get(detail_url(unbound)).content.decode()

    assert 'name="invite_wx"' in html and "Not bound" in html


def test_inviting_shows_the_invitation_pending(boss_client, unbound):
    response = boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "bob_wechat"}, headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="agent-invite"')
    assert "pending until" in html and "bob_wechat" in html
    assert 'name="invite_wx"' not in html
    assert "agentChanged" in json.loads(response["HX-Trigger"])


def test_inviting_without_htmx_redirects(boss_client, unbound):
    response = boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "bob_wechat"})

    assert response.status_code == 302
    unbound.refresh_from_db()
    assert unbound.invite_status == "waiting"


def test_an_invalid_wechat_id_is_refused_before_calling_wechat(boss_client, unbound, emulator):
    calls = len(emulator.calls)

    response = boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "12 bad"}, headers=HTMX)

    assert "6 to 20" in " ".join(response.context["invite_form"].errors["invite_wx"])
    assert len(emulator.calls) == calls


def test_a_wechat_refusal_of_the_invitation_shows_next_to_the_field(boss_client, unbound, emulator):
    emulator.state.add_fault(kind="errcode", errcode=65410, path_prefix="/customservice/kfaccount/inviteworker", next=1)

    response = boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "busy_person"}, headers=HTMX)

    assert "65410" in " ".join(response.context["invite_form"].errors["invite_wx"])
    unbound.refresh_from_db()
    assert unbound.invite_status == ""


def test_an_expired_invitation_can_be_sent_again(boss_client, unbound, emulator, account):
    boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "bob_wechat"})
    emulator.state.invite_respond(kf_account=unbound.kf_account, action="expire")
    from accounts.sync import agents_sync

    agents_sync(account_id=account.pk)

    page = boss_client.get(detail_url(unbound)).content.decode()
    assert "Invitation expired" in page and "Invite again" in page
    response = boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "bob_other"}, headers=HTMX)
    assert "bob_other" in response.content.decode()


def test_a_rejected_invitation_shows_as_rejected_and_can_be_sent_again(boss_client, unbound, emulator, account):
    boss_client.post(detail_url(unbound, "invite"), {"invite_wx": "bob_wechat"})
    emulator.state.invite_respond(kf_account=unbound.kf_account, action="reject")
    from accounts.sync import agents_sync

    agents_sync(account_id=account.pk)

    table = boss_client.get(reverse("accounts:agents"), headers=HTMX).content.decode()
    assert "Invitation rejected" in table
    assert 'name="invite_wx"' in boss_client.get(detail_url(unbound)).content.decode()


# --------------------------------------------------------------------------- delete


def test_the_delete_confirmation_names_the_account(boss_client, bound):
    response = boss_client.get(detail_url(bound, "delete"))

    html = response.content.decode()
    assert response.status_code == 200
    assert f"Delete {bound.kf_account}?" in html and "<html" in html


def test_the_delete_confirmation_comes_as_a_dialog_for_htmx(boss_client, bound):
    html = boss_client.get(detail_url(bound, "delete"), headers=HTMX).content.decode()

    assert html.lstrip().startswith('<div id="modal"')
    assert "<dialog" in html and "data-modal" in html and bound.kf_account in html


def test_deleting_redirects_to_the_list(boss_client, bound, emulator):
    response = boss_client.post(detail_url(bound, "delete"))

    assert response.status_code == 302 and response["Location"] == reverse("accounts:agents")
    bound.refresh_from_db()
    assert bound.deleted_at is not None
    assert bound.kf_account not in [a["kf_account"] for a in emulator.get("/cgi-bin/customservice/getkflist")["kf_list"]]


def test_deleting_with_htmx_closes_the_dialog_and_refreshes_the_table(boss_client, bound):
    response = boss_client.post(detail_url(bound, "delete"), headers=HTMX)

    assert "agentsChanged" in json.loads(response["HX-Trigger"])
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="modal" data-modal-host></div>')
    assert "Deleted" in html


def test_a_refused_delete_keeps_the_dialog_open_with_the_reason(boss_client, bound, emulator):
    emulator.state.add_fault(kind="errcode", errcode=-1, path_prefix="/customservice/kfaccount/del", next=1)

    response = boss_client.post(detail_url(bound, "delete"), headers=HTMX)

    html = response.content.decode()
    assert "<dialog" in html and "busy" in html
    bound.refresh_from_db()
    assert bound.deleted_at is None


def test_delete_refuses_other_methods(boss_client, bound):
    assert boss_client.put(detail_url(bound, "delete")).status_code == 405


def test_the_agent_page_refuses_post(boss_client, bound):
    assert boss_client.post(detail_url(bound)).status_code == 405
