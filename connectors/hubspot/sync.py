"""HubSpot as a second CRM: pull companies, match them to accounts, mirror health fields.

Companies are matched to the record CRM's accounts by the account id kept on the company
(``account_id_property``), else by domain. A matched company gives its account signals
(source ``hubspot``) and a key ``hubspot:company`` that the write-back uses; an unmatched or
ambiguous one is logged in the unmatched-records table with the reason. With
``override_properties`` a CSM's override set on a matched company (or, as CRM of record, on the
company itself) goes through the override policy (the sync context's ``overrides``), origin
``hubspot``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.hubspot import CompanyRecord, CompanySync, HubSpotClient, pull_companies
from connectors.hubspot.companies import archived_ids, parse_hubspot_time
from connectors.hubspot.config import HubSpotOverrideProperties, HubSpotSource
from connectors.hubspot.related import Owner
from connectors.identity import ACCOUNT, DOMAIN, IdentityIndex, Match, domain_of
from healthscore.core.errors import SkippableRecord
from store import AccountRow, SignalRow, Store

log = logging.getLogger(__name__)

SOURCE = "hubspot"
COMPANY_KEY = "hubspot:company"
OBJECT = "companies"


@dataclass
class HubSpotSyncReport:
    records: int = 0
    matched: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    skipped: int = 0
    signals_changed: int = 0
    requests: int = 0
    archived: int = 0  # archived companies seen by the deleted-records check
    cursor: str | None = None
    skipped_ids: list[str] = field(default_factory=list)
    overrides: dict[str, int] = field(default_factory=dict)  # applied / refused / cleared


def metric_value(raw: str | None, prop: str) -> float | None:
    """HubSpot property values are strings: numbers, ``true``/``false`` or dates."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    if text.lower() in ("true", "false"):
        return 1.0 if text.lower() == "true" else 0.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = parse_hubspot_time(text)
    except ValueError:
        stamp = None
    if stamp is None:
        raise SkippableRecord("", f"{prop}={raw!r} is not a number, boolean or date")
    return stamp.timestamp()


NUMBER_ROLES = ("score", "churn_risk", "arr_at_risk")  # read back as floats


