"""Forms for assigning, transferring and closing sessions, and for the customer's profile."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import AgentChoiceField, UncutInputsMixin, bound_agents
from accounts.models import Agent, OfficialAccount
from sessions_app.models import NOTE_MAX, REMARK_NAME_MAX, TAG_MAX, TAGS_MAX, AutoAssign


class AssignForm(forms.Form):
    """Hand a customer to an agent. `confirm` is set by the "assign anyway" button
    after kfadmin warned that the agent is offline or full."""

    agent = AgentChoiceField(label=_("Agent"), empty_label=None, presence=True, scope="bound")
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, account: OfficialAccount, only: Agent | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["agent"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = bound_agents(account, only=only)
        self.fields["agent"].widget.attrs["autofocus"] = True  # htmx focuses it when the panel opens
        self.fields["agent"].error_messages["invalid_choice"] = _(
            "Choose one of the listed agents; only agents bound to a WeChat user can take customers."
        )


class TransferForm(forms.Form):
    to_agent = AgentChoiceField(label=_("New agent"), empty_label=None, presence=True, scope="bound")
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, account: OfficialAccount, current: Agent | None, **kwargs):
        super().__init__(*args, **kwargs)
        agents = bound_agents(account)
        if current is not None:
            agents = agents.exclude(pk=current.pk)
        field = self.fields["to_agent"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = agents
        self.fields["to_agent"].widget.attrs["autofocus"] = True
        self.fields["to_agent"].error_messages["invalid_choice"] = _(
            "Choose another listed agent; only agents bound to a WeChat user can take customers."
        )


class AutoAssignForm(forms.Form):
    """The queue page's auto-assignment switch: the state a button asks for (on, which
    also resumes; paused; off) and the strategy."""

    state = forms.ChoiceField(choices=AutoAssign.State.choices)
    strategy = forms.ChoiceField(
        label=_("Strategy"), choices=AutoAssign.Strategy.choices, initial=AutoAssign.Strategy.LEAST_LOADED
    )

def tags_parse(raw: str) -> list[str]:
    """Tags from what a person typed: separated by commas (ASCII or Chinese) or
    new lines, trimmed, duplicates dropped (ignoring case), in the order typed."""
    seen: set[str] = set()
    tags: list[str] = []
    for part in raw.replace("，", ",").replace("、", ",").replace("\n", ",").split(","):
        tag = " ".join(part.split())
        if tag and tag.casefold() not in seen:
            seen.add(tag.casefold())
            tags.append(tag)
    return tags


class CustomerProfileForm(UncutInputsMixin, forms.Form):
    """kfadmin's remark name and tags for a customer."""

    remark_name = forms.CharField(
        label=_("Remark name"), required=False, max_length=REMARK_NAME_MAX,
        help_text=_("Shown instead of the openid across kfadmin. Only kfadmin keeps it; WeChat is not told."),
    )
    tags = forms.CharField(
        label=_("Tags"), required=False, max_length=TAGS_MAX * (TAG_MAX + 2),
        help_text=_("Separate tags with commas, e.g. VIP, refund."),
    )

    def clean_remark_name(self) -> str:
        return " ".join(self.cleaned_data["remark_name"].split())

    def clean_tags(self) -> list[str]:
        tags = tags_parse(self.cleaned_data["tags"])
        if len(tags) > TAGS_MAX:
            raise forms.ValidationError(
                _("At most %(max)s tags; this has %(n)s."), params={"max": TAGS_MAX, "n": len(tags)}
            )
        long = [tag for tag in tags if len(tag) > TAG_MAX]
        if long:
            raise forms.ValidationError(
                _("A tag has at most %(max)s characters: “%(tag)s” is longer."), params={"max": TAG_MAX, "tag": long[0]}
            )
        return tags


class CustomerNoteForm(UncutInputsMixin, forms.Form):
    text = forms.CharField(
        label=_("Note"), max_length=NOTE_MAX, strip=True, widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Write the note first.")},
    )
