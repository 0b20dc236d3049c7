"""Media on the emulator: temporary uploads with WeChat's limits and errcodes, the
3-day lifetime on the emulator clock, media/get, permanent materials, published
articles, and sends that name an unknown or expired media_id (40007)."""

from __future__ import annotations

import requests

from kfadmin.emulator import Emulator
from kfadmin.emulator.demo import DEMO_APPID, DEMO_IMAGES, DEMO_PUBLISHED
from tests.wechat import media_samples as samples

UPLOAD = "/cgi-bin/media/upload"
GET = "/cgi-bin/media/get"
SEND = "/cgi-bin/message/custom/send"


def upload(emulator, media_type: str, content: bytes | None, *, field: str = "media") -> dict:
    files = {field: ("f.bin", content, "application/octet-stream")} if content is not None else None
    data = None if files else {"x": "1"}
    response = requests.post(
        emulator.base_url + UPLOAD,
        params={"access_token": emulator.access_token(), "type": media_type},
        files=files, data=data, timeout=30,
    )
    return response.json()


def get_media(emulator, media_id: str) -> requests.Response:
    return requests.get(
        emulator.base_url + GET, params={"access_token": emulator.access_token(), "media_id": media_id}, timeout=30
    )


def test_an_upload_answers_type_media_id_and_created_at_and_is_kept(emulator):
    picture = samples.png()
    answer = upload(emulator, "image", picture)

    assert answer["type"] == "image"
    assert answer["created_at"] == int(emulator.state.now())
    response = get_media(emulator, answer["media_id"])
    assert response.status_code == 200
    assert response.content == picture
    assert response.headers["Content-Type"] == "image/png"
    assert answer["media_id"] in response.headers["Content-Disposition"]


def test_each_type_takes_its_formats(emulator):
    for media_type, content in (
        ("image", samples.jpeg()), ("image", samples.gif()), ("voice", samples.amr()), ("voice", samples.mp3()),
        ("video", samples.mp4()), ("thumb", samples.jpeg()),
    ):
        assert upload(emulator, media_type, content)["type"] == media_type


def test_upload_errors_answer_wechats_codes(emulator):
    assert upload(emulator, "file", samples.png())["errcode"] == 40004
    assert upload(emulator, "image", None)["errcode"] == 41005
    assert upload(emulator, "image", samples.png(), field="file")["errcode"] == 41005
    assert upload(emulator, "image", b"%PDF-1.7")["errcode"] == 40005
    assert upload(emulator, "thumb", samples.png())["errcode"] == 40005
    assert upload(emulator, "voice", samples.jpeg())["errcode"] == 40005
    assert upload(emulator, "image", samples.png() + bytes(2 * 1024 * 1024))["errcode"] == 40006
    assert upload(emulator, "thumb", samples.jpeg() + bytes(64 * 1024))["errcode"] == 40006
    assert upload(emulator, "voice", samples.amr(seconds=61))["errcode"] == 40006
    assert emulator.state.media_list(appid=emulator.appid)["media"] == []


def test_temporary_media_expire_after_three_days_on_the_emulator_clock(emulator):
    media_id = upload(emulator, "image", samples.png())["media_id"]
    openid = emulator.customer()

    emulator.state.advance(3 * 86400 - 5)
    assert get_media(emulator, media_id).status_code == 200
    emulator.customer(openid)
    assert emulator.post(SEND, {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}})["errcode"] == 0

    emulator.state.advance(10)
    assert get_media(emulator, media_id).json()["errcode"] == 40007
    answer = emulator.post(SEND, {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}})
    assert answer["errcode"] == 40007
    assert emulator.state.customer(openid=openid)["remaining"] == 4  # the refused send cost nothing


