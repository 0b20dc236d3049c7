"""The embedded broker (`CELERY_BROKER_URL=filesystem://`, kfadmin.broker) loses nothing
and never stops its consumer, with several processes publishing at once."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from kombu import Connection

from bench.broker import connection_args, measure
from kfadmin import broker as broker_module
from kfadmin.broker import Transport


def test_four_publishing_processes_and_a_draining_one_lose_and_duplicate_nothing():
    outcome = measure("kfadmin", producers=4, messages=1000)
    assert outcome.errors == []
    assert (outcome.failed_publishes, outcome.failed_reads) == (0, 0)
    assert (outcome.sent, outcome.received, outcome.lost, outcome.duplicated) == (4000, 4000, 0, 0)


@pytest.fixture
def broker(tmp_path: Path):
    args = connection_args("kfadmin", str(tmp_path))
    with Connection(**args) as conn:
        queue = conn.SimpleQueue("q")
        yield queue, tmp_path
        queue.close()


def test_a_consumer_reading_while_a_message_is_written_finds_nothing_then_all_of_it(
    broker, tmp_path, monkeypatch
):
    queue, _ = broker
    seen_mid_write = []
    real_replace = os.replace

    def replace_after_a_read(src, dst):
        # The moment kombu's own transport exposes: the bytes are being written.
        with Connection(**connection_args("kfadmin", str(tmp_path))) as other:
            reader = other.SimpleQueue("q")
            try:
                seen_mid_write.append(reader.get_nowait().payload)
            except reader.Empty:
                seen_mid_write.append(None)
            reader.close()
        real_replace(src, dst)

    monkeypatch.setattr(broker_module.os, "replace", replace_after_a_read)
    queue.put({"text": "x" * 100_000})
    monkeypatch.undo()
    assert seen_mid_write == [None]
    assert queue.get_nowait().payload == {"text": "x" * 100_000}


def test_an_unreadable_message_file_is_set_aside_and_the_next_one_delivered(broker, caplog):
    queue, folder = broker
    (folder / "out" / f"{0:020d}_damaged.q.msg").write_bytes(b"")
    queue.put({"n": 1})
    with caplog.at_level(logging.ERROR, logger="kfadmin.broker"):
        assert queue.get_nowait().payload == {"n": 1}
    assert [p.name for p in (folder / "failed").iterdir()] == [f"{0:020d}_damaged.q.msg"]
    assert "could not read" in caplog.text
    with pytest.raises(queue.Empty):
        queue.get_nowait()


def test_a_claimed_message_leaves_the_folder_and_only_messages_are_counted(broker):
    queue, folder = broker
    queue.put({"n": 1})
    queue.put({"n": 2})
    assert queue.qsize() == 2
    assert [queue.get_nowait().payload["n"] for _ in range(2)] == [1, 2]
    assert not [n for n in os.listdir(folder / "out") if not n.startswith(".")]
    assert os.listdir(folder / "processed") == []


def test_the_transport_is_kombus_filesystem_transport_with_its_channel_replaced():
    from kombu.transport import filesystem

    assert issubclass(Transport, filesystem.Transport)
    assert Transport.Channel is not filesystem.Channel
