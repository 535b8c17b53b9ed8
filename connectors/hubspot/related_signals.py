"""HubSpot deals, tickets and contacts → per-account signal values: how each record reads
(renewal or not, open or closed, urgent) and what an account's records add up to."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.hubspot.related import HubSpotRecord

METRICS: dict[str, tuple[str, ...]] = {
    "deals": (
        "hubspot_renewal_next_at",
        "hubspot_deals_won_365d",
        "hubspot_open_deal_amount",
        "hubspot_renewal_lost_at",
    ),
    "tickets": ("hubspot_tickets_open", "hubspot_tickets_high_open", "hubspot_tickets_30d"),
    "contacts": ("hubspot_contacts", "hubspot_email_opted_out"),
}


@dataclass(frozen=True)
class RelatedRules:
    """How deals and tickets are read; the defaults fit HubSpot's default pipelines."""

    renewal_deal_types: tuple[str, ...] = ("renewal", "existingbusiness")
    renewal_pipelines: tuple[str, ...] = ()
    renewal_name_hint: str | None = "renewal"  # used only when a deal has no dealtype
    won_stages: tuple[str, ...] = ("closedwon",)
    lost_stages: tuple[str, ...] = ("closedlost",)
    amount_property: str = "amount"
    closed_ticket_stages: tuple[str, ...] = ("4",)
    urgent_priorities: tuple[str, ...] = ("HIGH", "URGENT")
    learn_contact_domains: bool = True
    list_above: int = 10  # changes in a window above which a list walk may be cheaper


def _text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def _number(v: Any) -> float | None:
    """A number or None when empty; ValueError when something else is there."""
    text = _text(v)
    return None if not text else float(text.replace(",", ""))


def _when(v: Any) -> datetime | None:
    """A HubSpot date / datetime / epoch-ms string → aware datetime; ValueError when bad."""
    text = _text(v)
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _safe_when(v: Any) -> datetime | None:
    try:
        return _when(v)
    except ValueError:
        return None


def _safe_number(v: Any) -> float | None:
    try:
        return _number(v)
    except ValueError:
        return None


def _flag(v: Any) -> bool | None:
    text = _text(v).lower()
    return None if not text else text == "true"


def _stamp(v: datetime | None) -> float | None:
    return None if v is None else v.timestamp()


def check_record(record: HubSpotRecord, rules: RelatedRules) -> str | None:
    """Why a record cannot be used (it is then skipped and reported), or None."""
    props = record.properties
    checks: list[tuple[str, Callable[[Any], Any], str]] = [("createdate", _when, "date")]
    if record.object == "deals":
        checks += [(rules.amount_property, _number, "number"), ("closedate", _when, "date")]
    elif record.object == "tickets":
        checks += [("closed_date", _when, "date")]
    for name, parse, kind in checks:
        try:
            parse(props.get(name))
        except (TypeError, ValueError):
            return f"{name}={props.get(name)!r} is not a {kind}"
    return None


def deal_state(row: Mapping[str, Any], rules: RelatedRules) -> tuple[bool, bool]:
    """(closed, won) of a deal."""
    closed, won = _flag(row.get("hs_is_closed")), _flag(row.get("hs_is_closed_won"))
    if closed is not None:
        return closed, bool(won)
    stage = _text(row.get("dealstage")).lower()
    if stage in {s.lower() for s in rules.won_stages}:
        return True, True
    return stage in {s.lower() for s in rules.lost_stages}, False


def is_renewal(row: Mapping[str, Any], rules: RelatedRules) -> bool:
    dealtype = _text(row.get("dealtype")).lower()
    if dealtype:
        return dealtype in {t.lower() for t in rules.renewal_deal_types}
    if _text(row.get("pipeline")) in rules.renewal_pipelines:
        return True
    hint = (rules.renewal_name_hint or "").lower()
    return bool(hint) and hint in _text(row.get("dealname")).lower()


def deal_metrics(
    rows: list[dict[str, Any]], now: datetime, rules: RelatedRules
) -> dict[str, float | None]:
    year_ago = now - timedelta(days=365)
    next_renewal: datetime | None = None
    won, open_amount = 0, 0.0
    lost_renewal: datetime | None = None
    for row in rows:
        closed, is_won = deal_state(row, rules)
        close = _safe_when(row.get("closedate"))
        if (
            closed
            and not is_won
            and close is not None
            and is_renewal(row, rules)
            and (lost_renewal is None or close > lost_renewal)
        ):
            lost_renewal = close
        if not closed:
            open_amount += _safe_number(row.get(rules.amount_property)) or 0.0
            if (
                is_renewal(row, rules)
                and close is not None
                and (next_renewal is None or close < next_renewal)
            ):
                next_renewal = close
        elif is_won and close is not None and close >= year_ago:
            won += 1
    return {
        "hubspot_renewal_next_at": _stamp(next_renewal),
        "hubspot_deals_won_365d": float(won),
        "hubspot_open_deal_amount": open_amount,
        "hubspot_renewal_lost_at": _stamp(lost_renewal),
    }


def ticket_metrics(
    rows: list[dict[str, Any]], now: datetime, rules: RelatedRules
) -> dict[str, float | None]:
    closed_stages = set(rules.closed_ticket_stages)
    urgent = {p.upper() for p in rules.urgent_priorities}
    month_ago = now - timedelta(days=30)
    open_rows = [
        r
        for r in rows
        if not _text(r.get("closed_date"))
        and _text(r.get("hs_pipeline_stage")) not in closed_stages
    ]
    recent = [
        r
        for r in rows
        if (_safe_when(r.get("createdate")) or month_ago - timedelta(days=1)) >= month_ago
    ]
    return {
        "hubspot_tickets_open": float(len(open_rows)),
        "hubspot_tickets_high_open": float(
            sum(1 for r in open_rows if _text(r.get("hs_ticket_priority")).upper() in urgent)
        ),
        "hubspot_tickets_30d": float(len(recent)),
    }


def contact_metrics(
    rows: list[dict[str, Any]], now: datetime, rules: RelatedRules
) -> dict[str, float | None]:
    return {
        "hubspot_contacts": float(len(rows)),
        "hubspot_email_opted_out": float(sum(1 for r in rows if _flag(r.get("hs_email_optout")))),
    }
