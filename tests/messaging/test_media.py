"""Real media (issue 10 §4) on kfadmin's side, against the emulator: a file given in the
composer is kept (type sniffed, WeChat's limits checked), uploaded by the worker when
the message is delivered and uploaded again once its 3 days are up; the kept file is
served only to those who may see it; customers' media are fetched and kept; the
library is copied from WeChat and picked from."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.clients import wechat_client_for
from accounts.models import AuditEvent, SyncState
from kfadmin.emulator.media import Media
from kfadmin.wechat import WeChatRetryableError, WeChatSystemBusy, parse_message
from messaging.callback import callback_message_record
from messaging.delivery import outbound_deliver
from messaging.media import (
    MediaRefused,
    MediaUpload,
    library_search,
    library_sync,
    media_file_store,
    media_inbound_fetch,
)
from messaging.models import LibraryItem, MediaFile, MessageRecord, OutboundMessage
from messaging.services import outbound_queue, outbound_resend
from messaging.sync import records_sync_window
from tests.factories import agent_user, auditor, outsider, sent_to_login
from tests.sessions_app.test_views_support import (
    emulated_agent,
    enqueued,
    htmx,
    served_customer,
    wired_account,
)
from tests.wechat import media_samples as samples

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

UPLOAD = "/cgi-bin/media/upload"
SEND = "/cgi-bin/message/custom/send"


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def alice(account, emulator):
    return emulated_agent(account, emulator, "alice", nick="Alice")


@pytest.fixture
def session(account, alice, emulator):
    return served_customer(account, alice, emulator, text="能发张图片吗？")


def calls(emulator, path):
    return [c for c in emulator.calls if c.path == path]


def queue(callbacks_fixture, **kwargs) -> OutboundMessage:
    with callbacks_fixture(execute=False) as callbacks:
        outbound = outbound_queue(**kwargs)
    assert len(enqueued(callbacks)) == 1
    return outbound


def later(emulator, session) -> None:
    """Three days on at WeChat: the customer writes again, and the access token of
    three days ago is replaced first (so only the uploads under test are counted)."""
    emulator.state.advance(3 * 86400 + 60)
    emulator.customer(session.customer.openid, text="还在吗？")
    wechat_client_for(session.official_account).fetch_access_token(force_refresh=True)


def picture_message(session, boss, capture, content: bytes | None = None) -> OutboundMessage:
    return queue(
        capture, account=session.official_account, customer=session.customer, agent=session.agent,
        msgtype="image", payload={"media_id": ""}, actor=boss,
        media=MediaUpload(kind="image", content=content or samples.png(40, 30), name="parcel.png"),
    )


# ------------------------------------------------------------------ sending a file


def test_a_picture_is_kept_then_uploaded_by_the_worker_and_sent_with_its_media_id(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    picture = samples.png(40, 30)
    outbound = picture_message(session, boss, django_capture_on_commit_callbacks, picture)

    assert calls(emulator, UPLOAD) == []  # nothing went to WeChat in the request
    kept = outbound.media
    assert (kept.content_type, kept.size, kept.name, kept.media_id) == ("image/png", len(picture), "parcel.png", "")
    assert kept.file.read() == picture

    delivered = outbound_deliver(outbound_id=outbound.pk)

    assert delivered.status == "sent", delivered.error
    kept.refresh_from_db()
    [upload] = calls(emulator, UPLOAD)
    assert upload.query["type"] == "image"
    assert [c.json["image"] for c in calls(emulator, SEND)] == [{"media_id": kept.media_id}]
    assert delivered.payload == {"media_id": kept.media_id}
    assert kept.expires_at - timezone.now() == pytest.approx(timedelta(days=3), abs=timedelta(seconds=5))
    assert AuditEvent.objects.filter(action="media_store").count() == 1
    assert AuditEvent.objects.filter(action="media_upload").count() == 1


def test_a_file_is_uploaded_once_for_two_sends_within_its_three_days(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    first = picture_message(session, boss, django_capture_on_commit_callbacks)
    outbound_deliver(outbound_id=first.pk)
    second = queue(
        django_capture_on_commit_callbacks, account=session.official_account, customer=session.customer,
        agent=session.agent, msgtype="image", payload={"media_id": ""}, actor=boss, media=first.media,
    )

    assert outbound_deliver(outbound_id=second.pk).status == "sent"
    assert len(calls(emulator, UPLOAD)) == 1
    assert len({c.json["image"]["media_id"] for c in calls(emulator, SEND)}) == 1


def test_a_send_after_the_three_days_uploads_again_without_asking_exactly_once(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    first = picture_message(session, boss, django_capture_on_commit_callbacks)
    outbound_deliver(outbound_id=first.pk)
    old_id = MediaFile.objects.get().media_id
    # Three days later on both clocks: WeChat forgot the upload, kfadmin knows it has.
    later(emulator, session)
    MediaFile.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    second = queue(
        django_capture_on_commit_callbacks, account=session.official_account, customer=session.customer,
        agent=session.agent, msgtype="image", payload={"media_id": ""}, actor=boss, media=first.media,
    )

    assert outbound_deliver(outbound_id=second.pk).status == "sent"
    kept = MediaFile.objects.get()
    assert kept.media_id != old_id and kept.uploads == 2
    assert len(calls(emulator, UPLOAD)) == 2
    assert [c.json["image"]["media_id"] for c in calls(emulator, SEND)] == [old_id, kept.media_id]


def picture_again_after_wechat_dropped_it(session, boss, emulator, capture):
    """A picture sent, then queued again once WeChat's 3 days are up on WeChat's clock
    only: kfadmin still believes the upload's id."""
    first = picture_message(session, boss, capture)
    outbound_deliver(outbound_id=first.pk)
    later(emulator, session)
    return queue(
        capture, account=session.official_account, customer=session.customer,
        agent=session.agent, msgtype="image", payload={"media_id": ""}, actor=boss, media=first.media,
    )


