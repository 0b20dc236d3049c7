"""/healthz answers for the web process and its database: a process manager or load
balancer stops sending traffic to one whose database is gone."""

from __future__ import annotations

import socket
from contextlib import contextmanager

import pytest
from django.db import connection
from django.urls import reverse


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def database_down():
    """The default connection pointed where no database answers, restored on exit."""
    connection.close()
    saved = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-folder/kfadmin.sqlite3"
    else:
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(unused_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_healthz_answers_503_naming_the_database_when_it_does_not_answer(client, caplog):
    with database_down():
        response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
    assert "the database does not answer" in caplog.text
    # And it recovers with the database, without a restart.
    assert client.get(reverse("healthz")).json() == {"status": "ok", "database": "ok"}


def test_healthz_needs_no_login_and_only_answers_get(client, db):
    assert client.get(reverse("healthz")).status_code == 200
    assert client.post(reverse("healthz")).status_code == 405