def test_a_send_naming_an_unknown_media_answers_40007(emulator):
    openid = emulator.customer()
    thumb = emulator.media("thumb")
    for msgtype, payload in (
        ("image", {"media_id": "made_up"}),
        ("voice", {"media_id": "made_up"}),
        ("video", {"media_id": emulator.media("video"), "thumb_media_id": "made_up"}),
        ("music", {"musicurl": "http://x/a.mp3", "thumb_media_id": "made_up"}),
        ("mpnews", {"media_id": thumb}),
        ("mpnewsarticle", {"article_id": "made_up"}),
        ("miniprogrampage", {"appid": "wx1", "pagepath": "p", "thumb_media_id": "made_up"}),
    ):
        assert emulator.post(SEND, {"touser": openid, "msgtype": msgtype, msgtype: payload})["errcode"] == 40007, msgtype


def test_media_get_of_an_unknown_id_answers_40007_as_json(emulator):
    response = get_media(emulator, "nothing")

    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["errcode"] == 40007


def test_a_customers_image_is_fetchable_by_the_media_id_of_its_push(emulator):
    openid = emulator.customer()
    msgid = emulator.state.customer_writes(appid=emulator.appid, openid=openid, msgtype="image")["msgid"]

    response = get_media(emulator, f"emu_media_{msgid}")

    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.content.startswith(b"\xff\xd8\xff")


def test_materials_are_counted_listed_and_paged(emulator):
    for i in range(3):
        emulator.media("image", f"img_{i}", name=f"pic{i}.jpg")
        emulator.state.advance(1)
    emulator.media("voice", "v1", name="hello.amr")
    emulator.media("news", "n1", title="春季新品")
    emulator.media("image", "tmp_only", permanent=False)

    assert emulator.get("/cgi-bin/material/get_materialcount") == {
        "voice_count": 1, "video_count": 0, "image_count": 3, "news_count": 1,
    }
    page = emulator.post("/cgi-bin/material/batchget_material", {"type": "image", "offset": 1, "count": 1})
    assert (page["total_count"], page["item_count"], page["item"][0]["media_id"]) == (3, 1, "img_1")
    image = requests.get(page["item"][0]["url"], timeout=30)
    assert image.headers["Content-Type"] == "image/jpeg"
    news = emulator.post("/cgi-bin/material/batchget_material", {"type": "news", "offset": 0, "count": 20})
    assert news["item"][0]["content"]["news_item"][0]["title"] == "春季新品"


def test_material_list_arguments_are_checked(emulator):
    assert emulator.post("/cgi-bin/material/batchget_material", {"type": "thumb", "offset": 0, "count": 5})["errcode"] == 40004
    assert emulator.post("/cgi-bin/material/batchget_material", {"type": "image", "offset": 0, "count": 21})["errcode"] == 47001
    assert emulator.post("/cgi-bin/freepublish/batchget", {"offset": -1, "count": 5})["errcode"] == 47001


def test_published_articles_are_listed_with_or_without_content(emulator):
    emulator.media("article", "a1", title="会员日")

    with_content = emulator.post("/cgi-bin/freepublish/batchget", {"offset": 0, "count": 20, "no_content": 0})
    without = emulator.post("/cgi-bin/freepublish/batchget", {"offset": 0, "count": 20, "no_content": 1})

    assert with_content["item"][0]["article_id"] == "a1"
    assert "content" in with_content["item"][0]["content"]["news_item"][0]
    assert "content" not in without["item"][0]["content"]["news_item"][0]


def test_the_demo_holds_materials_and_published_articles_to_pick():
    emu = Emulator(seed=1)
    emu.seed_demo()
    listing = emu.media_list(appid=DEMO_APPID)

    images = [m for m in listing["media"] if m["type"] == "image" and m["permanent"]]
    assert len(images) == len(DEMO_IMAGES)
    assert all(0 < m["size"] < 64 * 1024 for m in images)
    assert len(listing["published"]) == len(DEMO_PUBLISHED)
    assert {m["type"] for m in listing["media"]} >= {"image", "voice", "video"}
    assert listing["news"]
