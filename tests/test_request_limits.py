"""Request bodies over REQUEST_BODY_MAX_BYTES are refused before anything reads them."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from accounts.models import AuditEvent
from kfadmin.middleware import RequestBodyLimitMiddleware

pytestmark = pytest.mark.usefixtures("english_default")


def read_body(request):
    from django.http import HttpResponse

    return HttpResponse(f"read {len(request.body)}")


def test_a_body_over_the_limit_is_413_and_never_read(settings):
    settings.REQUEST_BODY_MAX_BYTES = 1024
    request = RequestFactory().post("/agents/1/avatar/", data=b"x" * 1025, content_type="application/octet-stream")

    response = RequestBodyLimitMiddleware(read_body)(request)

    assert response.status_code == 413
    assert not hasattr(request, "_body")


def test_a_body_at_the_limit_passes(settings):
    settings.REQUEST_BODY_MAX_BYTES = 1024
    request = RequestFactory().post("/", data=b"x" * 1024, content_type="application/octet-stream")

    assert RequestBodyLimitMiddleware(read_body)(request).content == b"read 1024"


@pytest.mark.django_db
def test_the_site_refuses_a_huge_upload_with_413(client, settings):
    big = b"x" * (settings.REQUEST_BODY_MAX_BYTES + 1)

    response = client.post("/login/", data=big, content_type="application/octet-stream")

    assert response.status_code == 413 and "too large" in response.content.decode()
    assert not AuditEvent.objects.exists()
