"""Email engagement per account, from per-recipient facts (any email platform).

Every email source keeps, per account, small *facts* in the store's ``source_records``: one
per message sent to one recipient (or per event about it), and one per suppression
(a bounced or unsubscribed address). ``engagement`` folds an account's facts into its
signals — the same rules for every email platform:

- a *message* is one email to one recipient; its facts are merged by ``message`` id (flags
  OR-ed, the earliest time kept), so a webhook event and an activity read of the same message
  count once;
- the window is the last 90 days by the message's time (its first event, or the campaign's
  send time), counted from 00:00 UTC: it starts at midnight 90 days before ``now``'s UTC day
  (``window_start``), so it moves once a day, not with each sync. (A sync recomputes only the
  accounts it re-read; a window cut at ``now - 90 days`` to the second gave those accounts,
  and only those, another window minutes later: their signals changed on unchanged data.);
- ``open_rate_90d`` = opened / delivered and ``click_rate_90d`` = clicked / delivered, over the
  window's *delivered* messages (delivered, or opened/clicked, and not bounced or dropped):
  unique opens and clicks per delivered message (a click counts as an open: images may be
  blocked). No delivered message → missing (None), not 0;
- ``bounces_90d`` / ``unsubscribes_90d`` = distinct recipient addresses that bounced /
  unsubscribed (or reported spam) in the window, from messages and suppression lists alike;
- ``recipients`` = distinct recipient addresses emailed in the window.

Signal names are the source's ``metric_prefix`` followed by these suffixes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

WINDOW = timedelta(days=90)
SUFFIXES = ("open_rate_90d", "click_rate_90d", "bounces_90d", "unsubscribes_90d", "recipients")
FLAGS = ("delivered", "opened", "clicked", "bounced", "dropped", "unsubscribed")


def window_start(now: datetime) -> datetime:
    """The window's first moment: 00:00 UTC, 90 days before ``now``'s UTC day."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - WINDOW


def metric_names(prefix: str) -> tuple[str, ...]:
    return tuple(prefix + s for s in SUFFIXES)


def parse_time(value: Any) -> datetime | None:
    """ISO-8601 text or epoch seconds → aware UTC datetime (None when empty or bad)."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float) or str(value).lstrip("-").isdigit():
            return datetime.fromtimestamp(int(value), tz=UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fact(
    message: str | None,
    email: str,
    at: datetime,
    *,
    categories: Iterable[str] = (),
    suppression: str | None = None,
    **flags: bool,
) -> dict[str, Any]:
    """The stored form of one fact (JSON-safe)."""
    out: dict[str, Any] = {"email": email.strip().lower(), "at": at.isoformat()}
    if message is not None:
        out["message"] = message
    if suppression is not None:
        out["suppression"] = suppression  # bounce | unsubscribe
    cats = sorted(set(categories))
    if cats:
        out["categories"] = cats
    out.update({k: True for k, v in flags.items() if v})
    return out


def merge_facts(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Two facts of one message → one (flags OR-ed, earliest time, categories united)."""
    if not old:
        return dict(new)
    out = {**old, **{k: v for k, v in new.items() if k not in FLAGS}}
    for flag in FLAGS:
        if old.get(flag) or new.get(flag):
            out[flag] = True
    times = [t for t in (parse_time(old.get("at")), parse_time(new.get("at"))) if t]
    if times:
        out["at"] = min(times).isoformat()
    cats = sorted(set(old.get("categories") or []) | set(new.get("categories") or []))
    if cats:
        out["categories"] = cats
    return out


def engagement(
    rows: Iterable[Mapping[str, Any]], now: datetime, prefix: str, *, categories: Iterable[str] = ()
) -> dict[str, float | None]:
    """One account's signals from its facts (see the module docstring)."""
    since = window_start(now)
    wanted = set(categories)
    messages: dict[str, list[Any]] = {}  # message → [earliest time, email, flags, categories]
    bounced: set[str] = set()
    unsubscribed: set[str] = set()
    for row in rows:
        at = parse_time(row.get("at"))
        email = row.get("email")
        if at is None or not email:
            continue
        kind = row.get("suppression")
        if kind is not None:
            if since <= at <= now:
                (bounced if kind == "bounce" else unsubscribed).add(email)
            continue
        key = row.get("message")
        if not key:
            continue
        held = messages.get(key)
        if held is None:
            held = messages[key] = [at, email, set(), set()]
        elif at < held[0]:
            held[0] = at
        held[2].update(f for f in FLAGS if row.get(f))
        held[3].update(row.get("categories") or ())
    delivered = opened = clicked = 0
    recipients: set[str] = set()
    for at, email, flags, cats in messages.values():
        if not since <= at <= now:
            continue
        if wanted and not wanted & cats:
            continue  # outside the configured categories (a message without any: too)
        recipients.add(email)
        if "bounced" in flags:
            bounced.add(email)
        if "unsubscribed" in flags:
            unsubscribed.add(email)
        if "bounced" in flags or "dropped" in flags:
            continue
        if flags & {"delivered", "opened", "clicked"}:
            delivered += 1
            opened += bool(flags & {"opened", "clicked"})
            clicked += "clicked" in flags
    return {
        prefix + "open_rate_90d": round(opened / delivered, 4) if delivered else None,
        prefix + "click_rate_90d": round(clicked / delivered, 4) if delivered else None,
        prefix + "bounces_90d": float(len(bounced)),
        prefix + "unsubscribes_90d": float(len(unsubscribed)),
        prefix + "recipients": float(len(recipients)),
    }
