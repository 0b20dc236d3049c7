"""Typed errors for the WeChat kf API.

WeChat reports failures in-band as ``{"errcode": N, "errmsg": "..."}``. The errmsg
carries a per-request suffix (``rid: ...``, ``hint: [...]``), so everything here
branches on ``errcode`` alone: one table (:data:`_ERRCODES`) maps each code to the
exception class callers branch on and to a sentence that tells a person what
happened and what to do (wechat-kf-api.md §8).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TOKEN_REFRESH_ERRCODES",
    "WeChatCallbackError",
    "WeChatConflict",
    "WeChatError",
    "WeChatForbidden",
    "WeChatInvalidArgument",
    "WeChatNotFound",
    "WeChatRateLimited",
    "WeChatReplyWindowClosed",
    "WeChatRequestNotSent",
    "WeChatResponseError",
    "WeChatRetryableError",
    "WeChatSendBudgetExhausted",
    "WeChatSystemBusy",
    "WeChatTokenError",
    "TRANSPORT_SENTENCE",
    "WeChatTransportError",
    "error_class_for",
    "error_from_response",
    "explain",
    "known_errcodes",
    "transport_detail",
]


class WeChatError(Exception):
    """Base class of every error raised by :mod:`kfadmin.wechat`.

    ``errcode`` is WeChat's code, or ``None`` when the failure happened on our side
    (bad argument, network failure, malformed response). ``retryable`` says whether
    sending the same request again later may succeed; only transient failures set it.
    """

    retryable: bool = False
    #: Whether WeChat may have acted on the request although no success came back (a
    #: read timeout, a dropped connection, a 5xx). A non-idempotent call (a send) must
    #: not be repeated then; an errcode answer or a request that never left is proof
    #: that nothing happened.
    outcome_unknown: bool = False

    def __init__(self, errcode: int | None, errmsg: str = "", *, explanation: str | None = None):
        self.errcode = errcode
        self.errmsg = errmsg
        if explanation is None:
            # Local errors (errcode None) already carry a human sentence as errmsg.
            explanation = explain(errcode) if errcode is not None else errmsg
        self._explanation = explanation
        super().__init__(errcode, errmsg)

    @property
    def explanation(self) -> str:
        """A sentence for a person: what happened and what to do about it."""
        return self._explanation

    def __str__(self) -> str:
        if self.errcode is None:
            return self.errmsg or self._explanation
        return f"errcode {self.errcode} ({self.errmsg}): {self._explanation}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(errcode={self.errcode!r}, errmsg={self.errmsg!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery pickles exceptions between processes; keep the keyword argument.
        return (_rebuild_error, (type(self), self.errcode, self.errmsg, self._explanation))


def _rebuild_error(
    cls: type[WeChatError], errcode: int | None, errmsg: str, explanation: str
) -> WeChatError:
    error = cls.__new__(cls)
    WeChatError.__init__(error, errcode, errmsg, explanation=explanation)
    return error


class WeChatRetryableError(WeChatError):
    """Transient failure: the identical request may succeed later.

    Meant for Celery's ``autoretry_for=(WeChatRetryableError,)``. Only transport
    failures and errcode -1 belong here — never quota, window or budget errors.
    """

    retryable = True


# What a person reads when WeChat could not be reached: never the URL (it names the
# API path and, before redaction, secrets), only a short detail. Kept as a pattern so
# the dashboard's catalogue can translate the sentence and its detail separately.
TRANSPORT_SENTENCE = "WeChat could not be reached (%(detail)s); try again in a minute."
TRANSPORT_TIMEOUT = "no answer in time"
TRANSPORT_CONNECTION = "connection failed"
TRANSPORT_UNREADABLE = "the answer was not readable"


def transport_detail(*, http_status: int | None = None, timed_out: bool = False, unreadable: bool = False) -> str:
    """The short detail of a transport failure for :data:`TRANSPORT_SENTENCE`."""
    if timed_out:
        return TRANSPORT_TIMEOUT
    if unreadable:
        return TRANSPORT_UNREADABLE
    if http_status is not None:
        return f"HTTP {http_status}"
    return TRANSPORT_CONNECTION


class WeChatTransportError(WeChatRetryableError):
    """The request did not produce a usable WeChat answer: timeout, connection error,
    HTTP status >= 400 or a body that is not a JSON object. ``errcode`` is None.

    The request may have reached WeChat and been carried out (``outcome_unknown``):
    safe to repeat for reads, not for a send. :class:`WeChatRequestNotSent` is the
    case that proves it never left.

    ``errmsg`` keeps the technical detail for logs and the audit log (method, redacted
    URL, cause); ``explanation`` is the sentence for a person, without the URL."""

    outcome_unknown = True

    def __init__(self, message: str, *, http_status: int | None = None, detail: str | None = None):
        self.http_status = http_status
        if detail is None:
            detail = transport_detail(http_status=http_status)
        self.detail = detail
        super().__init__(None, message, explanation=TRANSPORT_SENTENCE % {"detail": detail})

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_transport_error, (type(self), self.errmsg, self.http_status, self.detail))


def _rebuild_transport_error(
    cls: type[WeChatTransportError], message: str, http_status: int | None, detail: str | None = None
) -> WeChatTransportError:
    return cls(message, http_status=http_status, detail=detail)


class WeChatRequestNotSent(WeChatTransportError):
    """The request never reached WeChat: the connection could not be established
    (name not resolved, refused, connect timeout), or the access token it needs could
    not be obtained. Repeating it is safe even for a send."""

    outcome_unknown = False


class WeChatSystemBusy(WeChatRetryableError):
    """errcode -1: the platform is busy; try again a little later."""


class WeChatTokenError(WeChatError):
    """The access token or the credentials used to obtain it were rejected."""


class WeChatRateLimited(WeChatError):
    """An API call quota (daily or per-minute) is used up. Retrying now only burns
    more quota, so this is deliberately not retryable."""


class WeChatReplyWindowClosed(WeChatError):
    """errcode 45015: the customer has not interacted recently (or unfollowed)."""


class WeChatSendBudgetExhausted(WeChatError):
    """errcode 45047: the per-customer message budget of the current window is used up."""


class WeChatInvalidArgument(WeChatError, ValueError):
    """A request argument is invalid, either detected locally before any HTTP call
    (``errcode`` None) or reported by WeChat. Also a ``ValueError``, so code that
    validates input generically catches it."""


class WeChatNotFound(WeChatError):
    """The kf account or session the request names does not exist."""


class WeChatConflict(WeChatError):
    """The request conflicts with the current state (already exists, already bound,
    served by another agent, agent offline, limit reached, ...)."""


class WeChatForbidden(WeChatError):
    """The official account, the calling server or the customer is not allowed to do
    this (feature not enabled, API not authorised, IP not whitelisted, blocked user)."""


class WeChatResponseError(WeChatError):
    """WeChat answered with JSON that does not have the documented shape."""

    # An answer kfadmin cannot read says nothing about whether the call took effect.
    outcome_unknown = True


class WeChatCallbackError(WeChatError):
    """A pushed callback failed verification or could not be decrypted or parsed."""


# Codes on which the client fetches a fresh token and resends the request once
# (wechat-kf-api.md §2.3). 41001 means the token was missing: a bug, not staleness.
TOKEN_REFRESH_ERRCODES: frozenset[int] = frozenset({40001, 40014, 42001})


# errcode -> (class, sentence). The single source for both the class callers branch
# on and the text people read.
_ERRCODES: dict[int, tuple[type[WeChatError], str]] = {
    -1: (WeChatSystemBusy, "WeChat is busy right now. Try again in a few seconds."),
    # --- credentials and token
    40001: (
        WeChatTokenError,
        "WeChat rejected the credentials: the AppSecret is wrong or the access token is "
        "no longer valid (another system may have fetched a newer one). Check the "
        "AppSecret and make sure only one system refreshes the token.",
    ),
    40002: (
        WeChatTokenError,
        "The token request used an invalid grant_type; it must be client_credential.",
    ),
    40013: (
        WeChatTokenError,
        "WeChat does not recognise this AppID. Check the AppID configured for the "
        "official account.",
    ),
    40014: (
        WeChatTokenError,
        "The access token is invalid. A fresh token will be fetched; if this persists, "
        "check that no other system is invalidating it.",
    ),
    40125: (
        WeChatTokenError,
        "WeChat rejected the AppSecret. Copy it again from the official account's "
        "developer settings.",
    ),
    41001: (
        WeChatTokenError,
        "The request reached WeChat without an access token. This is a bug in the client.",
    ),
    41002: (WeChatTokenError, "The token request is missing the AppID. Configure the AppID."),
    41004: (
        WeChatTokenError,
        "The token request is missing the AppSecret. Configure the AppSecret.",
    ),
    42001: (
        WeChatTokenError,
        "The access token has expired. A fresh token will be fetched automatically.",
    ),
    # --- quotas, windows and budgets
    45009: (
        WeChatRateLimited,
        "The daily call quota for this WeChat API is used up. Wait until tomorrow or "
        "reset the quota in the official account platform.",
    ),
    45011: (
        WeChatRateLimited,
        "Too many calls to this WeChat API in the last minute. Wait a minute and try again.",
    ),
    45015: (
        WeChatReplyWindowClosed,
        "This customer has not written in the last 48 hours (or has unfollowed the "
        "account), so WeChat will not deliver the message. Wait until they write again.",
    ),
    45047: (
        WeChatSendBudgetExhausted,
        "You have already sent this customer as many messages as WeChat allows since "
        "their last interaction. Wait until they write again.",
    ),
    # --- arguments
    40003: (
        WeChatInvalidArgument,
        "WeChat does not know this customer (invalid openid). Check that the openid "
        "belongs to this official account.",
    ),
    40004: (
        WeChatInvalidArgument,
        "WeChat does not know this media type. Upload an image, voice, video or thumbnail.",
    ),
    40005: (
        WeChatInvalidArgument,
        "WeChat rejected the file type. Avatars and thumbnails must be JPG, images PNG, "
        "JPG or GIF, voice AMR or MP3, video MP4.",
    ),
    40006: (
        WeChatInvalidArgument,
        "WeChat rejected the file size. Images and voice may be at most 2 MB, video 10 MB, "
        "thumbnails 64 KB.",
    ),
    40007: (
        WeChatInvalidArgument,
        "The media_id is invalid or has expired. Upload the media again and use the new id.",
    ),
    40008: (WeChatInvalidArgument, "WeChat does not accept this message type."),
    40009: (
        WeChatInvalidArgument,
        "The image file size is not accepted. Use a JPG of at most 5 MB.",
    ),
    40033: (
        WeChatInvalidArgument,
        "The request contained \\uXXXX-escaped characters, which WeChat refuses. "
        "This is a bug in the client.",
    ),
    40066: (
        WeChatInvalidArgument,
        "WeChat does not know this URL. This is a bug in the client (wrong API path).",
    ),
    41005: (
        WeChatInvalidArgument,
        "The upload contained no file. Choose a file and try again.",
    ),
    43002: (
        WeChatInvalidArgument,
        "WeChat requires a POST request here. This is a bug in the client.",
    ),
    44002: (
        WeChatInvalidArgument,
        "The request body was empty. This is a bug in the client.",
    ),
    45002: (
        WeChatInvalidArgument,
        "The message is too long for WeChat. Shorten it and send again.",
    ),
    45008: (
        WeChatInvalidArgument,
        "WeChat accepts only one article per news message. Remove the extra articles.",
    ),
    45072: (
        WeChatInvalidArgument,
        "The typing command is invalid; it must be Typing or CancelTyping.",
    ),
    45162: (
        WeChatInvalidArgument,
        "WeChat could not understand the message content (invalid type). Check the message fields.",
    ),
    61451: (WeChatInvalidArgument, "WeChat reported an invalid parameter. Check the input."),
    61452: (
        WeChatInvalidArgument,
        "The kf account is invalid. Use the form prefix@official_account_wechat_id.",
    ),
    61454: (
        WeChatInvalidArgument,
        "The kf account name is too long. Use at most 10 letters or digits before the @.",
    ),
    61455: (
        WeChatInvalidArgument,
        "The kf account name contains characters WeChat does not allow. Use letters "
        "and digits only.",
    ),
    61457: (
        WeChatInvalidArgument,
        "WeChat rejected the avatar file type. Upload a JPG image.",
    ),
    61500: (WeChatInvalidArgument, "WeChat rejected the date format of the query."),
    65403: (
        WeChatInvalidArgument,
        "WeChat rejected the nickname. Use at most 16 characters without special symbols.",
    ),
    65404: (
        WeChatInvalidArgument,
        "WeChat rejected the kf account. Use up to 10 letters, digits or underscores, "
        "then @ and the official account's WeChat ID.",
    ),
    65409: (
        WeChatInvalidArgument,
        "WeChat does not know this WeChat ID. Check the agent's WeChat ID and invite again.",
    ),
    65416: (
        WeChatInvalidArgument,
        "WeChat rejected the chat-history query parameters. Check the time window, "
        "msgid and number.",
    ),
    65417: (
        WeChatInvalidArgument,
        "The chat-history query spans more than 24 hours. Query at most 24 hours at a time.",
    ),
    # --- not found
    65401: (
        WeChatNotFound,
        "This kf account does not exist. Refresh the agent list; it may have been deleted.",
    ),
    65413: (
        WeChatNotFound,
        "This customer has no open session. Refresh the session list.",
    ),
    # --- state conflicts and limits
    65402: (
        WeChatConflict,
        "This kf account is not bound to a WeChat user yet. Invite an agent to bind it first.",
    ),
    65405: (
        WeChatConflict,
        "The official account already has the maximum number of kf accounts (100). "
        "Delete one before adding another.",
    ),
    65406: (WeChatConflict, "A kf account with this name already exists. Choose another name."),
    65407: (
        WeChatConflict,
        "This WeChat user is already an agent of this official account.",
    ),
    65408: (
        WeChatConflict,
        "This WeChat user has already been invited. Wait for them to accept or for the "
        "invitation to expire.",
    ),
    65410: (
        WeChatConflict,
        "This WeChat user is already bound to too many kf accounts. Unbind one first.",
    ),
    65411: (
        WeChatConflict,
        "This kf account already has a pending invitation. Wait for it to be accepted "
        "or to expire.",
    ),
    65412: (
        WeChatConflict,
        "This kf account is already bound to a WeChat user.",
    ),
    65414: (
        WeChatConflict,
        "Another agent is already serving this customer. Close that session or "
        "transfer it instead.",
    ),
    65415: (
        WeChatConflict,
        "The agent is not online. Ask them to log in to the web kf client first.",
    ),
    45080: (
        WeChatConflict,
        "The typing indicator can only be shown within 30 seconds of the customer's last message.",
    ),
    45081: (
        WeChatConflict,
        "The typing indicator is already showing. Wait 15 seconds before sending it again.",
    ),
    61453: (WeChatConflict, "A kf account with this name already exists. Choose another name."),
    61456: (
        WeChatConflict,
        "The official account already has the maximum number of kf accounts. Delete one first.",
    ),
    61458: (
        WeChatConflict,
        "Another agent is already serving this customer.",
    ),
    61459: (
        WeChatConflict,
        "The agent is not online. Ask them to log in first.",
    ),
    # --- not allowed
    40164: (
        WeChatForbidden,
        "This server's IP address is not in the official account's IP whitelist. Add it "
        "in the developer settings.",
    ),
    40200: (
        WeChatForbidden,
        "This type of official account cannot use this feature (test accounts cannot "
        "send menu messages).",
    ),
    43004: (
        WeChatForbidden,
        "This customer does not follow the official account, so WeChat will not deliver "
        "the message.",
    ),
    43019: (
        WeChatForbidden,
        "This customer is on the official account's blacklist. Remove them from the "
        "blacklist to send messages.",
    ),
    48001: (
        WeChatForbidden,
        "This official account is not authorised to use this API. Check its "
        "verification status and permissions.",
    ),
    65400: (
        WeChatForbidden,
        "The new customer-service feature is not enabled for this official account (or "
        "was enabled only minutes ago). Enable it in the official account platform and "
        "wait a while.",
    ),
    89503: (
        WeChatForbidden,
        "WeChat requires an administrator to confirm calls from this server's IP "
        "address. Ask an administrator to confirm it in the official account platform.",
    ),
    # --- legacy system error: not -1, so not retried automatically
    61450: (WeChatError, "WeChat reported a system error. Try again later."),
}


def error_class_for(errcode: int) -> type[WeChatError]:
    """The exception class for ``errcode`` (the base class for unknown codes)."""
    entry = _ERRCODES.get(errcode)
    return entry[0] if entry else WeChatError


def explain(errcode: int | None) -> str:
    """A human sentence for ``errcode``: what happened and what to do."""
    if errcode is None:
        return "The request to WeChat failed before WeChat could answer. Try again later."
    entry = _ERRCODES.get(errcode)
    if entry:
        return entry[1]
    return (
        f"WeChat returned error code {errcode}. Look the code up in WeChat's global "
        "return-code list."
    )


def known_errcodes() -> frozenset[int]:
    """Every errcode with a dedicated class and sentence."""
    return frozenset(_ERRCODES)


def error_from_response(errcode: int, errmsg: str) -> WeChatError:
    """Build the typed error for a WeChat ``{"errcode", "errmsg"}`` answer."""
    return error_class_for(errcode)(errcode, errmsg)
