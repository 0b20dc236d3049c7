"""The kf API client: one method per operation of the seed package (gochat
``offia/kf``), with the requests of wechat-kf-api.md §3–§6.

Arguments are validated before any HTTP call. Every request carries the access
token as a query parameter; on 40001/40014/42001 the client refreshes the token
once and resends the identical request once (§2.3). Nothing else is retried here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any, TypeVar

import requests

from .errors import (
    TOKEN_REFRESH_ERRCODES,
    WeChatError,
    WeChatInvalidArgument,
    WeChatRequestNotSent,
    WeChatResponseError,
    WeChatTokenError,
)
from .token import DEFAULT_MARGIN_SECONDS, CachedToken, TokenProvider, TokenStore
from .transport import DEFAULT_BASE_URL, ApiRequest, RawAnswer, Transport, UploadFile
from .types import (
    AccessToken,
    AccountList,
    MaterialCount,
    MaterialList,
    MediaContent,
    MsgArticle,
    MsgMenu,
    MsgMinipPage,
    MsgMusic,
    MsgRecord,
    MsgRecordList,
    MsgVideo,
    OnlineList,
    PublishedList,
    Session,
    SessionList,
    UploadedMedia,
    WaitCase,
    from_dict,
)
from .validation import (
    MEDIA_TYPES,
    as_wire_dict,
    normalise_payload,
    validate,
    validate_avatar,
    validate_material_page,
    validate_media,
    validate_record_window,
)

__all__ = ["AvatarFile", "MediaFile", "WeChatClient"]

logger = logging.getLogger("kfadmin.wechat")

T = TypeVar("T")
R = TypeVar("R")

# A path, the bytes themselves, or an open binary file (Django's UploadedFile too).
AvatarFile = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

# Media to upload: the same forms as an avatar.
MediaFile = AvatarFile

DEFAULT_AVATAR_FILENAME = "avatar.jpg"
MEDIA_FILENAMES = {"image": "image", "voice": "voice", "video": "video.mp4", "thumb": "thumb.jpg"}

# Paths (§3). The /cgi-bin prefix is only right for these four; the others must not
# have it (40066 otherwise).
PATH_ADD_ACCOUNT = "/customservice/kfaccount/add"
PATH_UPDATE_ACCOUNT = "/customservice/kfaccount/update"
PATH_DELETE_ACCOUNT = "/customservice/kfaccount/del"
PATH_UPLOAD_AVATAR = "/customservice/kfaccount/uploadheadimg"
PATH_INVITE_WORKER = "/customservice/kfaccount/inviteworker"
PATH_ACCOUNT_LIST = "/cgi-bin/customservice/getkflist"
PATH_ONLINE_LIST = "/cgi-bin/customservice/getonlinekflist"
PATH_CREATE_SESSION = "/customservice/kfsession/create"
PATH_CLOSE_SESSION = "/customservice/kfsession/close"
PATH_GET_SESSION = "/customservice/kfsession/getsession"
PATH_SESSION_LIST = "/customservice/kfsession/getsessionlist"
PATH_WAIT_CASE = "/customservice/kfsession/getwaitcase"
PATH_MSG_RECORDS = "/customservice/msgrecord/getmsglist"
PATH_SEND = "/cgi-bin/message/custom/send"
PATH_TYPING = "/cgi-bin/message/custom/typing"
# Media and materials (issue 10 §4): temporary media, the permanent library, and the
# published articles an mpnewsarticle message names.
PATH_MEDIA_UPLOAD = "/cgi-bin/media/upload"
PATH_MEDIA_GET = "/cgi-bin/media/get"
PATH_MATERIAL_COUNT = "/cgi-bin/material/get_materialcount"
PATH_MATERIAL_LIST = "/cgi-bin/material/batchget_material"
PATH_FREEPUBLISH_LIST = "/cgi-bin/freepublish/batchget"


class WeChatClient:
    """Client for one official account's kf API.

    ``token_endpoint`` is ``"stable_token"`` (POST ``/cgi-bin/stable_token``, safe
    for many processes) or ``"token"`` (classic GET ``/cgi-bin/token``, whose every
    fetch invalidates the previous token). ``token_store`` shares the token between
    processes (None keeps it in memory). ``timeout`` applies to every request.
    """

    def __init__(
        self,
        appid: str,
        secret: str,
        base_url: str = DEFAULT_BASE_URL,
        token_endpoint: str = "stable_token",
        token_store: TokenStore | None = None,
        timeout: float = 10.0,
        *,
        session: requests.Session | None = None,
        token_margin: float = DEFAULT_MARGIN_SECONDS,
    ):
        if not appid or not secret:
            raise WeChatInvalidArgument(None, "appid and secret must both be given.")
        self.appid = appid
        self._transport = Transport(base_url, timeout, session)
        self._tokens = TokenProvider(
            appid,
            secret,
            self._transport,
            endpoint=token_endpoint,
            store=token_store,
            margin=token_margin,
        )

    def __repr__(self) -> str:
        return (
            f"WeChatClient(appid={self.appid!r}, base_url={self.base_url!r}, "
            f"token_endpoint={self.token_endpoint!r})"
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    def close(self) -> None:
        """Close the pooled connections of the session this client made itself."""
        self._transport.close()

    @property
    def token_endpoint(self) -> str:
        return self._tokens.endpoint

    @property
    def token_store(self) -> TokenStore:
        return self._tokens.store

    # ------------------------------------------------------------- plumbing

    def fetch_access_token(self, force_refresh: bool = False) -> AccessToken:
        """The access token (GET ``/cgi-bin/token`` or POST ``/cgi-bin/stable_token``),
        cached in the token store; ``force_refresh`` bypasses the cache.

        ``expires_in`` is WeChat's: what it answered when this call fetched, else the
        seconds WeChat still accepts the cached token. The client itself stops using
        a token ``token_margin`` seconds earlier (see ``TokenProvider``).
        """
        return self._tokens.fetch_access_token(force_refresh=force_refresh)

    def _call(self, request: ApiRequest) -> dict[str, Any]:
        return self._exchange(request, self._transport.send)

    def _exchange(self, request: ApiRequest, send: Callable[..., R]) -> R:
        """``send`` the request with the current token; on a stale token, refresh it
        once and resend the identical request once."""
        token = self._token(self._tokens.current)
        try:
            return send(request, access_token=token.access_token)
        except WeChatTokenError as exc:
            if exc.errcode not in TOKEN_REFRESH_ERRCODES:
                raise
            logger.info(
                "WeChat rejected the access token of appid %s on %s %s (errcode %s); "
                "refreshing once and resending.",
                self.appid,
                request.method,
                request.path,
                exc.errcode,
            )
        # Outside the except block: a second failure surfaces on its own, not chained.
        fresh = self._token(lambda: self._tokens.refresh(stale_token=token.access_token))
        return send(request, access_token=fresh.access_token)

    @staticmethod
    def _token(fetch: Callable[[], CachedToken]) -> CachedToken:
        """The token for a call. A token fetch that fails in doubt (timeout, dropped
        connection) still proves the call itself never left, which is what a
        caller of a non-idempotent operation (a send) needs to know."""
        try:
            return fetch()
        except WeChatError as exc:
            if not exc.outcome_unknown:
                raise
            message = f"no access token, so the request was not sent: {exc.errmsg}"
        raise WeChatRequestNotSent(message)

    def _get(self, path: str, result: type[T], **params: str) -> T:
        return from_dict(result, self._call(ApiRequest("GET", path, tuple(params.items()))))

    def _post(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        return self._call(ApiRequest.json(path, payload))

    # ------------------------------------------------------------ accounts

    def add_account(self, kf_account: str, nickname: str) -> None:
        """Add a kf account: POST ``/customservice/kfaccount/add``.

        ``kf_account`` is ``prefix@wechat_id`` (prefix ≤ 10 letters, digits or
        underscores); ``nickname`` ≤ 16 characters. The account is unusable until an
        agent binds it via :meth:`invite_worker`.
        """
        validate(new_kf_account=kf_account, nickname=nickname)
        self._post(PATH_ADD_ACCOUNT, {"kf_account": kf_account, "nickname": nickname})

    def update_account(self, kf_account: str, nickname: str) -> None:
        """Change a kf account's nickname: POST ``/customservice/kfaccount/update``."""
        validate(kf_account=kf_account, nickname=nickname)
        self._post(PATH_UPDATE_ACCOUNT, {"kf_account": kf_account, "nickname": nickname})

    def delete_account(self, kf_account: str) -> None:
        """Delete a kf account: GET ``/customservice/kfaccount/del?kf_account=...``
        (the seed's form; §9 D1)."""
        validate(kf_account=kf_account)
        self._call(ApiRequest("GET", PATH_DELETE_ACCOUNT, (("kf_account", kf_account),)))

    def upload_avatar(self, kf_account: str, file: AvatarFile) -> None:
        """Set a kf account's avatar: POST ``/customservice/kfaccount/uploadheadimg``
        with ``kf_account`` in the query and a multipart part named ``media``.

        ``file`` is a path, bytes or a binary file object; it is read once up front so
        a resend after a token refresh carries the full content. JPG, ≤ 5 MB.
        """
        validate(kf_account=kf_account)
        filename, content = _read_avatar(file)
        validate_avatar(content)
        self._call(
            ApiRequest(
                "POST",
                PATH_UPLOAD_AVATAR,
                (("kf_account", kf_account),),
                files=(UploadFile("media", filename, content),),
            )
        )

    def get_account_list(self) -> AccountList:
        """All kf accounts: GET ``/cgi-bin/customservice/getkflist``."""
        return self._get(PATH_ACCOUNT_LIST, AccountList)

    def get_online_list(self) -> OnlineList:
        """Online kf accounts and their load: GET
        ``/cgi-bin/customservice/getonlinekflist``."""
        return self._get(PATH_ONLINE_LIST, OnlineList)

    def invite_worker(self, kf_account: str, invite_wx: str) -> None:
        """Invite a WeChat user to bind a kf account: POST
        ``/customservice/kfaccount/inviteworker``."""
        validate(kf_account=kf_account, invite_wx=invite_wx)
        self._post(PATH_INVITE_WORKER, {"kf_account": kf_account, "invite_wx": invite_wx})

    # ------------------------------------------------------------ sessions

    def create_session(self, kf_account: str, openid: str) -> None:
        """Hand a customer to an (online, bound) agent: POST
        ``/customservice/kfsession/create``."""
        validate(kf_account=kf_account, openid=openid)
        self._post(PATH_CREATE_SESSION, {"kf_account": kf_account, "openid": openid})

    def close_session(self, kf_account: str, openid: str) -> None:
        """Close a customer's session: POST ``/customservice/kfsession/close``."""
        validate(kf_account=kf_account, openid=openid)
        self._post(PATH_CLOSE_SESSION, {"kf_account": kf_account, "openid": openid})

    def get_session(self, openid: str) -> Session:
        """A customer's session: GET ``/customservice/kfsession/getsession?openid=...``.

        ``kf_account`` is empty when nobody is serving the customer.
        """
        validate(openid=openid)
        session = self._get(PATH_GET_SESSION, Session, openid=openid)
        if not session.openid:
            # WeChat does not echo the openid; fill it so the result stands alone.
            session = Session(
                kf_account=session.kf_account,
                openid=openid,
                createtime=session.createtime,
                latest_time=session.latest_time,
            )
        return session

    def get_session_list(self, kf_account: str) -> SessionList:
        """An agent's open sessions: GET
        ``/customservice/kfsession/getsessionlist?kf_account=...``."""
        validate(kf_account=kf_account)
        return self._get(PATH_SESSION_LIST, SessionList, kf_account=kf_account)

    def get_wait_case(self) -> WaitCase:
        """Customers waiting for an agent (≤ 100 listed, ``count`` is the total): GET
        ``/customservice/kfsession/getwaitcase``."""
        return self._get(PATH_WAIT_CASE, WaitCase)

    # ------------------------------------------------------------- records

    def get_msg_record_list(
        self, starttime: int, endtime: int, msgid: int = 1, number: int = 10000
    ) -> MsgRecordList:
        """One page of chat history: POST ``/customservice/msgrecord/getmsglist``.

        The window (unix seconds) may span at most 24 h; ``msgid`` starts at 1 and the
        answer's ``msgid`` continues the paging; ``number`` is 1..10000.
        """
        validate_record_window(starttime, endtime)
        validate(msgid=msgid, number=number)
        data = self._post(
            PATH_MSG_RECORDS,
            {"starttime": starttime, "endtime": endtime, "msgid": msgid, "number": number},
        )
        return from_dict(MsgRecordList, data)

    def iter_msg_record_pages(
        self, starttime: int, endtime: int, number: int = 10000, msgid: int = 1
    ) -> Iterator[MsgRecordList]:
        """Every page of the window, in order, paging by the returned ``msgid``.

        Stops after a page shorter than ``number`` (an empty page included). Each page
        carries the ``msgid`` to resume from, so a sync can store page by page and
        restart with ``msgid=`` after a crash. Arguments are checked right away, not
        at the first ``next()``.
        """
        validate_record_window(starttime, endtime)
        validate(msgid=msgid, number=number)
        return self._record_pages(starttime, endtime, number, msgid)

    def _record_pages(
        self, starttime: int, endtime: int, number: int, msgid: int
    ) -> Iterator[MsgRecordList]:
        while True:
            page = self.get_msg_record_list(starttime, endtime, msgid=msgid, number=number)
            yield page
            if len(page.recordlist) < number:
                return
            if page.msgid <= msgid:
                # A full page that does not move the cursor would loop forever.
                raise WeChatResponseError(
                    None,
                    f"getmsglist returned a full page with msgid {page.msgid}, which does not "
                    f"advance past {msgid}; stopping instead of looping.",
                )
            msgid = page.msgid

    def iter_msg_records(
        self, starttime: int, endtime: int, number: int = 10000
    ) -> Iterator[MsgRecord]:
        """Every chat-history record of the window (see :meth:`iter_msg_record_pages`)."""
        pages = self.iter_msg_record_pages(starttime, endtime, number=number)
        return (record for page in pages for record in page.recordlist)

    # ------------------------------------------------------------ messages

    def send_message(
        self,
        openid: str,
        msgtype: str,
        payload: Mapping[str, Any] | Any,
        kf_account: str | None = None,
    ) -> None:
        """Send a kf message of any type: POST ``/cgi-bin/message/custom/send``.

        ``payload`` is the object WeChat expects under the ``msgtype`` key (a dict
        with wire names or one of the package's dataclasses); ``news`` takes
        ``{"articles": [...]}``. ``customservice`` is sent only when ``kf_account``
        is given, to show that agent as the sender.
        """
        validate(openid=openid, msgtype=msgtype)
        if kf_account is not None:
            validate(kf_account=kf_account)
        body: dict[str, Any] = {
            "touser": openid,
            "msgtype": msgtype,
            msgtype: normalise_payload(msgtype, payload),
        }
        if kf_account is not None:
            body["customservice"] = {"kf_account": kf_account}
        self._post(PATH_SEND, body)

    def send_text_msg(self, openid: str, content: str, kf_account: str | None = None) -> None:
        """Text message (may contain ``<a href>`` and mini-program links):
        POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "text", {"content": content}, kf_account)

    def send_image_msg(self, openid: str, media_id: str, kf_account: str | None = None) -> None:
        """Image message: POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "image", {"media_id": media_id}, kf_account)

    def send_voice_msg(self, openid: str, media_id: str, kf_account: str | None = None) -> None:
        """Voice message: POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "voice", {"media_id": media_id}, kf_account)

    def send_video_msg(
        self, openid: str, video: MsgVideo | Mapping[str, Any], kf_account: str | None = None
    ) -> None:
        """Video message (all four keys always sent): POST
        ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "video", video, kf_account)

    def send_music_msg(
        self, openid: str, music: MsgMusic | Mapping[str, Any], kf_account: str | None = None
    ) -> None:
        """Music message (all five keys always sent): POST
        ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "music", music, kf_account)

    def send_news_msg(
        self,
        openid: str,
        articles: Sequence[MsgArticle | Mapping[str, Any]],
        kf_account: str | None = None,
    ) -> None:
        """News (external link) message with exactly one article: POST
        ``/cgi-bin/message/custom/send``."""
        if isinstance(articles, str | bytes | Mapping) or not isinstance(articles, Sequence):
            raise WeChatInvalidArgument(None, "articles must be a list of articles.")
        items = [as_wire_dict(article, "news.articles[]") for article in articles]
        self.send_message(openid, "news", {"articles": items}, kf_account)

    def send_mpnews_msg(self, openid: str, media_id: str, kf_account: str | None = None) -> None:
        """News-material message by ``media_id``: POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "mpnews", {"media_id": media_id}, kf_account)

    def send_mpnews_article_msg(
        self, openid: str, article_id: str, kf_account: str | None = None
    ) -> None:
        """Published-article message by ``article_id``: POST
        ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "mpnewsarticle", {"article_id": article_id}, kf_account)

    def send_menu_msg(
        self, openid: str, menu: MsgMenu | Mapping[str, Any], kf_account: str | None = None
    ) -> None:
        """Menu message (at least one option): POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "msgmenu", menu, kf_account)

    def send_wxcard_msg(self, openid: str, card_id: str, kf_account: str | None = None) -> None:
        """Card (coupon) message: POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "wxcard", {"card_id": card_id}, kf_account)

    def send_minip_page_msg(
        self, openid: str, page: MsgMinipPage | Mapping[str, Any], kf_account: str | None = None
    ) -> None:
        """Mini-program card message: POST ``/cgi-bin/message/custom/send``."""
        self.send_message(openid, "miniprogrampage", page, kf_account)

    def send_typing(self, openid: str, command: str) -> None:
        """Show or hide the typing indicator (``"Typing"`` / ``"CancelTyping"``):
        POST ``/cgi-bin/message/custom/typing``."""
        validate(openid=openid, command=command)
        self._post(PATH_TYPING, {"touser": openid, "command": command})

    # --------------------------------------------------------------- media

    def upload_media(self, media_type: str, file: MediaFile) -> UploadedMedia:
        """Upload a temporary media (kept 3 days): POST
        ``/cgi-bin/media/upload?type=image|voice|video|thumb`` with one multipart part
        named ``media``.

        ``file`` is a path, bytes or a binary file object, read once up front. Checked
        before the call against WeChat's limits (format sniffed from the bytes; image
        PNG/JPEG/GIF ≤ 2 MB, voice AMR/MP3 ≤ 2 MB and ≤ 60 s, video MP4 ≤ 10 MB, thumb
        JPG ≤ 64 KB); the error names the limit. Uploading is idempotent in effect (a
        second upload only makes another media_id), so a failed upload may be retried.
        """
        if media_type not in MEDIA_TYPES:
            raise WeChatInvalidArgument(
                None, f"media_type must be one of {', '.join(MEDIA_TYPES)} (got {media_type!r})."
            )
        filename, content = _read_file(file, MEDIA_FILENAMES[media_type], "media")
        validate_media(media_type, content)
        data = self._call(
            ApiRequest(
                "POST",
                PATH_MEDIA_UPLOAD,
                (("type", media_type),),
                files=(UploadFile("media", filename, content),),
            )
        )
        uploaded = from_dict(UploadedMedia, data)
        if not uploaded.media_id:
            raise WeChatResponseError(None, "media/upload answered without a media_id.")
        return uploaded

    def get_media(self, media_id: str) -> MediaContent:
        """Download a temporary media (a customer's image or voice, or an upload):
        GET ``/cgi-bin/media/get?media_id=...``.

        WeChat answers with the file's bytes, or JSON: an errcode (40007 when the id
        is unknown or older than 3 days) raises; a video gives ``video_url``. The
        returned ``content_type`` is WeChat's claim; check the bytes before trusting it.
        """
        validate(media_id=media_id)
        answer: RawAnswer = self._exchange(
            ApiRequest("GET", PATH_MEDIA_GET, (("media_id", media_id),)), self._transport.send_raw
        )
        if answer.json is not None:
            video_url = answer.json.get("video_url")
            if not isinstance(video_url, str) or not video_url:
                raise WeChatResponseError(
                    None, "media/get answered JSON without an errcode, bytes or a video_url."
                )
            return MediaContent(content_type="application/json", video_url=video_url)
        return MediaContent(
            content=answer.content,
            content_type=answer.content_type.split(";")[0].strip(),
            filename=_disposition_filename(answer.disposition),
        )

    def get_material_count(self) -> MaterialCount:
        """How many permanent materials of each type the account has: GET
        ``/cgi-bin/material/get_materialcount``."""
        return self._get(PATH_MATERIAL_COUNT, MaterialCount)

    def batchget_material(
        self, material_type: str, offset: int = 0, count: int = 20
    ) -> MaterialList:
        """One page of permanent materials (image, voice, video or news): POST
        ``/cgi-bin/material/batchget_material``; ``count`` is 1..20."""
        validate_material_page(material_type, offset, count)
        data = self._post(
            PATH_MATERIAL_LIST, {"type": material_type, "offset": offset, "count": count}
        )
        return from_dict(MaterialList, data)

    def batchget_freepublish(
        self, offset: int = 0, count: int = 20, no_content: bool = True
    ) -> PublishedList:
        """One page of published articles: POST ``/cgi-bin/freepublish/batchget``;
        ``count`` is 1..20; ``no_content`` leaves the articles' HTML out."""
        validate_material_page(None, offset, count)
        data = self._post(
            PATH_FREEPUBLISH_LIST,
            {"offset": offset, "count": count, "no_content": 1 if no_content else 0},
        )
        return from_dict(PublishedList, data)


