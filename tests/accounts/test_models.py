"""The domain's words on the accounts models."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from accounts.models import OfficialAccount


def test_an_accounts_zone_is_its_time_zone():
    assert OfficialAccount(time_zone="Europe/Berlin").zone == ZoneInfo("Europe/Berlin")


def test_an_unknown_or_empty_time_zone_falls_back_to_the_projects(settings):
    settings.TIME_ZONE = "America/New_York"
    assert OfficialAccount(time_zone="Mars/Olympus_Mons").zone == ZoneInfo("America/New_York")
    assert OfficialAccount(time_zone="").zone == ZoneInfo("America/New_York")
    assert OfficialAccount(time_zone="../etc/passwd").zone == ZoneInfo("America/New_York")
