"""Forms for assigning, transferring and closing sessions."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import AgentChoiceField, bound_agents
from accounts.models import Agent, OfficialAccount


class AssignForm(forms.Form):
    """Hand a customer to an agent. `confirm` is set by the "assign anyway" button
    after kfadmin warned that the agent is offline or full."""

    agent = AgentChoiceField(label=_("Agent"), empty_label=None, presence=True)
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
    to_agent = AgentChoiceField(label=_("New agent"), empty_label=None, presence=True)
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
