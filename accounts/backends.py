"""The authentication backend: Django's ModelBackend, reading per request only what
authorises the request.

Every request of a logged-in user loads the user row (AuthenticationMiddleware →
`get_user`). The timestamps (`last_login`, `date_joined`) are deferred: no request
needs them to be authorised, and they load on first access. Through the ORM this
read takes 0.4 ms against 0.16 ms for hand-written SQL; bench/dashboard.py shows no
need for the difference (docs/performance.md, "The per-request reads"). Everything
else (login, permissions) is ModelBackend's. Sessions name this class, so it stays
even though it adds little: removing it would log everyone out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# Read when first asked for: parsing timestamps is most of a user row's load time.
_DEFERRED = ("last_login", "date_joined")


class KfAdminBackend(ModelBackend):
    def get_user(self, user_id: object) -> User | None:
        user_model = get_user_model()
        try:
            pk = user_model._meta.pk.to_python(user_id)
        except ValidationError:  # a malformed id in a session is no user
            return None
        try:
            user = user_model._default_manager.defer(*_DEFERRED).get(pk=pk)
        except user_model.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
