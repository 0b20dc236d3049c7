"""Chat-history paging: iter_msg_record_pages / iter_msg_records follow the returned
msgid until a short or empty page (wechat-kf-api.md §6.1)."""

from __future__ import annotations

import json

import pytest
import responses

from kfadmin.wechat import MsgRecord, MsgRecordList, WeChatResponseError
from tests.wechat.helpers import BASE, json_of

URL = BASE + "/customservice/msgrecord/getmsglist"
START, END = 1_700_000_000, 1_700_000_000 + 3600


def record(n: int) -> dict:
    return {
        "worker": "a@b",
        "openid": f"o{n}",
        "opercode": 2002,
        "text": f"消息{n}",
        "time": START + n,
    }


def serve(rsps: responses.RequestsMock, total: int, *, advance: bool = True) -> None:
    """Serve records 1..total the way the emulator does: ids >= msgid, at most
    `number`, next msgid = last id + 1 (or the request's msgid when empty)."""

    def callback(request):
        body = json.loads(request.body)
        first, number = body["msgid"], body["number"]
        ids = [i for i in range(first, total + 1)][:number]
        next_msgid = (ids[-1] + 1 if ids else first) if advance else first
        answer = {"recordlist": [record(i) for i in ids], "number": len(ids), "msgid": next_msgid}
        return 200, {}, json.dumps(answer, ensure_ascii=False)

    rsps.add_callback(responses.POST, URL, callback=callback, content_type="application/json")


def requested_msgids(rsps: responses.RequestsMock) -> list[int]:
    return [json_of(call.request)["msgid"] for call in rsps.calls]


def test_it_pages_by_the_returned_msgid_until_a_short_page(kf, rsps: responses.RequestsMock):
    serve(rsps, total=5)

    records = list(kf.iter_msg_records(START, END, number=2))

    assert [r.openid for r in records] == ["o1", "o2", "o3", "o4", "o5"]
    assert all(isinstance(r, MsgRecord) for r in records)
    assert requested_msgids(rsps) == [1, 3, 5]
    assert {json_of(c.request)["number"] for c in rsps.calls} == {2}
    assert {
        (json_of(c.request)["starttime"], json_of(c.request)["endtime"]) for c in rsps.calls
    } == {(START, END)}


def test_it_stops_at_an_empty_page_after_full_pages(kf, rsps: responses.RequestsMock):
    serve(rsps, total=4)

    records = list(kf.iter_msg_records(START, END, number=2))

    assert len(records) == 4
    assert requested_msgids(rsps) == [1, 3, 5]


def test_an_empty_window_costs_one_request(kf, rsps: responses.RequestsMock):
    serve(rsps, total=0)

    assert list(kf.iter_msg_records(START, END)) == []
    assert requested_msgids(rsps) == [1]


def test_pages_expose_the_msgid_to_resume_from(kf, rsps: responses.RequestsMock):
    serve(rsps, total=5)

    pages = list(kf.iter_msg_record_pages(START, END, number=2))

    assert [(len(p.recordlist), p.number, p.msgid) for p in pages] == [
        (2, 2, 3),
        (2, 2, 5),
        (1, 1, 6),
    ]
    assert all(isinstance(p, MsgRecordList) for p in pages)


def test_paging_can_resume_from_a_stored_msgid(kf, rsps: responses.RequestsMock):
    serve(rsps, total=5)

    records = [
        r for p in kf.iter_msg_record_pages(START, END, number=2, msgid=3) for r in p.recordlist
    ]

    assert [r.openid for r in records] == ["o3", "o4", "o5"]
    assert requested_msgids(rsps) == [3, 5]


def test_paging_is_lazy_so_a_sync_can_store_page_by_page(kf, rsps: responses.RequestsMock):
    serve(rsps, total=10)

    pages = kf.iter_msg_record_pages(START, END, number=3)
    assert len(rsps.calls) == 0
    next(pages)
    assert len(rsps.calls) == 1


def test_a_full_page_that_does_not_advance_stops_instead_of_looping(
    kf, rsps: responses.RequestsMock
):
    serve(rsps, total=10, advance=False)

    pages = kf.iter_msg_record_pages(START, END, number=2)
    first = next(pages)

    assert len(first.recordlist) == 2
    with pytest.raises(WeChatResponseError, match="does not advance"):
        next(pages)
    assert len(rsps.calls) == 1
