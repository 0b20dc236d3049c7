"""The site's icon: linked from every page and found at /favicon.ico, where browsers look."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_favicon_ico_leads_to_the_icon_without_a_login(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(icon.streaming_content if icon.streaming else [icon.content])


@pytest.mark.django_db
def test_pages_link_the_icon(client):
    html = client.get(reverse("login")).content.decode()

    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
