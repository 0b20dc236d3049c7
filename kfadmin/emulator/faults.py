"""Injected faults: what a flaky WeChat looks like to a client.

A rule fires either on each of the next N matching calls (``next``) or with a
probability (``rate``), or both (each of the next N calls fires with ``rate``).
Rules apply to WeChat API paths only, never to ``/__emulator__/``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .errors import ControlError

KINDS = ("errcode", "http", "slow", "drop", "invalidate_token")


@dataclass
class FaultRule:
    id: int
    kind: str
    rate: float = 1.0
    next: int | None = None
    path_prefix: str = ""
    errcode: int = -1
    status: int = 500
    delay: float = 1.0
    fired: int = 0

    def matches(self, path: str) -> bool:
        return path.startswith(self.path_prefix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "rate": self.rate,
            "next": self.next,
            "path_prefix": self.path_prefix,
            "errcode": self.errcode,
            "status": self.status,
            "delay": self.delay,
            "fired": self.fired,
        }


@dataclass
class FaultDecision:
    """What the server must do for one call; several slow rules add up."""

    delay: float = 0.0
    drop: bool = False
    errcode: int | None = None
    status: int | None = None
    invalidate_token: bool = False
    fired: list[int] = field(default_factory=list)


class FaultSet:
    def __init__(self, seed: int = 0) -> None:
        self._rules: list[FaultRule] = []
        self._next_id = 1
        # Seeded so a test that sets rate=0.5 sees the same sequence on every run.
        self._rng = random.Random(seed)
        self._seed = seed

    def add(
        self,
        *,
        kind: str,
        rate: float | None = None,
        next: int | None = None,
        path_prefix: str = "",
        errcode: int = -1,
        status: int = 500,
        delay: float = 1.0,
    ) -> FaultRule:
        if kind not in KINDS:
            raise ControlError(400, f"kind must be one of {', '.join(KINDS)}")
        if rate is None:
            rate = 1.0
        if not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
            raise ControlError(400, "rate must be between 0 and 1")
        if next is not None and (not isinstance(next, int) or next < 1):
            raise ControlError(400, "next must be a positive integer")
        if kind == "http" and not (isinstance(status, int) and 400 <= status <= 599):
            raise ControlError(400, "status must be an HTTP error status (400..599)")
        if kind == "slow" and not (isinstance(delay, int | float) and 0 <= delay <= 600):
            raise ControlError(400, "delay must be 0..600 seconds")
        if not isinstance(errcode, int):
            raise ControlError(400, "errcode must be an integer")
        rule = FaultRule(
            id=self._next_id,
            kind=kind,
            rate=float(rate),
            next=next,
            path_prefix=path_prefix or "",
            errcode=errcode,
            status=status,
            delay=float(delay),
        )
        self._next_id += 1
        self._rules.append(rule)
        return rule

    def clear(self) -> None:
        self._rules.clear()
        self._rng = random.Random(self._seed)

    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def decide(self, path: str, *, token_endpoint: bool = False) -> FaultDecision:
        decision = FaultDecision()
        for rule in list(self._rules):
            if not rule.matches(path):
                continue
            if rule.kind == "invalidate_token" and token_endpoint:
                continue  # a token fetch carries no token to invalidate; keep the count
            if rule.next is not None:
                rule.next -= 1
                if rule.next <= 0:
                    self._rules.remove(rule)
            if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                continue
            rule.fired += 1
            decision.fired.append(rule.id)
            if rule.kind == "slow":
                decision.delay += rule.delay
                continue
            if decision.drop or decision.errcode is not None or decision.status is not None:
                continue  # an earlier terminal rule already decided this call
            if rule.kind == "drop":
                decision.drop = True
            elif rule.kind == "errcode":
                decision.errcode = rule.errcode
            elif rule.kind == "http":
                decision.status = rule.status
            elif rule.kind == "invalidate_token":
                decision.invalidate_token = True
        return decision
