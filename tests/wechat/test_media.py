"""The media and material operations at the HTTP seam (issue 10 §4): exact requests,
typed results, WeChat's limits checked before any call, errors and token refresh as
for the other operations."""

from __future__ import annotations

import io

import pytest

from kfadmin.wechat import (
    MaterialCount,
    MediaContent,
    UploadedMedia,
    WeChatInvalidArgument,
    WeChatResponseError,
    WeChatTransportError,
    media_problem,
    sniff_format,
)
from kfadmin.wechat.validation import voice_seconds
from tests.wechat import media_samples as samples
from tests.wechat.helpers import (
    BASE,
    TOKEN,
    json_of,
    multipart_parts,
    only_request,
    path_of,
    query_of,
)

UPLOAD = f"{BASE}/cgi-bin/media/upload"
GET = f"{BASE}/cgi-bin/media/get"


# ------------------------------------------------------------------ upload_media


@pytest.mark.parametrize(
    ("media_type", "content"),
    [
        ("image", samples.png()),
        ("image", samples.jpeg()),
        ("image", samples.gif()),
        ("voice", samples.amr()),
        ("voice", samples.mp3()),
        ("video", samples.mp4()),
        ("thumb", samples.jpeg()),
    ],
)
def test_upload_media_posts_one_media_part_with_the_type_in_the_query(rsps, kf, media_type, content):
    rsps.post(UPLOAD, json={"type": media_type, "media_id": "MEDIA_1", "created_at": 1700000000})

    result = kf.upload_media(media_type, content)

    assert result == UploadedMedia(type=media_type, media_id="MEDIA_1", created_at=1700000000)
    request = only_request(rsps)
    assert request.method == "POST"
    assert path_of(request) == "/cgi-bin/media/upload"
    assert query_of(request) == [("access_token", TOKEN), ("type", media_type)]
    [(name, _filename, body)] = multipart_parts(request)
    assert (name, body) == ("media", content)


def test_upload_media_keeps_the_name_of_a_file_object(rsps, kf):
    rsps.post(UPLOAD, json={"type": "image", "media_id": "M", "created_at": 1})
    handle = io.BytesIO(samples.png())
    handle.name = "/tmp/screenshot.png"

    kf.upload_media("image", handle)

    [(_name, filename, _body)] = multipart_parts(only_request(rsps))
    assert filename == "screenshot.png"


@pytest.mark.parametrize(
    ("media_type", "content", "words"),
    [
        ("file", samples.png(), "media_type must be one of image, voice, video, thumb"),
        ("image", b"", "empty"),
        ("image", b"%PDF-1.4 not an image", "PNG, JPEG/JPG or GIF"),
        ("image", samples.png() + bytes(2 * 1024 * 1024), "at most 2 MB for image"),
        ("voice", samples.png(), "AMR or MP3"),
        ("voice", samples.amr(seconds=61), "61 seconds; WeChat accepts voice of at most 60 seconds"),
        ("voice", samples.mp3(seconds=65), "at most 60 seconds"),
        ("video", samples.jpeg(), "MP4"),
        ("video", samples.mp4(10 * 1024 * 1024 + 1), "at most 10 MB for video"),
        ("thumb", samples.png(), "must be JPG"),
        ("thumb", samples.jpeg() + bytes(64 * 1024), "at most 64 KB for thumb"),
    ],
)
def test_upload_media_names_the_limit_that_failed_and_calls_nothing(rsps, kf, media_type, content, words):
    with pytest.raises(WeChatInvalidArgument) as caught:
        kf.upload_media(media_type, content)

    assert words in str(caught.value)
    assert caught.value.errcode is None
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(("errcode", "words"), [(40004, "media type"), (40005, "file type"), (40006, "file size"), (41005, "no file")])
def test_upload_errcodes_arrive_typed_with_a_sentence(rsps, kf, errcode, words):
    rsps.post(UPLOAD, json={"errcode": errcode, "errmsg": "x"})

    with pytest.raises(WeChatInvalidArgument) as caught:
        kf.upload_media("image", samples.png())

    assert caught.value.errcode == errcode
    assert words in caught.value.explanation


