"""Benchmark: several processes publish to an embedded broker while one drains it; count.

    scripts/uv run python bench/broker.py                          # kfadmin's default and kombu's own
    scripts/uv run python bench/broker.py --producers 4 --messages 1000 --runs 4
    scripts/uv run python bench/broker.py --transport sqlalchemy   # needs SQLAlchemy installed

Each producer is its own process with its own kombu connection, like the web server,
beat and the worker publishing at once. They start together (a barrier) and publish
`{"producer": i, "seq": n}` as fast as they can; one consumer process drains the queue
at the same time and keeps draining until every producer has exited and the queue is
empty. Printed per run: messages sent, received, lost (sent and never received),
duplicated, reads that failed (the error the worker dies of), publishes that failed,
and the rate. Figures in docs/performance.md.

`tests/test_broker.py` runs the same harness on the default broker.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QUEUE = "bench"

TRANSPORTS = {
    # name: (kombu transport class or None for the URL's own, URL template)
    "kfadmin": ("kfadmin.broker:Transport", "filesystem://"),
    "kombu-filesystem": ("kombu.transport.filesystem:Transport", "filesystem://"),
    "sqlalchemy": (None, "sqla+sqlite:///{folder}/broker.sqlite3"),
}


@dataclass
class Outcome:
    transport: str
    sent: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    failed_reads: int = 0
    failed_publishes: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.received / self.seconds if self.seconds else 0
        return (
            f"{self.transport:17} sent {self.sent:5}  received {self.received:5}  lost {self.lost:3}"
            f"  duplicated {self.duplicated:3}  failed reads {self.failed_reads:3}"
            f"  failed publishes {self.failed_publishes:3}  {rate:7.0f} msg/s"
        )


def connection_args(transport: str, folder: str) -> dict:
    cls, url = TRANSPORTS[transport]
    args: dict = {"hostname": url.format(folder=folder)}
    if cls:
        out = Path(folder) / "out"
        args["transport"] = cls
        args["transport_options"] = {
            "data_folder_in": str(out),
            "data_folder_out": str(out),
            "processed_folder": str(Path(folder) / "processed"),
            "failed_folder": str(Path(folder) / "failed"),
            "control_folder": str(Path(folder) / "control"),
        }
        for path in args["transport_options"].values():
            Path(path).mkdir(parents=True, exist_ok=True)
    return args


def _produce(args: dict, producer: int, count: int, barrier, report) -> None:
    from kombu import Connection

    failed = 0
    with Connection(**args) as conn:
        queue = conn.SimpleQueue(QUEUE)
        barrier.wait()
        for seq in range(count):
            try:
                queue.put({"producer": producer, "seq": seq})
            except Exception as exc:  # noqa: BLE001 - counted, not hidden
                failed += 1
                report.put(("error", f"publish: {exc!r}"))
                continue
            report.put(("sent", (producer, seq)))
        queue.close()
    report.put(("failed_publish", failed))


def _consume(args: dict, barrier, producers_done, report) -> None:
    from kombu import Connection

    seen: Counter = Counter()
    failed_reads = 0
    with Connection(**args) as conn:
        queue = conn.SimpleQueue(QUEUE)
        barrier.wait()
        while True:
            try:
                message = queue.get_nowait()
            except Empty:
                # Empty after every producer has exited means nothing is left.
                if producers_done.is_set():
                    try:
                        message = queue.get_nowait()
                    except Empty:
                        break
                else:
                    time.sleep(0.001)
                    continue
            except Exception as exc:  # noqa: BLE001 - the read a worker dies of
                failed_reads += 1
                report.put(("error", f"read: {exc!r}"))
                continue
            body = message.payload
            seen[(body["producer"], body["seq"])] += 1
            message.ack()
        queue.close()
    report.put(("seen", dict(seen)))
    report.put(("failed_reads", failed_reads))


def measure(transport: str, *, producers: int = 4, messages: int = 1000, folder: str | None = None) -> Outcome:
    """Run `producers` publishing processes and one draining process; count what arrived."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="kfadmin-broker-") as tmp:
        args = connection_args(transport, folder or tmp)
        barrier = ctx.Barrier(producers + 2)
        producers_done = ctx.Event()
        report = ctx.Queue()
        consumer = ctx.Process(target=_consume, args=(args, barrier, producers_done, report))
        consumer.start()
        workers = [
            ctx.Process(target=_produce, args=(args, i, messages, barrier, report))
            for i in range(producers)
        ]
        for worker in workers:
            worker.start()
        barrier.wait()
        started = time.perf_counter()
        outcome = Outcome(transport)
        sent: set = set()
        seen: dict = {}
        pending_producers, consumer_done = producers, False
        while pending_producers or not consumer_done:
            kind, value = report.get()
            if kind == "sent":
                sent.add(value)
            elif kind == "failed_publish":
                outcome.failed_publishes += value
                pending_producers -= 1
                if not pending_producers:
                    producers_done.set()
            elif kind == "error":
                if len(outcome.errors) < 5:
                    outcome.errors.append(value)
            elif kind == "seen":
                seen = value
            elif kind == "failed_reads":
                outcome.failed_reads = value
                consumer_done = True
        outcome.seconds = time.perf_counter() - started
        for process in [*workers, consumer]:
            process.join()
            if process.exitcode:
                outcome.errors.append(f"{process.name} exited with code {process.exitcode}")
    outcome.sent = len(sent)
    outcome.received = len(seen)
    outcome.lost = len(sent - set(seen))
    outcome.duplicated = sum(n - 1 for n in seen.values())
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=sorted(TRANSPORTS), action="append")
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=1000, help="per producer")
    parser.add_argument("--runs", type=int, default=4)
    options = parser.parse_args()
    print(f"{options.producers} producers x {options.messages} messages, 1 consumer, {options.runs} runs")
    for transport in options.transport or ["kfadmin", "kombu-filesystem"]:
        for _ in range(options.runs):
            outcome = measure(transport, producers=options.producers, messages=options.messages)
            print(outcome.line(), flush=True)
            for error in outcome.errors:
                print(f"    {error}")


if __name__ == "__main__":
    main()
