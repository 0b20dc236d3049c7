"""`{{ stored_text|sentence }}`: a sentence kfadmin stored in English, in the reader's language."""

from __future__ import annotations

from django import template

from accounts.sentences import sentence_translate

register = template.Library()


@register.filter
def sentence(text: str) -> str:
    return sentence_translate(text or "")