def test_an_upload_is_resent_in_full_after_a_stale_token(rsps, kf):
    content = samples.jpeg(64, 64)
    rsps.post(UPLOAD, json={"errcode": 40001, "errmsg": "invalid credential"})
    rsps.post(f"{BASE}/cgi-bin/stable_token", json={"access_token": "FRESH", "expires_in": 7200})
    rsps.post(UPLOAD, json={"type": "thumb", "media_id": "T", "created_at": 5})

    assert kf.upload_media("thumb", content).media_id == "T"

    uploads = [c.request for c in rsps.calls if path_of(c.request) == "/cgi-bin/media/upload"]
    assert [dict(query_of(r))["access_token"] for r in uploads] == [TOKEN, "FRESH"]
    assert [multipart_parts(r)[0][2] for r in uploads] == [content, content]


def test_an_answer_without_a_media_id_is_a_response_error(rsps, kf):
    rsps.post(UPLOAD, json={"type": "image", "created_at": 5})

    with pytest.raises(WeChatResponseError) as caught:
        kf.upload_media("image", samples.png())

    assert "without a media_id" in str(caught.value)


# ------------------------------------------------------------------ get_media


def test_get_media_returns_the_bytes_and_the_content_type_wechat_named(rsps, kf):
    picture = samples.jpeg()
    rsps.get(
        GET, body=picture, content_type="image/jpeg",
        headers={"Content-Disposition": 'attachment; filename="MEDIA_1.jpg"'},
    )

    media = kf.get_media("MEDIA_1")

    assert media == MediaContent(content=picture, content_type="image/jpeg", filename="MEDIA_1.jpg")
    request = only_request(rsps)
    assert request.method == "GET"
    assert query_of(request) == [("access_token", TOKEN), ("media_id", "MEDIA_1")]


def test_get_media_of_an_unknown_id_raises_40007(rsps, kf):
    rsps.get(GET, json={"errcode": 40007, "errmsg": "invalid media_id"})

    with pytest.raises(WeChatInvalidArgument) as caught:
        kf.get_media("GONE")

    assert caught.value.errcode == 40007


def test_get_media_reads_an_error_labelled_text_plain_as_the_json_it_is(rsps, kf):
    rsps.get(GET, body='{"errcode":40007,"errmsg":"invalid media_id"}', content_type="text/plain")

    with pytest.raises(WeChatInvalidArgument):
        kf.get_media("GONE")


def test_get_media_of_a_video_gives_its_download_address(rsps, kf):
    rsps.get(GET, json={"video_url": "http://example.test/v.mp4"})

    assert kf.get_media("V").video_url == "http://example.test/v.mp4"


def test_get_media_refreshes_a_stale_token_once(rsps, kf):
    rsps.get(GET, json={"errcode": 42001, "errmsg": "expired"})
    rsps.post(f"{BASE}/cgi-bin/stable_token", json={"access_token": "FRESH", "expires_in": 7200})
    rsps.get(GET, body=b"#!AMR\n", content_type="audio/amr")

    assert kf.get_media("M").content == b"#!AMR\n"


def test_get_media_over_http_500_is_a_retryable_transport_error(rsps, kf):
    rsps.get(GET, body="<html>oops</html>", status=500, content_type="text/html")

    with pytest.raises(WeChatTransportError) as caught:
        kf.get_media("M")

    assert caught.value.retryable


def test_get_media_checks_the_id_before_calling(rsps, kf):
    with pytest.raises(WeChatInvalidArgument):
        kf.get_media(" ")
    assert len(rsps.calls) == 0


# ------------------------------------------------------------------ materials


