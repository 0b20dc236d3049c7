"""Forms for assigning, transferring and closing sessions."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import Agent, OfficialAccount


class AgentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Agent) -> str:
        state = _("online") if obj.is_online else _("offline")
        name = obj.display_name
        return f"{name} ({obj.kf_account}) · {state}"


def _agents(account: OfficialAccount, only: Agent | None = None):
    agents = Agent.objects.listed().filter(official_account=account).exclude(kf_wx="")
    if only is not None:
        agents = agents.filter(pk=only.pk)
    return agents.order_by("-online_status", "kf_account")


class AssignForm(forms.Form):
    """Hand a customer to an agent. `confirm` is set by the "assign anyway" button
    after kfadmin warned that the agent is offline or full."""

    agent = AgentChoiceField(queryset=Agent.objects.none(), label=_("Agent"), empty_label=None)
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, account: OfficialAccount, only: Agent | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = _agents(account, only)
        self.fields["agent"].widget.attrs["autofocus"] = True  # htmx focuses it when the panel opens
        self.fields["agent"].error_messages["invalid_choice"] = _(
            "Choose one of the listed agents; only agents bound to a WeChat user can take customers."
        )


class TransferForm(forms.Form):
    to_agent = AgentChoiceField(queryset=Agent.objects.none(), label=_("New agent"), empty_label=None)
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, account: OfficialAccount, current: Agent | None, **kwargs):
        super().__init__(*args, **kwargs)
        agents = _agents(account)
        if current is not None:
            agents = agents.exclude(pk=current.pk)
        self.fields["to_agent"].queryset = agents
        self.fields["to_agent"].widget.attrs["autofocus"] = True
        self.fields["to_agent"].error_messages["invalid_choice"] = _(
            "Choose another listed agent; only agents bound to a WeChat user can take customers."
        )
