"""`{{ record.text|highlight:query }}`: a search result's text with the matches marked."""

from __future__ import annotations

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from messaging.selectors import ascii_fold

register = template.Library()


@register.filter
def highlight(text: str, query: str | None) -> SafeString:
    """`text` escaped, with every match of `query` wrapped in <mark>.

    Matches follow the search's rule (substring, ASCII letters case-insensitive).
    Each piece is escaped on its own, so only our <mark> tags are markup.
    """
    query = (query or "").strip()
    if not query:
        return escape(text)
    folded_text, folded_query = ascii_fold(text), ascii_fold(query)
    pieces: list[str] = []
    start = 0
    while (found := folded_text.find(folded_query, start)) != -1:
        end = found + len(folded_query)
        pieces.append(escape(text[start:found]))
        pieces.append(f"<mark>{escape(text[found:end])}</mark>")
        start = end
    pieces.append(escape(text[start:]))
    return mark_safe("".join(pieces))  # every piece is escaped above