def test_get_material_count_reads_the_four_counts(rsps, kf):
    rsps.get(
        f"{BASE}/cgi-bin/material/get_materialcount",
        json={"voice_count": 1, "video_count": 2, "image_count": 3, "news_count": 4},
    )

    assert kf.get_material_count() == MaterialCount(voice_count=1, video_count=2, image_count=3, news_count=4)
    assert query_of(only_request(rsps)) == [("access_token", TOKEN)]


def test_batchget_material_posts_type_offset_and_count(rsps, kf):
    rsps.post(
        f"{BASE}/cgi-bin/material/batchget_material",
        json={
            "total_count": 30, "item_count": 1,
            "item": [{"media_id": "IMG", "name": "logo.png", "update_time": 1700000000, "url": "http://x/logo.png"}],
        },
    )

    page = kf.batchget_material("image", offset=20, count=10)

    assert json_of(only_request(rsps)) == {"type": "image", "offset": 20, "count": 10}
    assert (page.total_count, page.item_count) == (30, 1)
    assert (page.item[0].media_id, page.item[0].name, page.item[0].url) == ("IMG", "logo.png", "http://x/logo.png")


def test_batchget_material_reads_news_articles(rsps, kf):
    rsps.post(
        f"{BASE}/cgi-bin/material/batchget_material",
        json={
            "total_count": 1, "item_count": 1,
            "item": [{
                "media_id": "NEWS", "update_time": 5,
                "content": {"news_item": [{"title": "春季新品", "thumb_media_id": "T", "url": "http://x/a", "digest": "d"}]},
            }],
        },
    )

    [item] = kf.batchget_material("news").item

    assert item.content.news_item[0].title == "春季新品"
    assert json_of(only_request(rsps)) == {"type": "news", "offset": 0, "count": 20}


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"material_type": "thumb"}, "material_type must be one of image, voice, video, news"),
        ({"material_type": "image", "count": 21}, "count must be at most 20"),
        ({"material_type": "image", "count": 0}, "count must be at least 1"),
        ({"material_type": "image", "offset": -1}, "offset must be at least 0"),
    ],
)
def test_batchget_material_checks_its_arguments_first(rsps, kf, kwargs, words):
    with pytest.raises(WeChatInvalidArgument) as caught:
        kf.batchget_material(**kwargs)

    assert words in str(caught.value)
    assert len(rsps.calls) == 0


def test_batchget_freepublish_posts_the_page_and_no_content_as_a_number(rsps, kf):
    rsps.post(
        f"{BASE}/cgi-bin/freepublish/batchget",
        json={
            "total_count": 1, "item_count": 1,
            "item": [{"article_id": "ART_1", "update_time": 9, "content": {"news_item": [{"title": "会员日", "url": "http://x/p", "is_deleted": False}]}}],
        },
    )

    page = kf.batchget_freepublish(offset=0, count=5)

    assert json_of(only_request(rsps)) == {"offset": 0, "count": 5, "no_content": 1}
    assert page.item[0].article_id == "ART_1"
    assert page.item[0].content.news_item[0].title == "会员日"
    assert page.item[0].content.news_item[0].is_deleted is False


def test_batchget_freepublish_asks_for_content_when_told(rsps, kf):
    rsps.post(f"{BASE}/cgi-bin/freepublish/batchget", json={"total_count": 0, "item_count": 0, "item": []})

    kf.batchget_freepublish(no_content=False)

    assert json_of(only_request(rsps))["no_content"] == 0


# ------------------------------------------------------------------ sniffing


def test_formats_are_read_from_the_bytes():
    assert [sniff_format(x) for x in (samples.png(), samples.jpeg(), samples.gif(), samples.amr(), samples.mp3(), samples.mp4(), b"hello")] == [
        "png", "jpeg", "gif", "amr", "mp3", "mp4", None,
    ]


def test_voice_length_is_counted_from_the_frames():
    assert voice_seconds(samples.amr(seconds=2)) == pytest.approx(2.0)
    assert voice_seconds(samples.mp3(seconds=3)) == pytest.approx(3.0, abs=0.05)
    assert media_problem("voice", samples.amr(seconds=59)) is None

