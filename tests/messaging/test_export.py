"""Exports of the filtered history: streamed CSV (BOM, formula guard) and JSON Lines."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from messaging.exports import csv_safe
from messaging.models import MessageRecord, record_digest
from tests.factories import AgentFactory, CustomerFactory, agent_user, auditor, aware, outsider
from tests.sessions_app.test_views_support import archive, wired_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

CSV = reverse("messaging:export", args=["csv"])
JSONL = reverse("messaging:export", args=["jsonl"])


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


def streamed(response) -> bytes:
    assert response.streaming, "exports must stream, not build the file in memory"
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[list[str]]:
    text = streamed(response).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_the_csv_export_streams_every_match_with_a_bom_for_excel(boss_client, account):
    archive(account, "o_a", "我要退款", at=aware(2025, 3, 1, 9, 30))
    archive(account, "o_a", "退款已到账", opercode=2002, worker="alice@test_oa", at=aware(2025, 3, 1, 9, 31))
    archive(account, "o_b", "发货了吗", at=aware(2025, 3, 1, 9, 32))

    response = boss_client.get(CSV, {"q": "退款"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="kfadmin-history-')
    rows = csv_rows(response)
    assert rows[0] == ["time", "kind", "opercode", "agent", "openid", "text", "customer"]
    assert rows[1:] == [
        ["2025-03-01T09:30:00+08:00", "customer", "2001", "", "o_a", "我要退款", ""],
        ["2025-03-01T09:31:00+08:00", "agent", "2002", "alice@test_oa", "o_a", "退款已到账", ""],
    ]


def test_csv_cells_that_look_like_formulas_are_neutralised(boss_client, account):
    for text in ("=HYPERLINK(\"http://evil\")", "+1+1", "-2+3", "@SUM(A1:A2)", "normal - text"):
        archive(account, "o_a", text, at=timezone.now() - timedelta(minutes=1))
    texts = [row[5] for row in csv_rows(boss_client.get(CSV))[1:]]
    assert sorted(texts) == sorted(
        ["'=HYPERLINK(\"http://evil\")", "'+1+1", "'-2+3", "'@SUM(A1:A2)", "normal - text"]
    )


def test_csv_safe_prefixes_only_dangerous_starts():
    assert csv_safe("=1") == "'=1"
    assert csv_safe("\t=1") == "'\t=1"
    assert csv_safe("a=1") == "a=1"
    assert csv_safe("") == ""


def test_the_json_lines_export_has_one_object_per_record(boss_client, account):
    archive(account, "o_a", "=不是公式", at=aware(2025, 3, 1, 9, 30))
    response = boss_client.get(JSONL)
    lines = streamed(response).decode("utf-8").splitlines()
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert [json.loads(line) for line in lines] == [
        {"time": "2025-03-01T09:30:00+08:00", "kind": "customer", "opercode": 2001, "agent": "", "openid": "o_a", "text": "=不是公式",
         "customer": ""}
    ]
    assert "不是公式" in lines[0]  # raw UTF-8, not \\u escapes


def test_the_export_respects_every_filter(boss_client, account):
    archive(account, "o_a", "keep", opercode=2002, worker="alice@test_oa", at=aware(2025, 3, 1, 12))
    archive(account, "o_a", "other day", opercode=2002, worker="alice@test_oa", at=aware(2025, 3, 3, 12))
    archive(account, "o_b", "other customer", opercode=2002, worker="alice@test_oa", at=aware(2025, 3, 1, 12))
    archive(account, "o_a", "customer kind", opercode=2001, at=aware(2025, 3, 1, 12))
    params = {"openid": "o_a", "kinds": ["agent"], "since": "2025-03-01", "until": "2025-03-02"}
    assert [row[5] for row in csv_rows(boss_client.get(CSV, params))[1:]] == ["keep"]


def test_an_export_is_audited_with_its_filters(boss_client, account):
    boss_client.get(JSONL, {"q": "退款", "since": "2025-03-01"})
    event = AuditEvent.objects.get(action="history_export")
    assert event.target == "jsonl"
    assert event.params["q"] == "退款"
    assert event.params["since"] == "2025-03-01T00:00:00+08:00"


def test_an_agent_exports_only_their_own_conversations(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@test_oa")
    archive(account, "o_a", "mine", opercode=2002, worker=alice.kf_account)
    archive(account, "o_b", "not mine", opercode=2002, worker="carol@test_oa")
    client.force_login(agent_user(account, agent=alice))
    assert [row[5] for row in csv_rows(client.get(CSV))[1:]] == ["mine"]


def test_an_auditor_may_export(client, account):
    archive(account, "o_a", "x")
    client.force_login(auditor(account))
    assert len(csv_rows(client.get(CSV))) == 2


def test_another_accounts_records_are_never_exported(client, account):
    archive(account, "o_a", "secret")
    client.force_login(outsider())
    assert csv_rows(client.get(CSV))[1:] == []


def test_the_export_requires_login(client):
    assert client.get(CSV).status_code == 302


def test_an_unknown_format_is_not_found(boss_client):
    assert boss_client.get(reverse("messaging:export", args=["xlsx"])).status_code == 404


def test_the_export_accepts_only_get_and_post(boss_client):
    # GET streams (or offers a background job); POST queues the job (test_export_jobs.py).
    assert boss_client.put(CSV).status_code == 405


def test_invalid_filters_send_the_user_back_to_fix_them(boss_client):
    response = boss_client.get(CSV, {"since": "not a date"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("messaging:history"))
    assert not AuditEvent.objects.filter(action="history_export").exists()


def test_a_large_export_streams_every_row_after_the_header(boss_client, account):
    base = timezone.now() - timedelta(days=1)
    MessageRecord.objects.bulk_create(
        MessageRecord(
            official_account=account, time=base + timedelta(seconds=n), openid="o_a", opercode=2001,
            text=f"line {n}", digest=record_digest("", "o_a", 2001, f"line {n}"),
        )
        for n in range(5000)
    )
    response = boss_client.get(CSV)
    chunks = iter(response.streaming_content)
    first = next(chunks)
    assert first.startswith("\ufefftime".encode())
    rest = b"".join(chunks)
    assert rest.count(b"\n") == 5000


def test_an_export_audit_names_the_filters_that_applied(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@test_oa")
    client.force_login(agent_user(account, agent=alice))
    client.get(CSV)
    assert AuditEvent.objects.get(action="history_export").params == {"agent": "alice@test_oa"}


def test_the_export_names_customers_by_their_remark_name(boss_client, account):
    CustomerFactory(official_account=account, openid="o_a", remark_name="王女士")
    archive(account, "o_a", "我要退款", at=aware(2025, 3, 1, 9, 30))
    archive(account, "o_b", "发货了吗", at=aware(2025, 3, 1, 9, 32))

    rows = csv_rows(boss_client.get(CSV))
    lines = streamed(boss_client.get(JSONL)).decode("utf-8").splitlines()

    assert [(row[4], row[6]) for row in rows[1:]] == [("o_a", "王女士"), ("o_b", "")]
    assert [json.loads(line)["customer"] for line in lines] == ["王女士", ""]
