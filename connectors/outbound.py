"""What every delivery back end shares: the recipient, the outcomes a send can have, and the
text of a CSM task rendered from its intent. Vendor packages implement the senders and task
back ends; ``actions/`` decides what to deliver and records each outcome.

Back ends deliver in batches (one vendor request for many intents). A batch's answer is an
``Outcome`` per key: the vendor's id, or the exception saying what happened to *that* item —
``Rejected`` (skip it), a ``FatalError`` (failed, the item's fault), a ``RetriableError`` (try
again later), ``OutcomeUnknown`` (may have gone through). A key missing from the answer is
unknown. An exception *raised* by a batch call applies to every item of the batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from healthscore.core.durations import parse_duration
from healthscore.core.errors import RetriableError
from store.models import ActionLog

T = TypeVar("T")


class OutcomeUnknown(Exception):
    """The request may or may not have been accepted (timeout, connection lost mid-answer)."""


class Rejected(Exception):
    """The provider refused this recipient (unsubscribed, bounced): skip it, do not retry."""


class Unreachable(RetriableError):
    """Nothing reached the provider (refused, DNS, TLS, connect timeout): a write that failed
    this way was not applied, so it is safe to retry at once, unlike a 5xx or a lost answer."""


@dataclass(frozen=True)
class Contact:
    id: str
    email: str
    first_name: str
    role: str
    opted_out: bool
    source: str


@dataclass(frozen=True)
class OutgoingEmail:
    """One email of a batch; its intent's ``key`` rides with it to the provider."""

    key: str
    to: Contact
    template: str
    data: dict[str, Any]
    account_id: str
    subject: str | None = None


Outcome = str | Exception  # the vendor's id for the item, or what happened to it instead


def send_in_parts(
    parts: Sequence[list[OutgoingEmail]],
    send_part: Callable[[list[OutgoingEmail]], dict[str, Outcome]],
) -> dict[str, Outcome]:
    """An outcome per key over several requests: the error of a lone request is raised (it
    is every item's, the destination's); a later request's error is its own items'."""
    if len(parts) == 1:
        return send_part(parts[0])
    out: dict[str, Outcome] = {}
    for part in parts:
        try:
            out.update(send_part(part))
        except Exception as exc:  # this request's items keep its error
            out.update({e.key: exc for e in part})
    return out


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """``items`` in consecutive lists of at most ``size`` (a vendor's batch limit)."""
    for start in range(0, len(items), max(1, size)):
        yield list(items[start : start + max(1, size)])


def truthy(v: Any) -> bool:
    return v is True or str(v).lower() == "true"


def transport_error(exc: httpx.HTTPError, what: str) -> Exception:
    """A failed write's transport error: ``Unreachable`` when nothing left the host, else
    ``OutcomeUnknown`` (the provider may have acted on it; never blindly re-sent)."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):  # nothing left the host
        return Unreachable(f"{what}: unreachable ({exc.__class__.__name__})")
    return OutcomeUnknown(f"{what}: {exc.__class__.__name__}: {exc}")


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(template: str, payload: dict[str, Any]) -> str:
    """Fill a rule's template (placeholders were checked at load) from an intent's payload."""
    values = _Blank({k: v for k, v in payload.items() if v is not None})
    if isinstance(payload.get("reasons"), list):
        values["reasons"] = "; ".join(map(str, payload["reasons"]))
    if isinstance(payload.get("score"), float):
        values["score"] = f"{payload['score']:.0f}"
    return template.format_map(values)


def task_fields(action: ActionLog) -> tuple[str, str, str, str]:
    """(subject, description, due date, priority) of a task intent."""
    spec = action.payload.get("task") or {}
    subject = render(str(spec.get("subject", "{name}")), action.payload)[:255]
    description = render(str(spec.get("description", "")), action.payload)[:32000]
    due = action.created_at + parse_duration(spec.get("due_in", "3d"))
    return subject, description, due.date().isoformat(), str(spec.get("priority", "Normal"))
