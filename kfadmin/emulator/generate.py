"""Bulk history: millions of records of plausible dialogues in a few seconds.

Speed comes from precomputing a pool of rendered dialogue "shapes" (opercodes,
texts, time offsets) once, then stamping shapes at random start times with
``list.extend``; texts are shared string objects, so a million records hold only a
few thousand distinct strings. One stable sort puts the result in time order.
"""

from __future__ import annotations

import random
from array import array
from dataclasses import dataclass

from .dialogues import pick_follow_up, pick_template, render
from .records import RecordStore

SHAPE_POOL = 400


@dataclass(frozen=True)
class Shape:
    opercodes: tuple[int, ...]
    uses_worker: tuple[bool, ...]
    texts: tuple[str, ...]
    offsets: tuple[int, ...]

    @property
    def duration(self) -> int:
        return self.offsets[-1]


FOLLOW_UP_SHARE = 0.08


def _make_shape(rng: random.Random) -> Shape:
    if rng.random() < FOLLOW_UP_SHARE:
        # An agent-initiated follow-up (opercode 1002): one message, then closed.
        follow_up = pick_follow_up(rng, english=rng.random() < 0.25)
        return Shape(
            (1002, 2002, 1004),
            (True, True, True),
            ("", follow_up, ""),
            (0, rng.randint(5, 40), rng.randint(60, 300)),
        )
    lines = pick_template(rng)
    opercodes: list[int] = []
    uses: list[bool] = []
    texts: list[str] = []
    offsets: list[int] = []
    t = 0

    def add(op: int, worker: bool, text: str, gap: int) -> None:
        nonlocal t
        t += gap
        opercodes.append(op)
        uses.append(worker)
        texts.append(text)
        offsets.append(t)

    # The customer writes to the OA, waits in the queue, an agent accepts.
    add(2001, False, render(lines[0][1], rng), 0)
    add(1000, False, "", 0)
    add(1001, True, "", rng.randint(5, 240))
    for role, text in lines[1:]:
        add(2003 if role == "c" else 2002, True, render(text, rng), rng.randint(8, 150))
    add(1004, True, "", rng.randint(30, 600))
    return Shape(tuple(opercodes), tuple(uses), tuple(texts), tuple(offsets))


def generate(
    store: RecordStore,
    *,
    count: int,
    start: int,
    end: int,
    workers: list[str],
    openids: list[str],
    seed: int,
) -> None:
    rng = random.Random(seed)
    shapes = [_make_shape(rng) for _ in range(SHAPE_POOL)]
    worker_names = ["", *workers]  # index 0: records not tied to an agent (2001, 1000)
    span = end - start
    n_workers = len(workers)
    n_openids = len(openids)

    # Typed arrays rather than lists: a million boxed ints per column would triple the peak.
    times = array("q")
    opercodes = array("H")
    worker_idx = array("I")
    openid_idx = array("I")
    texts: list[str] = []
    rand = rng.random
    produced = 0
    while produced < count:
        shape = shapes[int(rand() * SHAPE_POOL)]
        take = min(len(shape.offsets), count - produced)
        t0 = start + int(rand() * max(0, span - shape.duration + 1))
        w = 1 + int(rand() * n_workers)
        o = int(rand() * n_openids)
        offsets = shape.offsets[:take] if take < len(shape.offsets) else shape.offsets
        times.extend([min(end, t0 + off) for off in offsets])
        opercodes.extend(shape.opercodes[:take])
        worker_idx.extend([w if u else 0 for u in shape.uses_worker[:take]])
        openid_idx.extend([o] * take)
        texts.extend(shape.texts[:take])
        produced += take

    # Dialogues overlap in time; order everything once (stable: keeps dialogue order on ties).
    order = sorted(range(len(times)), key=times.__getitem__)
    store.extend(
        times=array("q", map(times.__getitem__, order)),
        opercodes=array("H", map(opercodes.__getitem__, order)),
        worker_idx=array("I", map(worker_idx.__getitem__, order)),
        worker_names=worker_names,
        openid_idx=array("I", map(openid_idx.__getitem__, order)),
        openid_names=openids,
        texts=list(map(texts.__getitem__, order)),
    )
