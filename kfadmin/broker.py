"""The embedded broker: kombu's filesystem transport, made safe for several producers.

Kombu's own filesystem transport creates a message file and then writes into it, and
its reader moves whatever `*.msg` file it lists. A reader that comes between the two
moves an empty or half-written file, fails to decode it and the worker dies
("Unrecoverable error: JSONDecodeError"), or the producer writes into a file that is
already gone: the message is lost (kombu issue #1551). Measured with
`bench/broker.py`: 4 producers x 1,000 messages lost 1-2 and crashed the consumer in
every run.

Here a message is written under a hidden temporary name in the same folder and only
then renamed to its `.msg` name (`os.replace` is atomic on one file system), so a
reader sees either no file or a complete one. A reader claims a file by renaming it
into the processed folder, which only one reader can win. A file that still does not
decode (left by the old transport, or damaged on disk) is set aside in the failed
folder with an ERROR in the log instead of stopping the worker. The exchange tables in
the control folder are rewritten the same way, under a lock.

`CELERY_BROKER_URL=filesystem://` selects this transport (see settings).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable

from kombu.transport import filesystem, virtual
from kombu.transport.virtual import Channel as VirtualChannel
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)

_TEMP_PREFIX = ".incoming-"


def _write_atomically(folder: str | os.PathLike, name: str, data: bytes) -> None:
    """Write `data` to `folder/name` so that no reader ever sees a partial file."""
    fd, temp_path = tempfile.mkstemp(dir=folder, prefix=_TEMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
        os.replace(temp_path, os.path.join(folder, name))
    except BaseException:
        try:
            os.unlink(temp_path)
        except FileNotFoundError:
            pass
        raise


class Channel(filesystem.Channel):
    """Atomic publish, rename-to-claim consume, a damaged file set aside."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Names listed by the last directory scan, per queue: one scan serves many
        # `_get` calls, so draining n messages costs O(n) and not O(n^2).
        self._pending: dict[str, deque[str]] = {}

    @cached_property
    def failed_folder(self) -> str:
        return self.transport_options.get(
            "failed_folder", os.path.join(self.processed_folder, "failed")
        )

    # ------------------------------------------------------------------ messages

    # kombu's filesystem Channel calls the second argument `payload`, its
    # AbstractChannel `message`; no name satisfies both.
    def _put(self, queue: str, payload: dict, **kwargs) -> None:  # type: ignore[override]
        # Wall-clock nanoseconds, zero-padded: names sort by publication time across
        # processes and restarts (kombu's monotonic milliseconds restart at boot).
        name = f"{time.time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        try:
            _write_atomically(self.data_folder_out, name, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise filesystem.ChannelError(
                f"Cannot add message {name!r} to {self.data_folder_out!r}"
            ) from exc

    def _scan(self) -> None:
        pending: dict[str, deque[str]] = {}
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.startswith(".") or not name.endswith(".msg"):
                continue
            queue = name.partition(".")[2][: -len(".msg")]
            pending.setdefault(queue, deque()).append(name)
        self._pending = pending

    def _get(self, queue: str, timeout: float | None = None) -> dict:
        if not self._pending.get(queue):
            self._scan()
        names = self._pending.get(queue) or deque()
        os.makedirs(self.processed_folder, exist_ok=True)
        while names:
            name = names.popleft()
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except FileNotFoundError:
                continue  # another consumer claimed it first
            payload = self._read_claimed(claimed)
            if payload is not None:
                return payload
        raise filesystem.Empty()

    def _read_claimed(self, path: str) -> dict | None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
            payload = loads(bytes_to_str(raw))
            if not isinstance(payload, dict):
                raise ValueError("a message must be a JSON object")
        except (OSError, ValueError) as exc:
            os.makedirs(self.failed_folder, exist_ok=True)
            target = os.path.join(self.failed_folder, os.path.basename(path))
            try:
                os.replace(path, target)
            except OSError:
                target = path
            logger.error(
                "The broker set aside a message file it could not read (%s): %s", exc, target
            )
            return None
        if not self.store_processed:
            os.remove(path)
        return payload

    def _purge(self, queue: str) -> int:
        self._pending.pop(queue, None)
        return super()._purge(queue)

    # ------------------------------------------------------------------ exchange tables

    def _update_table(self, exchange: str, change: Callable[[list], list | None]) -> None:
        """Read, change and atomically rewrite an exchange table under an exclusive lock,
        so a publisher reading it (`get_table`) never sees an empty or partial file."""
        file = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with open(file.with_name(file.name + ".lock"), "ab") as lock_file:
            filesystem.lock(lock_file, filesystem.LOCK_EX)
            try:
                queues = self.get_table(exchange)
                changed = change(queues)
                if changed is not None:
                    data = str_to_bytes(dumps([list(q) for q in changed]))
                    _write_atomically(self.control_folder, file.name, data)
            except OSError as exc:
                raise filesystem.ChannelError(f"Cannot update {file}") from exc
            finally:
                filesystem.unlock(lock_file)

    def _queue_bind(self, exchange, routing_key, pattern, queue) -> None:
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")

        def add(queues: list) -> list | None:
            return None if entry in queues else [entry, *queues]

        self._update_table(exchange, add)

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs) -> None:
        VirtualChannel._delete(self, queue, exchange, routing_key, pattern, *args, **kwargs)
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")

        def remove(queues: list) -> list | None:
            return [q for q in queues if q != entry] if entry in queues else None

        self._update_table(exchange, remove)


class Transport(filesystem.Transport):
    Channel = Channel
    # What a process has declared, per control folder. Kombu keeps one state for every
    # filesystem connection of a process, so a second folder's bindings were taken as
    # made and its messages dropped as undeliverable.
    _states: dict[str, virtual.BrokerState] = {}

    def __init__(self, client, **kwargs) -> None:
        super().__init__(client, **kwargs)
        folder = os.path.abspath(client.transport_options.get("control_folder", "control"))
        self.state = self._states.setdefault(folder, virtual.BrokerState())

