"""Form fields shared by the apps."""

from __future__ import annotations

from datetime import date

from django import forms
from django.utils.translation import gettext_lazy as _

# Filters turn a day into the start of that day and of the next one in the account's
# time zone; the extremes of Python's calendar overflow there, and nothing kfadmin
# stores is older than WeChat's kf API or centuries ahead.
DAY_MIN = date(2000, 1, 1)
DAY_MAX = date(2999, 12, 31)


class DayField(forms.DateField):
    """A calendar day for a filter, within the range the filters can compute with."""

    widget = forms.DateInput(attrs={"type": "date"})

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widget.attrs.update({"min": DAY_MIN.isoformat(), "max": DAY_MAX.isoformat()})

    def validate(self, value: date | None) -> None:
        super().validate(value)
        if value is not None and not DAY_MIN <= value <= DAY_MAX:
            raise forms.ValidationError(
                _("This date is out of range: choose a day between %(min)s and %(max)s."),
                code="out_of_range",
                params={"min": DAY_MIN.isoformat(), "max": DAY_MAX.isoformat()},
            )
