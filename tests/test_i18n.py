"""Chinese (the default) and English: the catalogue, its compiled form, the switcher."""

from __future__ import annotations

import gettext as gnu_gettext
import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from accounts import services
from kfadmin.wechat import explain, known_errcodes
from tests.factories import AgentFactory, OfficialAccountFactory, supervisor

LOCALE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"


def po_entries() -> list[tuple[str, str, bool]]:
    """(msgid, first msgstr, fuzzy) of every live entry of the zh-Hans catalogue."""
    text = (LOCALE / "django.po").read_text(encoding="utf-8")
    entries = []
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if not line.startswith("#~")]
        fuzzy = any(line.startswith("#,") and "fuzzy" in line for line in lines)
        fields: dict[str, str] = {}
        current = None
        for line in lines:
            match = re.match(r'^(msgid|msgid_plural|msgstr(?:\[0\])?) "(.*)"$', line)
            if match:
                current = match.group(1).replace("[0]", "")
                fields[current] = match.group(2)
            elif line.startswith('"') and current:
                fields[current] += line[1:-1]
        if fields.get("msgid"):
            # .po strings use C escapes (\" \\ \n), which JSON reads the same way.
            entries.append((json.loads(f'"{fields["msgid"]}"'), json.loads(f'"{fields.get("msgstr", "")}"'), fuzzy))
    return entries


def test_every_catalogue_entry_is_translated_and_none_is_fuzzy():
    entries = po_entries()

    assert len(entries) > 300
    assert [msgid for msgid, msgstr, _ in entries if not msgstr] == []
    assert [msgid for msgid, _, fuzzy in entries if fuzzy] == []


def test_the_compiled_catalogue_matches_the_source():
    with open(LOCALE / "django.mo", "rb") as handle:
        compiled = gnu_gettext.GNUTranslations(handle)

    stale = [msgid for msgid, msgstr, _ in po_entries() if compiled._catalog.get(msgid, compiled._catalog.get((msgid, 0))) != msgstr]

    assert stale == [], "run: manage.py compilemessages -l zh_Hans"


def test_placeholders_survive_translation():
    for msgid, msgstr, _ in po_entries():
        assert sorted(re.findall(r"%\(\w+\)[sd]", msgid)) == sorted(re.findall(r"%\(\w+\)[sd]", msgstr)) or "%(" not in msgid, msgid


def test_every_wechat_error_sentence_is_in_chinese():
    untranslated = []
    with translation.override("zh-hans"):
        for code in sorted(known_errcodes()):
            if translation.gettext(explain(code)) == explain(code):
                untranslated.append(code)

    assert untranslated == []


def test_every_wechat_error_sentence_is_anchored_for_makemessages():
    # If the client's wording changes, the anchor list (and the catalogue) must follow.
    assert {explain(code) for code in known_errcodes()} <= set(services._WECHAT_SENTENCES)


@pytest.mark.django_db
def test_pages_are_in_chinese_by_default(client):
    account = OfficialAccountFactory()
    AgentFactory(official_account=account)
    client.force_login(supervisor(account))

    html = client.get(reverse("accounts:agents")).content.decode()

    assert '<html lang="zh-hans">' in html
    assert "添加客服" in html and "微信绑定" in html


@pytest.mark.django_db
def test_the_language_switcher_turns_pages_english(client):
    account = OfficialAccountFactory()
    client.force_login(supervisor(account))

    response = client.post(reverse("set_language"), {"language": "en", "next": reverse("home")})

    assert response.status_code == 302
    html = client.get(reverse("home")).content.decode()
    assert '<html lang="en">' in html and "Agents online" in html and "在线客服" not in html


@pytest.mark.django_db
def test_the_login_page_is_chinese_for_anonymous_visitors(client):
    html = client.get(reverse("login")).content.decode()

    assert "登录 kfadmin" in html


TEMPLATES = Path(settings.BASE_DIR) / "templates"
TRANSLATE_TAG = re.compile(r"""{%\s*translate\s+(?:"([^"]*)"|'([^']*)')""")
BLOCK_TAG = re.compile(r"{%\s*blocktranslate(?P<args>[^%]*)%}(?P<body>.*?){%\s*(?:plural|endblocktranslate)\s*%}", re.S)


def template_msgids() -> list[tuple[str, str]]:
    """(template, msgid) of every literal {% translate %} and {% blocktranslate %}."""
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for match in TRANSLATE_TAG.finditer(text):
            found.append((path.name, match.group(1) or match.group(2)))
        for match in BLOCK_TAG.finditer(text):
            body = match.group("body").replace("%", "%%")
            body = re.sub(r"{{\s*(\w+)\s*}}", r"%(\1)s", body)
            if "trimmed" in match.group("args"):
                body = " ".join(body.split())
            found.append((path.name, body))
    return found


def test_every_template_string_has_a_chinese_translation():
    catalogue = {msgid for msgid, _, _ in po_entries()}

    missing = [(name, msgid) for name, msgid in template_msgids() if msgid not in catalogue]

    assert len(template_msgids()) > 200
    assert missing == [], "run makemessages -l zh_Hans, translate, compilemessages"
