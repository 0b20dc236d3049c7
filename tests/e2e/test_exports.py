"""A large export in a real browser: the history page offers to prepare it, a real
Celery worker writes it while the Exports page polls, the file downloads whole.
Screenshot: docs/screenshots/export-job.png."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import AuditEvent
from messaging.models import ExportJob, MessageRecord, record_digest
from tests.e2e.support import worker_running
from tests.factories import PASSWORD, AgentFactory, OfficialAccountFactory, supervisor

pytestmark = pytest.mark.django_db(transaction=True)

RECORDS = 1200


@pytest.fixture
def shop(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.EXPORT_STREAM_MAX_ROWS = 1000
    account = OfficialAccountFactory(name="小鹿杂货铺", wechat_id="deer_shop")
    mei = AgentFactory(official_account=account, kf_account="mei@deer_shop", kf_nick="小美")
    start = timezone.now() - timedelta(days=3)
    texts = ("你好，请问我的订单发货了吗", "亲，已经发货了，请注意查收", "我要退款", "好的，已为您提交退款申请")
    MessageRecord.objects.bulk_create(
        MessageRecord(
            official_account=account, time=start + timedelta(seconds=90 * i), worker=mei.kf_account if i % 2 else "",
            openid=f"o_deer_{i % 40:02d}", opercode=2003 if i % 2 else 2001, text=texts[i % 4],
            digest=record_digest(mei.kf_account if i % 2 else "", f"o_deer_{i % 40:02d}", 2003 if i % 2 else 2001,
                                 texts[i % 4]),
            seq=i // 4,
        )
        for i in range(RECORDS)
    )
    return account


def test_a_large_export_is_prepared_in_the_background_and_downloads_whole(
    page, live_server, login, screenshot, shop, tmp_path
):
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_server.url}])
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/history/")

    page.get_by_role("link", name="Export CSV").click()
    expect(page.get_by_role("heading", name="This search matches more than 1,000 records")).to_be_visible()
    page.get_by_role("button", name="Prepare the CSV export").click()

    expect(page).to_have_url(f"{live_server.url}/history/exports/")
    row = page.locator("#export-jobs tbody tr").first
    expect(row).to_contain_text("waiting for a worker")  # no worker runs yet: the page says so

    with worker_running("celery"):
        # The page polls every 2 s and shows the file once the worker has written it.
        expect(row).to_contain_text("ready", timeout=60_000)
    expect(row).to_contain_text(f"{RECORDS:,} records")
    expect(page.locator("#export-jobs")).not_to_have_attribute("hx-trigger", "every 2s")
    screenshot("export-job")

    with page.expect_download() as info:
        row.get_by_role("link", name="Download").click()
    path = tmp_path / "download.csv"
    info.value.save_as(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    assert len(lines) == RECORDS + 1
    job = ExportJob.objects.get()
    assert job.rows_written == RECORDS
    assert list(AuditEvent.objects.filter(action__startswith="history_export").order_by("id")
                .values_list("action", flat=True)) == ["history_export", "history_export_download"]
