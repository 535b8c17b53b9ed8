"""HubSpot as a second CRM: pull companies, match them to accounts, mirror health fields.

Companies are matched to the CRM's accounts (Salesforce) by the account id kept on the company
(``account_id_property``), else by domain. A matched company gives its account signals
(source ``hubspot``) and a key ``hubspot:company`` that the write-back uses; an unmatched or
ambiguous one is logged in the unmatched-records table with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.hubspot import CompanyRecord, CompanySync, HubSpotClient, pull_companies
from connectors.hubspot.companies import archived_ids, parse_hubspot_time
from connectors.hubspot.related import Owner
from connectors.identity import ACCOUNT, DOMAIN, IdentityIndex, Match, domain_of
from store import AccountRow, SignalRow, Store

from .config import HubSpotSource
from .errors import SkippableRecord

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


def crm_values(company: CompanyRecord, source: HubSpotSource) -> dict[str, Any]:
    """The health fields as HubSpot holds them, in the types the write-back compares."""
    out: dict[str, Any] = {}
    for role, prop in source.write_back.roles().items():
        value = company.properties.get(prop) or None
        if role == "score" and value is not None:
            try:
                value = float(value)
            except ValueError:
                value = None
        if role == "stale":
            value = value == "true"
        out[role] = value
    return out


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


def account_row(company: CompanyRecord, source: HubSpotSource,
                owners: Mapping[str, Owner] | None = None) -> AccountRow:
    """A company as an account, when HubSpot is the CRM of record."""
    name = (company.properties.get("name") or "").strip() or f"Company {company.id}"
    owner = (owners or {}).get(str(company.properties.get("hubspot_owner_id") or ""))
    return AccountRow(
        id=company.id, crm=SOURCE, name=name,
        owner_email=owner.email if owner else None, owner_name=owner.name if owner else None,
        attributes={a: company.properties.get(p) for a, p in source.attributes.items()})


def sync_hubspot(client: HubSpotClient, source: HubSpotSource, store: Store,
                 since: datetime | None, started: datetime,
                 progress: Callable[[int], None] | None = None,
                 owners: Mapping[str, Owner] | None = None,
                 ) -> tuple[HubSpotSyncReport, datetime | None]:
    accounts = store.account_ids()
    index = IdentityIndex(store.account_keys(DOMAIN), account_ids=accounts)
    state = CompanySync()
    report = HubSpotSyncReport()
    for page in pull_companies(client, source, since, state, started=started):
        signals: list[SignalRow] = []
        keys: dict[str, list[str]] = {}
        remembered: dict[str, dict[str, Any]] = {}
        unmatched: dict[str, tuple[str, str]] = {}
        matched_ids: list[str] = []
        accounts_seen: list[AccountRow] = []
        domains: dict[str, list[str]] = {}
        for company in page:
            if source.record_system:  # the company is the account
                match = Match(company.id, "record")
                accounts_seen.append(account_row(company, source, owners))
                domain = domain_of(company.domain)
                domains[company.id] = [domain] if domain else []
            else:
                external = [(ACCOUNT, company.properties.get(source.account_id_property))] \
                    if source.account_id_property else []
                match = index.resolve(external=external, domains=[company.domain])
            if not match.matched:
                unmatched[company.id] = (match.reason, match.detail)
                if match.reason == "ambiguous":
                    report.ambiguous += 1
                else:
                    report.unmatched += 1
                continue
            account_id = match.account_id
            assert account_id is not None
            try:
                values = {metric: metric_value(company.properties.get(prop), prop)
                          for metric, prop in source.metrics.items()}
            except SkippableRecord as exc:
                log.warning("HubSpot company %s skipped: %s", company.id, exc.reason)
                report.skipped += 1
                report.skipped_ids.append(company.id)
                continue
            signals += [SignalRow(account_id, metric, value, company.modified, SOURCE)
                        for metric, value in values.items()]
            keys.setdefault(account_id, []).append(company.id)
            remembered[account_id] = crm_values(company, source)
            matched_ids.append(company.id)
            report.matched += 1
            if company.merged_ids:
                store.drop_account_keys(COMPANY_KEY, company.merged_ids)
                if source.record_system:  # merged away: those accounts are gone
                    store.mark_accounts_deleted(company.merged_ids)
        if accounts_seen:
            store.upsert_accounts(accounts_seen)
            store.set_account_keys(DOMAIN, domains)
        report.signals_changed += store.record_signals(signals)
        store.set_account_keys(COMPANY_KEY, keys)
        store.remember_crm_values(SOURCE, remembered)
        store.record_unmatched(SOURCE, OBJECT, unmatched, matched=matched_ids)
        if progress is not None:
            progress(len(page))
    report.records, report.requests = state.records, state.requests
    if since is None or _deleted_check_due(store, source, started):
        report.archived = _drop_archived(client, source, store)
        store.set_cursor(SOURCE, ARCHIVED_CHECK, started.isoformat())
    if report.unmatched or report.ambiguous:
        log.warning("HubSpot: %d companies matched no account, %d matched several "
                    "(`healthscore sources --unmatched` lists them)", report.unmatched,
                    report.ambiguous)
    return report, state.cursor
