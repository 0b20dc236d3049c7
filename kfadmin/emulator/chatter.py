"""Customers who keep writing, for the demo (`--chatter SECONDS`).

Every so often one customer already in a session writes a line (WeChat hands it to
the serving agent's kf client and pushes nothing to the callback URL, as in real
life), so kfadmin's live tail has something to bring in; now and then a new customer
writes to the official account and joins the queue. Off unless asked for: tests and
benchmarks want a quiet emulator.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from .core import Emulator
from .dialogues import pick_template, render
from .errors import ControlError

logger = logging.getLogger(__name__)

# Of each turn: the share that brings a new customer to the queue instead.
NEW_CUSTOMER_SHARE = 0.15


class Chatter:
    """A daemon thread playing customers of one official account every `every` s
    (with ±50 % jitter, so it does not tick in step with kfadmin's tail)."""

    def __init__(self, emulator: Emulator, *, appid: str, every: float, seed: int = 7) -> None:
        if every <= 0:
            raise ValueError("every must be positive")
        self.emulator = emulator
        self.appid = appid
        self.every = every
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-chatter", daemon=True)

    def start(self) -> Chatter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def turn(self) -> dict[str, Any] | None:
        """One customer writes: someone in a session, or now and then a newcomer."""
        oa = self.emulator.state(appid=self.appid, customers=True)["official_accounts"][0]
        queued = {q["openid"] for q in oa["queue"]}
        in_session = sorted(s["openid"] for s in oa["sessions"])
        idle = sorted(
            c["openid"] for c in oa["customers"]
            if c["subscribed"] and not c["kf_account"] and c["openid"] not in queued
        )
        lines = [text for role, text in pick_template(self._rng) if role == "c"]
        text = render(self._rng.choice(lines), self._rng)
        if in_session and (not idle or self._rng.random() >= NEW_CUSTOMER_SHARE):
            openid = self._rng.choice(in_session)
        elif idle:
            openid = self._rng.choice(idle)
        else:
            return None
        return self.emulator.customer_writes(appid=self.appid, openid=openid, text=text)

    def _run(self) -> None:
        while not self._stop.wait(self.every * self._rng.uniform(0.5, 1.5)):
            try:
                wrote = self.turn()
            except ControlError as exc:  # e.g. the account was reset meanwhile
                logger.warning("chatter: %s", exc)
                continue
            if wrote:
                logger.info(
                    "chatter: %s wrote%s", wrote["openid"],
                    f" to {wrote['kf_account']} (in session, not pushed)" if wrote["kf_account"] else " (queued)",
                )
