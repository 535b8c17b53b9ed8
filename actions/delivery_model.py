"""What delivery is made of: the report, the test hooks, and the back-end protocol.

A back end (Slack, a CRM's tasks, an email provider) delivers *batches*: ``send_batch`` takes
up to ``batch_size`` intents sharing a ``batch_key`` and answers an outcome per key (the
vendor's id, or the exception saying what happened to that item — see
``connectors.outbound``); an exception it raises applies to the whole batch. A reconcilable
back end also answers ``find_many``: for each key it could check, the vendor's id or None
(proven absent); a key it could not check is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from connectors.outbound import Outcome
from store.models import ActionLog

STUCK_SENDING = timedelta(minutes=10)
LABELS = {"slack": "Slack alerts", "task": "CSM tasks", "email_send": "emails"}


@dataclass
class DeliveryReport:
    sent: int = 0  # Slack messages (alerts and digests)
    tasks_created: int = 0
    emails_sent: int = 0
    emails_skipped: int = 0
    retry_later: int = 0
    failed: int = 0
    unknown: int = 0
    reconciled: int = 0  # delivered before, found at the vendor by key, recorded now
    errors: list[str] = field(default_factory=list)


class WorkerKilled(BaseException):
    """Raised from a delivery hook to stop a worker dead: nothing after it is recorded
    (``except Exception`` does not catch it), exactly as if the process had been killed."""


@dataclass
class DeliveryHooks:
    """Test and chaos points between the stages of one delivery. Both are called per item;
    a batch is claimed before its ``before_send`` calls and recorded after its
    ``after_accept`` calls, so a kill in either leaves the whole batch ``sending``."""

    before_send: Callable[[ActionLog], None] | None = None  # intent claimed, not yet sent
    after_accept: Callable[[ActionLog, str], None] | None = None  # vendor accepted, unrecorded


class Handler(Protocol):
    kind: str
    reconcilable: bool
    batch_size: int

    def send_batch(self, actions: list[ActionLog]) -> dict[str, Outcome]: ...

    def find_many(self, actions: list[ActionLog]) -> dict[str, str | None]: ...


def batch_key(handler: Any, action: ActionLog) -> Hashable:
    """What must be equal within one of ``handler``'s requests (None: anything goes)."""
    key = getattr(handler, "batch_key", None)
    return None if key is None else key(action)


def destination(handler: Any, action: ActionLog) -> Hashable:
    """Where a refusal of the credentials or a rate limit applies: the rest of it waits."""
    of = getattr(handler, "destination", None)
    return handler.kind if of is None else of(action)


class OneByOne:
    """A back end with only ``send(action)`` / ``find(action)`` (a plugin's task back end,
    say), delivered one intent a batch."""

    batch_size = 1

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.reconcilable = inner.reconcilable
        if hasattr(inner, "prepare"):
            self.prepare = inner.prepare

    def send_batch(self, actions: list[ActionLog]) -> dict[str, Outcome]:
        return {a.key: self.inner.send(a) for a in actions}

    def find_many(self, actions: list[ActionLog]) -> dict[str, str | None]:
        return {a.key: self.inner.find(a) for a in actions}


def batched(handler: Any) -> Handler:
    """``handler`` itself when it delivers batches, else wrapped one by one."""
    return handler if hasattr(handler, "send_batch") else OneByOne(handler)