def crm_values(
    company: CompanyRecord, source: HubSpotSource, churn_roles: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The health fields as HubSpot holds them, in the types the write-back compares (the
    churn ones only when the card's churn model fills them: ``churn_roles``)."""
    out: dict[str, Any] = {}
    for role, prop in source.write_back.roles(churn_roles).items():
        value = company.properties.get(prop) or None
        if role in NUMBER_ROLES and value is not None:
            try:
                value = float(value)
            except ValueError:
                value = None
        if role == "stale":
            value = value == "true"
        out[role] = value
    return out


def company_override(
    company: CompanyRecord,
    names: HubSpotOverrideProperties,
    owners: Mapping[str, Owner] | None = None,
) -> dict[str, Any]:
    """A company's override properties as values for ``record_crm_overrides``: the set-at
    date-time parsed, the until date read as the end of that day, an owner id as ``by``
    resolved to the owner's email (a bad date is None: the override is skipped and logged)."""
    out: dict[str, Any] = {
        role: company.properties.get(prop) or None for role, prop in names.roles().items()
    }
    try:
        out["set_at"] = parse_hubspot_time(out["set_at"])
    except ValueError:
        out["set_at"] = None
    try:  # a date property: the override lasts through that day
        text = str(out["until"] or "")
        day = parse_hubspot_time(text if text.isdigit() else text[:10])
        out["until"] = (
            None
            if day is None
            else day.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            + timedelta(days=1)
        )
    except ValueError:
        out["until"] = None
    by = str(out["by"] or "").strip()
    owner = (owners or {}).get(by) if by.isdigit() else None
    out["by"] = owner.email if owner is not None else by or None
    return out


def _keep_override(have: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Several companies matched to one account: one holding an override beats one without;
    between equals the newer set-at wins (an emptied one that was set beats one never set)."""
    if have is None:
        return True
    if bool(new["grade"]) != bool(have["grade"]):
        return bool(new["grade"])
    return (new["set_at"] or datetime.min.replace(tzinfo=UTC)) > (
        have["set_at"] or datetime.min.replace(tzinfo=UTC)
    )


def _shared_emptied(
    overrides_in_force: Any,
    overrides: dict[str, dict[str, Any]],
    companies_of: Mapping[str, set[str]],
    now: datetime,
) -> list[str]:
    """Accounts whose emptied override comes from one of *several* matched companies and
    is older than the override in force: another company set that one, keep it."""
    shared = [
        a for a, o in overrides.items() if not o["grade"] and len(companies_of.get(a, ())) > 1
    ]
    if not shared:
        return []
    active = overrides_in_force.active(now, shared)
    return [
        a
        for a in shared
        if a in active
        and (overrides[a]["set_at"] is None or overrides[a]["set_at"] < active[a].set_at)
    ]


ARCHIVED_CHECK = "companies:archived-check"


def _deleted_check_due(store: Store, source: HubSpotSource, now: datetime) -> bool:
    last = store.cursor(SOURCE, ARCHIVED_CHECK)
    return last is None or now - datetime.fromisoformat(last) >= source.deleted_check_every


def _drop_archived(client: HubSpotClient, source: HubSpotSource, store: Store) -> int:
    """Forget archived companies: their keys, and (as CRM of record) their accounts."""
    count = 0
    for page in archived_ids(client, "companies"):
        ids = [record_id for record_id, _archived_at in page]
        store.drop_account_keys(COMPANY_KEY, ids)
        if source.record_system:
            store.mark_accounts_deleted(ids)
        count += len(ids)
    return count


def account_row(
    company: CompanyRecord, source: HubSpotSource, owners: Mapping[str, Owner] | None = None
) -> AccountRow:
    """A company as an account, when HubSpot is the CRM of record."""
    name = (company.properties.get("name") or "").strip() or f"Company {company.id}"
    owner = (owners or {}).get(str(company.properties.get("hubspot_owner_id") or ""))
    return AccountRow(
        id=company.id,
        crm=SOURCE,
        name=name,
        owner_email=owner.email if owner else None,
        owner_name=owner.name if owner else None,
        attributes={a: company.properties.get(p) for a, p in source.attributes.items()},
    )


FLUSH_EVERY = 2000  # companies matched between two writes of what they brought


@dataclass
class _Batch:
    """What the companies read since the last write will store."""

    signals: list[SignalRow] = field(default_factory=list)
    keys: dict[str, list[str]] = field(default_factory=dict)
    remembered: dict[str, dict[str, Any]] = field(default_factory=dict)
    unmatched: dict[str, tuple[str, str]] = field(default_factory=dict)
    matched_ids: list[str] = field(default_factory=list)
    accounts_seen: list[AccountRow] = field(default_factory=list)
    domains: dict[str, list[str]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)

    def size(self) -> int:
        return len(self.matched_ids) + len(self.unmatched)


def sync_hubspot(
    client: HubSpotClient,
    source: HubSpotSource,
    store: Store,
    since: datetime | None,
    started: datetime,
    progress: Callable[[int], None] | None = None,
    owners: Mapping[str, Owner] | None = None,
    overrides_sink: Any = None,
    churn_roles: tuple[str, ...] = (),
) -> tuple[HubSpotSyncReport, datetime | None]:
    """Pull companies modified since ``since`` and match them; with ``overrides_sink`` and
    ``source.override_properties`` the CSM overrides they carry are recorded too."""
    accounts = store.account_ids()
    index = IdentityIndex(store.account_keys(DOMAIN), account_ids=accounts)
    state = CompanySync()
    report = HubSpotSyncReport()
    companies_of: dict[str, set[str]] = {}  # account → matched companies (override clears)
    if (
        overrides_sink is not None
        and source.override_properties is not None
        and not source.record_system
    ):
        for _kind, company_id, account_id in store.account_keys(COMPANY_KEY):
            companies_of.setdefault(account_id, set()).add(company_id)
    batch = _Batch()

    def flush() -> None:
        nonlocal batch
        done, batch = batch, _Batch()
        if done.accounts_seen:
            store.upsert_accounts(done.accounts_seen)
            store.set_account_keys(DOMAIN, done.domains)
        report.signals_changed += store.record_signals(done.signals)
        store.set_account_keys(COMPANY_KEY, done.keys)
        if done.merged:  # after the keys above: a merged-away company keeps none
            store.drop_account_keys(COMPANY_KEY, done.merged)
            if source.record_system:  # merged away: those accounts are gone
                store.mark_accounts_deleted(done.merged)
        store.remember_crm_values(SOURCE, done.remembered)
        store.record_unmatched(SOURCE, OBJECT, done.unmatched, matched=done.matched_ids)
        overrides = done.overrides
        if overrides_sink is not None and overrides:
            for account_id in _shared_emptied(overrides_sink, overrides, companies_of, started):
                del overrides[account_id]
            counts = overrides_sink.record(SOURCE, overrides, started)
            report.overrides = dict(Counter(report.overrides) + Counter(counts))

    for page in pull_companies(client, source, since, state, started=started):
        for company in page:
            if source.record_system:  # the company is the account
                match = Match(company.id, "record")
                batch.accounts_seen.append(account_row(company, source, owners))
                domain = domain_of(company.domain)
                batch.domains[company.id] = [domain] if domain else []
            else:
                external = (
                    [(ACCOUNT, company.properties.get(source.account_id_property))]
                    if source.account_id_property
                    else []
                )
                match = index.resolve(external=external, domains=[company.domain])
            if not match.matched:
                batch.unmatched[company.id] = (match.reason, match.detail)
                if match.reason == "ambiguous":
                    report.ambiguous += 1
                else:
                    report.unmatched += 1
                continue
            account_id = match.account_id
            assert account_id is not None
            try:
                values = {
                    metric: metric_value(company.properties.get(prop), prop)
                    for metric, prop in source.metrics.items()
                }
            except SkippableRecord as exc:
                log.warning("HubSpot company %s skipped: %s", company.id, exc.reason)
                report.skipped += 1
                report.skipped_ids.append(company.id)
                continue
            batch.signals += [
                SignalRow(account_id, metric, value, company.modified, SOURCE)
                for metric, value in values.items()
            ]
            batch.keys.setdefault(account_id, []).append(company.id)
            batch.remembered[account_id] = crm_values(company, source, churn_roles)
            batch.matched_ids.append(company.id)
            report.matched += 1
            if source.override_properties is not None:
                companies_of.setdefault(account_id, set()).add(company.id)
                found = company_override(company, source.override_properties, owners)
                if _keep_override(batch.overrides.get(account_id), found):
                    batch.overrides[account_id] = found
            batch.merged += company.merged_ids
        if batch.size() >= FLUSH_EVERY:  # a page holds only 100 companies
            flush()
        if progress is not None:
            progress(len(page))
    flush()
    report.records, report.requests = state.records, state.requests
    if since is None or _deleted_check_due(store, source, started):
        report.archived = _drop_archived(client, source, store)
        store.set_cursor(SOURCE, ARCHIVED_CHECK, started.isoformat())
    if report.unmatched or report.ambiguous:
        log.warning(
            "HubSpot: %d companies matched no account, %d matched several "
            "(`healthscore sources --unmatched` lists them)",
            report.unmatched,
            report.ambiguous,
        )
    return report, state.cursor
