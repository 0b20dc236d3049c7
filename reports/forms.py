"""The reports' period: two calendar days in the account's time zone."""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.utils.translation import gettext_lazy as _

from kfadmin.forms import DayField
from reports.selectors import Period

# A longer period is a rebuild's job, not a page's: three years of days.
MAX_DAYS = 3 * 366


class PeriodForm(forms.Form):
    first = DayField(label=_("From"), required=False)
    last = DayField(label=_("To"), required=False)

    def __init__(self, *args, default: Period, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.default = default
        # The days shown are the days reported: the default period, or the side a
        # person left empty filled in as the report fills it.
        self.initial = {"first": default.first, "last": default.last}

    def clean(self) -> dict:
        data = super().clean() or {}
        if self.errors:
            return data
        first: date | None = data.get("first")
        last: date | None = data.get("last")
        if first is None and last is None:
            first, last = self.default.first, self.default.last
        elif first is None and last is not None:
            first = last - timedelta(days=self.default.days - 1)
        elif last is None and first is not None:
            last = first + timedelta(days=self.default.days - 1)
        assert first is not None and last is not None
        if first > last:
            raise forms.ValidationError(_("The period ends before it starts: pick a “to” day on or after the “from” day."))
        if (last - first).days + 1 > MAX_DAYS:
            raise forms.ValidationError(
                _("A report covers at most %(days)s days; pick a shorter period."), params={"days": MAX_DAYS}
            )
        data["period"] = Period(first, last, self.default.zone)
        shown = dict(self.data.items())
        shown["first"], shown["last"] = first.isoformat(), last.isoformat()
        self.data = shown
        return data

    @property
    def period(self) -> Period:
        return self.cleaned_data["period"] if self.is_valid() else self.default
