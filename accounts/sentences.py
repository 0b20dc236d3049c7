"""Sentences stored in English, shown in the reader's language.

What kfadmin records for later (a sync's last error, a send's failure, an audit
message) is kept in English, the catalogue's source language, and translated when a
page shows it. A fixed sentence translates by its exact text. A sentence with a part
that varies (the HTTP status of a transport failure, the reason inside "could not be
reached after several attempts: …") is registered here as its English pattern; the
stored text is matched against the pattern, the pattern is translated and the parts
are translated in turn.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from kfadmin.wechat import TRANSPORT_SENTENCE, WeChatError

# Every stored sentence with variable parts, as the English msgid it was made from.
STORED_PATTERNS: tuple[str, ...] = (
    TRANSPORT_SENTENCE,
    gettext_noop("WeChat could not be reached after several attempts: %(reason)s Send it again."),
    gettext_noop("The %(job)s sync failed unexpectedly (%(error)s); see the worker log."),
    gettext_noop("%(sentence)s (WeChat error %(errcode)s)"),
)

# The client's fixed parts of TRANSPORT_SENTENCE (kfadmin/wechat/errors.py), for makemessages.
_TRANSPORT_DETAILS = (
    gettext_noop("WeChat could not be reached (%(detail)s); try again in a minute."),
    gettext_noop("no answer in time"),
    gettext_noop("connection failed"),
    gettext_noop("the answer was not readable"),
)


def _compile(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"%\((\w+)\)[sd]", pattern)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
    return re.compile(f"^{regex}$", re.S)


_COMPILED = tuple((pattern, _compile(pattern)) for pattern in STORED_PATTERNS)


def sentence_translate(text: str) -> str:
    """`text` (an English sentence kfadmin stored) in the active language."""
    if not text:
        return text
    translated = _(text)
    if translated != text:
        return translated
    for pattern, regex in _COMPILED:
        match = regex.match(text)
        if match:
            parts = {name: sentence_translate(value) for name, value in match.groupdict().items()}
            return _(pattern) % parts
    return text


def wechat_error_message(exc: WeChatError) -> str:
    """The sentence to show for a WeChat failure, in the reader's language, with the code.

    One sentence per failure, wherever it is shown: agent forms, session actions,
    sends, typing. A transport failure says WeChat could not be reached and why in a
    few words, never the URL."""
    sentence = sentence_translate(exc.explanation) if exc.explanation else _("WeChat refused the request.")
    if exc.errcode is None:
        return sentence
    return _("%(sentence)s (WeChat error %(errcode)s)") % {"sentence": sentence, "errcode": exc.errcode}