def test_wechats_40007_for_an_upload_kfadmin_thought_alive_uploads_again_and_sends_once_more(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    second = picture_again_after_wechat_dropped_it(session, boss, emulator, django_capture_on_commit_callbacks)

    delivered = outbound_deliver(outbound_id=second.pk)

    assert delivered.status == "sent", delivered.error
    assert len(calls(emulator, UPLOAD)) == 2
    sends = calls(emulator, SEND)
    assert len(sends) == 3  # the first message, the refused try (40007), the one that went
    assert sends[1].json["image"] != sends[2].json["image"]
    assert MediaFile.objects.get().uploads == 2


def test_a_re_upload_after_40007_that_times_out_puts_the_message_back_in_the_queue_for_the_retry(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    second = picture_again_after_wechat_dropped_it(session, boss, emulator, django_capture_on_commit_callbacks)
    emulator.control("add_fault", kind="drop", path_prefix=UPLOAD, next=1)

    # The upload's outcome is unknown, the message's is not (WeChat refused it): the
    # task is told to retry, and nothing is marked unknown.
    with pytest.raises(WeChatRetryableError):
        outbound_deliver(outbound_id=second.pk)
    second.refresh_from_db()
    assert second.status == "queued"
    assert len(calls(emulator, SEND)) == 2  # the first message, the refused try (40007)

    # The retry meets 40007 again (kfadmin still holds the dead id), uploads and sends.
    assert outbound_deliver(outbound_id=second.pk).status == "sent"
    assert len(calls(emulator, SEND)) == 4 and len(calls(emulator, UPLOAD)) == 3


def test_an_upload_wechat_is_too_busy_for_puts_the_message_back_in_the_queue(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=UPLOAD, next=1)
    outbound = picture_message(session, boss, django_capture_on_commit_callbacks)

    with pytest.raises(WeChatSystemBusy):
        outbound_deliver(outbound_id=outbound.pk)

    outbound.refresh_from_db()
    assert outbound.status == "queued" and "busy" in outbound.error
    assert calls(emulator, SEND) == []


def test_an_upload_wechat_refuses_fails_the_message_with_the_reason(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="errcode", errcode=40005, path_prefix=UPLOAD, next=1)
    outbound = picture_message(session, boss, django_capture_on_commit_callbacks)

    delivered = outbound_deliver(outbound_id=outbound.pk)

    assert (delivered.status, delivered.errcode) == ("failed", 40005)
    assert "could not be uploaded" in delivered.error and "file type" in delivered.error
    assert calls(emulator, SEND) == []


def test_sending_again_a_failed_media_message_sends_the_same_file(
    session, boss, emulator, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="errcode", errcode=40005, path_prefix=UPLOAD, next=1)
    failed = outbound_deliver(outbound_id=picture_message(session, boss, django_capture_on_commit_callbacks).pk)

    with django_capture_on_commit_callbacks(execute=False):
        again = outbound_resend(outbound=failed, actor=boss)

    assert again.media_id == failed.media_id
    assert outbound_deliver(outbound_id=again.pk).status == "sent"


def test_a_video_with_its_thumbnail_uploads_both(session, boss, emulator, django_capture_on_commit_callbacks):
    outbound = queue(
        django_capture_on_commit_callbacks, account=session.official_account, customer=session.customer,
        agent=session.agent, msgtype="video", payload={"media_id": "", "thumb_media_id": "", "title": "开箱", "description": ""},
        actor=boss, media=MediaUpload(kind="video", content=samples.mp4()), thumb=MediaUpload(kind="thumb", content=samples.jpeg()),
    )

    assert outbound_deliver(outbound_id=outbound.pk).status == "sent"
    assert sorted(c.query["type"] for c in calls(emulator, UPLOAD)) == ["thumb", "video"]
    [send] = calls(emulator, SEND)
    thumb = MediaFile.objects.get(kind="thumb")
    assert send.json["video"]["thumb_media_id"] == thumb.media_id != ""


def test_a_file_wechat_would_refuse_is_refused_before_anything_is_kept(account, boss):
    with pytest.raises(MediaRefused) as refused:
        media_file_store(account=account, kind="thumb", content=samples.png(), actor=boss)

    assert "must be JPG" in refused.value.explanation
    assert MediaFile.objects.count() == 0


# ------------------------------------------------------------------ the composer


def send_url(session):
    return reverse("messaging:send", args=[session.customer.openid])


def test_the_composer_offers_a_file_input_not_a_media_id_field(boss_client, session):
    body = boss_client.get(reverse("messaging:conversation", args=[session.customer.openid]) + "?type=image").content.decode()

    assert 'type="file"' in body and 'data-media-input="image"' in body and "data-dropzone" in body
    assert 'enctype="multipart/form-data"' in body
    assert "Media id" not in body


def test_the_composer_refuses_a_file_of_the_wrong_type_naming_the_limit(boss_client, session, alice):
    document = SimpleUploadedFile("notes.png", b"%PDF-1.7 not a picture", content_type="image/png")

    response = boss_client.post(send_url(session), {"msgtype": "image", "as_agent": alice.pk, "file": document}, **htmx("composer"))

    assert response.status_code == 200
    assert "must be PNG, JPEG/JPG or GIF" in response.content.decode()
    assert OutboundMessage.objects.count() == MediaFile.objects.count() == 0


def test_the_composer_refuses_a_picture_over_2_mb_before_reading_it(boss_client, session, alice):
    big = SimpleUploadedFile("big.png", samples.png() + bytes(2 * 1024 * 1024), content_type="image/png")

    response = boss_client.post(send_url(session), {"msgtype": "image", "as_agent": alice.pk, "file": big}, **htmx("composer"))

    assert "WeChat accepts at most 2 MB here" in response.content.decode()
    assert OutboundMessage.objects.count() == 0


def test_the_composer_needs_a_file_or_a_library_item(boss_client, session, alice):
    response = boss_client.post(send_url(session), {"msgtype": "image", "as_agent": alice.pk}, **htmx("composer"))

    assert "Choose a file" in response.content.decode()
    assert OutboundMessage.objects.count() == 0


def test_a_picture_from_the_composer_shows_as_a_thumbnail_in_the_timeline(
    boss_client, session, alice, django_capture_on_commit_callbacks
):
    picture = SimpleUploadedFile("parcel.png", samples.png(), content_type="image/png")
    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(send_url(session), {"msgtype": "image", "as_agent": alice.pk, "file": picture}, **htmx("composer"))
    kept = MediaFile.objects.get()

    timeline = boss_client.get(reverse("messaging:conversation", args=[session.customer.openid]), **htmx("timeline")).content.decode()

    assert f'<img class="media-thumb" src="/media/{kept.pk}/"' in timeline
    assert "Media id" not in timeline


# ------------------------------------------------------------------ serving the kept file


def media_url(media: MediaFile) -> str:
    return reverse("messaging:media", args=[media.pk])


def test_a_kept_picture_is_served_with_its_sniffed_type_and_nosniff(boss_client, account, boss):
    kept = media_file_store(account=account, kind="image", content=samples.gif(), name="x.png", actor=boss)

    response = boss_client.get(media_url(kept))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/gif"  # the bytes, not the name
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == "inline"
    assert b"".join(response.streaming_content) == samples.gif()


def test_a_recording_is_served_as_a_download(boss_client, account, boss):
    kept = media_file_store(account=account, kind="voice", content=samples.amr(), actor=boss)

    response = boss_client.get(media_url(kept))

    assert response["Content-Type"] == "audio/amr"
    assert response["Content-Disposition"].startswith("attachment;")


def test_the_kept_file_needs_a_login(client, account, boss):
    kept = media_file_store(account=account, kind="image", content=samples.png(), actor=boss)

    assert sent_to_login(client.get(media_url(kept)))


def test_an_agent_sees_the_media_of_their_own_conversations_only(client, account, session, alice, boss, emulator):
    theirs = media_file_store(account=account, kind="image", content=samples.png(), actor=boss, customer=session.customer)
    bob = emulated_agent(account, emulator, "bob")
    other = served_customer(account, bob, emulator, text="hi")
    not_theirs = media_file_store(account=account, kind="image", content=samples.png(), actor=boss, customer=other.customer)
    client.force_login(agent_user(account, agent=alice))

    assert client.get(media_url(theirs)).status_code == 200
    assert client.get(media_url(not_theirs)).status_code == 404


def test_an_auditor_sees_media_and_another_account_does_not(client, account, boss):
    kept = media_file_store(account=account, kind="image", content=samples.png(), actor=boss)
    client.force_login(auditor(account))
    assert client.get(media_url(kept)).status_code == 200

    stranger = Client()
    stranger.force_login(outsider())
    assert stranger.get(media_url(kept)).status_code == 404


def test_the_kept_file_answers_get_only(boss_client, account, boss):
    kept = media_file_store(account=account, kind="image", content=samples.png(), actor=boss)

    assert boss_client.post(media_url(kept)).status_code == 405


# ------------------------------------------------------------------ customers' media


def customer_push(emulator, msgtype: str = "image"):
    """A new customer's picture or recording, as WeChat pushes it (the customer is not
    in a session, so the push goes to the callback)."""
    wrote = emulator.state.customer_writes(appid=emulator.appid, msgtype=msgtype)
    openid, msgid = wrote["openid"], wrote["msgid"]
    fields = {"image": "<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl>", "voice": "<Format><![CDATA[amr]]></Format>"}[msgtype]
    xml = (
        f"<xml><ToUserName><![CDATA[{emulator.original_id}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(timezone.now().timestamp())}</CreateTime><MsgType><![CDATA[{msgtype}]]></MsgType>{fields}"
        f"<MediaId><![CDATA[emu_media_{msgid}]]></MediaId><MsgId>{msgid}</MsgId></xml>"
    )
    return parse_message(xml), f"emu_media_{msgid}", openid


@pytest.mark.parametrize(("msgtype", "content_type"), [("image", "image/jpeg"), ("voice", "audio/amr")])
def test_a_customers_media_is_fetched_kept_and_shown(
    boss_client, account, emulator, django_capture_on_commit_callbacks, msgtype, content_type
):
    message, media_id, openid = customer_push(emulator, msgtype)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert callback_message_record(account=account, message=message)
    # The fetch task, once the push is stored (beside the reports' rollup catch-up).
    fetches = [c for c in callbacks if getattr(getattr(c, "func", None), "__name__", "") == "_fetch_enqueue"]
    assert len(fetches) == 1
    waiting = MediaFile.objects.get()
    assert (waiting.state, waiting.media_id, waiting.direction) == ("fetching", media_id, "received")

    kept = media_inbound_fetch(media_file_id=waiting.pk)

    assert (kept.state, kept.content_type) == ("ready", content_type)
    assert kept.file.read() == emulator.state.find_official_account(emulator.appid).media.media[media_id].content
    timeline = boss_client.get(reverse("messaging:conversation", args=[openid]), **htmx("timeline")).content.decode()
    assert f"/media/{kept.pk}/" in timeline


def test_a_customers_media_older_than_three_days_is_marked_lost_with_the_reason(account, emulator):
    message, _, _ = customer_push(emulator)
    callback_message_record(account=account, message=message)
    waiting = MediaFile.objects.get()
    emulator.state.advance(3 * 86400 + 1)

    lost = media_inbound_fetch(media_file_id=waiting.pk)

    assert lost.state == "failed" and "kept 3 days" in lost.error


def test_a_customers_media_that_is_not_what_it_claims_is_not_kept(account, emulator):
    message, media_id, _ = customer_push(emulator)
    callback_message_record(account=account, message=message)
    oa = emulator.state.find_official_account(emulator.appid)
    oa.media.media[media_id] = Media(media_id, "image", b"<html>not a picture</html>", emulator.state.now())

    refused = media_inbound_fetch(media_file_id=MediaFile.objects.get().pk)

    assert refused.state == "failed" and "PNG, JPEG/JPG or GIF" in refused.error
    assert not refused.file


# ------------------------------------------------------------------ the library


@pytest.fixture
def library(account, emulator):
    emulator.media("image", "img_logo", name="店铺 logo.png")
    emulator.media("voice", "voice_hi", name="欢迎语.amr")
    emulator.media("news", "news_spring", title="春季新品")
    emulator.media("article", "art_refund", title="如何申请退换货")
    emulator.media("article", "art_member", title="会员日活动规则")
    return library_sync(account_id=account.pk)


def test_the_library_sync_copies_materials_and_published_articles(account, library):
    assert library.counts == {"image": 1, "voice": 1, "video": 0, "news": 1, "article": 2}
    titles = set(LibraryItem.objects.values_list("kind", "title"))
    assert ("article", "如何申请退换货") in titles and ("image", "店铺 logo.png") in titles
    assert SyncState.objects.get(official_account=account, job="library").last_success_at is not None


def test_the_library_sync_drops_what_wechat_no_longer_lists(account, emulator, library):
    del emulator.state.find_official_account(emulator.appid).media.published["art_member"]

    again = library_sync(account_id=account.pk)

    assert again.removed == 1
    assert not LibraryItem.objects.filter(ident="art_member").exists()


def test_the_library_is_searched_by_title(account, library):
    page = library_search(account=account, query="退换")

    assert [item.ident for item in page.object_list] == ["art_refund"]


def test_the_library_page_lists_items_and_offers_to_send_them(boss_client, session, library):
    body = boss_client.get(reverse("messaging:library") + f"?for={session.customer.openid}&kind=article").content.decode()

    assert "如何申请退换货" in body and "会员日活动规则" in body and "春季新品" not in body
    assert "?type=mpnewsarticle&amp;library=art_refund#composer" in body


def test_a_published_article_picked_from_the_library_is_sent_by_its_id(
    boss_client, session, alice, emulator, library, django_capture_on_commit_callbacks
):
    conversation = reverse("messaging:conversation", args=[session.customer.openid])
    composer = boss_client.get(f"{conversation}?type=mpnewsarticle&library=art_refund").content.decode()
    assert '<option value="art_refund" selected>如何申请退换货</option>' in composer

    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(send_url(session), {"msgtype": "mpnewsarticle", "as_agent": alice.pk, "article_id": "art_refund"})
    outbound = OutboundMessage.objects.get()

    assert outbound_deliver(outbound_id=outbound.pk).status == "sent"
    assert [c.json["mpnewsarticle"] for c in calls(emulator, SEND)] == [{"article_id": "art_refund"}]
    timeline = boss_client.get(conversation, **htmx("timeline")).content.decode()
    assert "如何申请退换货" in timeline


def test_an_image_from_the_library_is_sent_without_an_upload(
    session, boss, emulator, library, django_capture_on_commit_callbacks
):
    outbound = queue(
        django_capture_on_commit_callbacks, account=session.official_account, customer=session.customer,
        agent=session.agent, msgtype="image", payload={"media_id": "img_logo"}, actor=boss,
    )

    assert outbound_deliver(outbound_id=outbound.pk).status == "sent"
    assert calls(emulator, UPLOAD) == []


def test_the_library_page_has_an_empty_state_and_needs_a_login(boss_client, account):
    assert "The library is empty" in boss_client.get(reverse("messaging:library")).content.decode()
    assert sent_to_login(Client().get(reverse("messaging:library")))


def test_a_customers_picture_still_shows_after_the_history_sync_replaces_its_callback_record(
    boss_client, account, emulator
):
    message, _, openid = customer_push(emulator)
    callback_message_record(account=account, message=message)
    kept = media_inbound_fetch(media_file_id=MediaFile.objects.get().pk)
    # The push was built a second before WeChat's record: the sync replaces the callback's copy.
    callback_record = MessageRecord.objects.get(openid=openid, text="[image]")
    MessageRecord.objects.filter(pk=callback_record.pk).update(time=callback_record.time - timedelta(seconds=1))

    records_sync_window(
        account_id=account.pk, start=callback_record.time - timedelta(minutes=5),
        end=callback_record.time + timedelta(minutes=5),
    )

    synced = MessageRecord.objects.get(openid=openid, text="[image]")
    assert synced.pk != callback_record.pk and synced.source == "sync"
    assert MediaFile.objects.get(pk=kept.pk).record_id == synced.pk
    timeline = boss_client.get(reverse("messaging:conversation", args=[openid]), **htmx("timeline")).content.decode()
    assert f"/media/{kept.pk}/" in timeline


def timeline_poll(client, openid) -> str:
    """The URL the conversation's timeline polls, with the stamp of the copy on screen."""
    import html
    import re

    body = client.get(reverse("messaging:conversation", args=[openid]), **htmx("timeline")).content.decode()
    return html.unescape(re.search(r'<section id="timeline"[^>]*hx-get="([^"]+)"', body).group(1))


@pytest.mark.parametrize("fault", [None, 40007])
def test_the_timeline_poll_renders_a_customers_media_once_its_fetch_ends(boss_client, account, emulator, fault):
    message, _, openid = customer_push(emulator)
    callback_message_record(account=account, message=message)
    poll = timeline_poll(boss_client, openid)
    assert boss_client.get(poll, **htmx("timeline")).status_code == 204
    if fault:
        emulator.control("add_fault", kind="errcode", errcode=fault, path_prefix="/cgi-bin/media/get", next=1)

    fetched = media_inbound_fetch(media_file_id=MediaFile.objects.get().pk)

    response = boss_client.get(poll, **htmx("timeline"))
    assert response.status_code == 200
    if fault:
        assert fetched.state == "failed"
    else:
        assert f"/media/{fetched.pk}/" in response.content.decode()
    assert boss_client.get(timeline_poll(boss_client, openid), **htmx("timeline")).status_code == 204


def media_conversation(session, boss, count: int) -> None:
    """`count` customer pictures kept, `count` pictures sent and `count` library articles sent."""
    account, customer = session.official_account, session.customer
    for i in range(count):
        record = MessageRecord.objects.create(
            official_account=account, time=timezone.now(), openid=customer.openid, opercode=2003,
            worker=session.agent.kf_account, text="[image]", source="callback",
        )
        received = media_file_store(account=account, kind="image", content=samples.png(), actor=None, customer=customer)
        MediaFile.objects.filter(pk=received.pk).update(direction="received", record=record)
        sent = media_file_store(account=account, kind="image", content=samples.png(), actor=boss, customer=customer)
        for msgtype, payload, media in (("image", {"media_id": ""}, sent), ("mpnewsarticle", {"article_id": f"art_{i}"}, None)):
            OutboundMessage.objects.create(
                official_account=account, customer=customer, agent=session.agent, msgtype=msgtype,
                payload=payload, status="sent", sent_at=timezone.now(), media=media,
            )
        LibraryItem.objects.create(official_account=account, kind="article", ident=f"art_{i}", title=f"文章 {i}")


def test_the_conversation_page_reads_media_in_a_bounded_number_of_queries(boss_client, session, boss):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse("messaging:conversation", args=[session.customer.openid])

    def queries_for(count: int) -> int:
        media_conversation(session, boss, count)
        with CaptureQueriesContext(connection) as captured:
            body = boss_client.get(url, **htmx("timeline")).content.decode()
        assert body.count("/media/") >= 2 * count and body.count("文章") == count
        return len(captured)

    boss_client.get(url, **htmx("timeline"))  # what the first view reads once (session, watch)
    few = queries_for(2)
    OutboundMessage.objects.all().delete()
    MessageRecord.objects.filter(text="[image]").delete()
    LibraryItem.objects.all().delete()
    many = queries_for(8)

    assert many == few


def test_a_library_item_older_than_those_listed_opens_selected_in_the_composer_and_is_sent(
    boss_client, session, alice, emulator, library, django_capture_on_commit_callbacks
):
    from tests.messaging.test_quick_replies_media import many_articles

    many_articles(session.official_account, 250)  # art_member sorts after all of them
    conversation = reverse("messaging:conversation", args=[session.customer.openid])
    composer = boss_client.get(f"{conversation}?type=mpnewsarticle&library=art_member").content.decode()
    assert '<option value="art_member" selected>会员日活动规则</option>' in composer

    with django_capture_on_commit_callbacks(execute=False):
        response = boss_client.post(
            send_url(session), {"msgtype": "mpnewsarticle", "as_agent": alice.pk, "article_id": "art_member"}
        )
    assert response.status_code < 400
    assert OutboundMessage.objects.get().payload == {"article_id": "art_member"}


# ------------------------------------------------------------------ fetching: claims, sweep, giving up

MEDIA_GET = "/cgi-bin/media/get"


def waiting_media(account, emulator) -> MediaFile:
    message, _, _ = customer_push(emulator)
    callback_message_record(account=account, message=message)
    return MediaFile.objects.get()


def test_a_fetch_another_run_holds_is_not_downloaded_twice(account, emulator):
    waiting = waiting_media(account, emulator)
    MediaFile.objects.filter(pk=waiting.pk).update(fetch_started_at=timezone.now())

    assert media_inbound_fetch(media_file_id=waiting.pk) is None
    assert calls(emulator, MEDIA_GET) == []
    # A claim left by a worker that died is taken again.
    MediaFile.objects.filter(pk=waiting.pk).update(fetch_started_at=timezone.now() - timedelta(minutes=6))
    assert media_inbound_fetch(media_file_id=waiting.pk).state == "ready"
    assert len(calls(emulator, MEDIA_GET)) == 1


def test_the_sweep_leaves_alone_a_fetch_waiting_between_its_retries(account, emulator):
    from messaging.media import media_fetch_overdue

    waiting = waiting_media(account, emulator)
    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=MEDIA_GET, next=1)
    with pytest.raises(WeChatSystemBusy):
        media_inbound_fetch(media_file_id=waiting.pk)
    waiting.refresh_from_db()
    assert (waiting.state, waiting.fetch_started_at) == ("fetching", None)  # released for the retry
    in_a_while = timezone.now() + timedelta(minutes=6)

    assert media_fetch_overdue(now=in_a_while) == []
    assert media_fetch_overdue(now=in_a_while + timedelta(minutes=6)) == [waiting.pk]


def test_a_fetch_whose_retries_are_used_up_is_marked_failed_with_a_sentence(account, emulator):
    from messaging.tasks import fetch_media_task

    waiting = waiting_media(account, emulator)
    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=MEDIA_GET, next=1)

    assert fetch_media_task.apply(args=(waiting.pk,), retries=fetch_media_task.max_retries).get() == "failed"
    waiting.refresh_from_db()
    assert waiting.state == "failed" and "after several attempts" in waiting.error


def test_a_fetch_wechat_refuses_is_failed_and_one_over_quota_waits_for_the_sweep(account, emulator):
    waiting = waiting_media(account, emulator)
    emulator.control("add_fault", kind="errcode", errcode=45009, path_prefix=MEDIA_GET, next=1)
    assert media_inbound_fetch(media_file_id=waiting.pk).state == "fetching"
    waiting.refresh_from_db()
    assert waiting.fetch_started_at is None and "quota" in waiting.error

    emulator.control("add_fault", kind="errcode", errcode=48001, path_prefix=MEDIA_GET, next=1)
    refused = media_inbound_fetch(media_file_id=waiting.pk)
    assert refused.state == "failed" and "not authorised" in refused.error
