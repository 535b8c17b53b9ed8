"""Deterministic fault injection for the emulators.

A :class:`FaultPlan` is a list of rules consulted (in insertion order) for every request an
emulator receives.  The first rule that *fires* wins: a rule fires when its method and path
match and, for ``share`` rules, when its seeded random draw says so.  What a fault looks like
on the wire (status, headers, body) is decided by the vendor emulator, not here, except for
``timeout``: the request is served, then the connection is closed without an answer — the
client cannot tell whether it went through, as after a real read timeout.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass
from typing import Literal, get_args

FaultKind = Literal["rate_limit", "server_error", "slow", "expired_session", "timeout"]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))


@dataclass(frozen=True)
class Fault:
    """A fault chosen for one request."""

    kind: str
    delay: float = 0.0


@dataclass
class _Rule:
    kind: str
    method: str | None
    path: re.Pattern[str] | None
    remaining: int | None
    share: float | None
    rng: random.Random
    delay: float

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or self.path.search(path) is not None


class FaultPlan:
    """Thread-safe, seeded list of fault rules."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def add(
        self,
        kind: str,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int | None = None,
        share: float | None = None,
        seed: int = 0,
        delay: float = 0.0,
        first: bool = False,
    ) -> FaultPlan:
        """Add a rule; returns the plan so calls can be chained.

        ``times=N``: the next N matching requests get the fault, then the rule is spent.
        ``share=p``: each matching request gets the fault with probability p, drawn from
        ``random.Random(seed)`` (deterministic for a given request sequence).
        Neither: every matching request gets the fault.  Both: at most N faults, each drawn
        with probability p.  ``delay`` seconds are slept before answering for any kind, so
        ``server_error`` with a delay is a slow failure; ``slow`` then serves normally;
        ``timeout`` serves the request and drops the answer. ``first``: consulted before
        the rules already there (a slow point that must win over a share of errors).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times is not None and times < 0:
            raise ValueError("times must be >= 0")
        if share is not None and not 0.0 <= share <= 1.0:
            raise ValueError("share must be within [0, 1]")
        if delay < 0:
            raise ValueError("delay must be >= 0")
        rule = _Rule(
            kind=kind,
            method=method.upper() if method else None,
            path=re.compile(path) if path is not None else None,
            remaining=times,
            share=share,
            rng=random.Random(seed),
            delay=float(delay),
        )
        with self._lock:
            self._rules.insert(0 if first else len(self._rules), rule)
        return self

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        """Return the fault for this request, consuming one use of the rule that fired."""
        with self._lock:
            for rule in self._rules:
                if rule.remaining == 0 or not rule.matches(method, path):
                    continue
                if rule.share is not None and rule.rng.random() >= rule.share:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return Fault(kind=rule.kind, delay=rule.delay)
        return None

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for rule in self._rules if rule.remaining != 0)