def _disposition_filename(disposition: str) -> str:
    """The filename of ``attachment; filename="x.jpg"`` (media/get names its file so)."""
    for part in disposition.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "filename":
            return os.path.basename(value.strip().strip('"'))
    return ""


def _read_avatar(file: AvatarFile) -> tuple[str, bytes]:
    return _read_file(file, DEFAULT_AVATAR_FILENAME, "avatar")


def _read_file(file: AvatarFile, default_name: str, what: str) -> tuple[str, bytes]:
    """(filename, content) of an avatar given as bytes, a path or a file object."""
    if isinstance(file, bytes | bytearray | memoryview):
        return default_name, bytes(file)
    if isinstance(file, str | os.PathLike):
        path = os.fspath(file)
        try:
            with open(path, "rb") as handle:
                content = handle.read()
        except OSError as exc:
            raise WeChatInvalidArgument(
                None, f"Cannot read the {what} file {path!r}: {exc.strerror or exc}."
            ) from None
        return os.path.basename(path) or default_name, content
    read = getattr(file, "read", None)
    if not callable(read):
        raise WeChatInvalidArgument(
            None, f"The {what} must be a path, bytes or a binary file, not {type(file).__name__}."
        )
    content = read()
    if not isinstance(content, bytes | bytearray):
        raise WeChatInvalidArgument(None, f"The {what} file must be opened in binary mode ('rb').")
    name = getattr(file, "name", None)
    filename = os.path.basename(name) if isinstance(name, str) else ""
    return filename or default_name, bytes(content)
