"""The sources.hubspot and sources.hubspot_email sections."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from connectors.email.config import EmailSource
from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel as _Strict
from scoring.churn_model import CHURN_ROLES


class HubSpotWriteBack(_Strict):
    """Company properties the score is written to (`healthscore setup-crm` creates them)."""

    enabled: bool = Field(True, description="mirror the health fields onto matched companies")
    group: str = "healthscore"
    score: str = "healthscore_score"
    grade: str = "healthscore_grade"
    trend: str = "healthscore_trend"
    reasons: str = "healthscore_reasons"
    updated: str = "healthscore_updated"
    stale: str = "healthscore_stale"
    churn_risk: str = Field(
        "healthscore_churn_risk",
        description="P(churn within the horizon) in percent; only with a churn_model",
    )
    arr_at_risk: str = Field(
        "healthscore_arr_at_risk",
        description="churn probability × ARR; only with a churn_model arr_attribute",
    )

    def roles(self, churn_roles: tuple[str, ...] = ()) -> dict[str, str]:
        """Role → property: the core health properties and, of the churn ones, only
        ``churn_roles`` (those the card's churn model fills)."""
        core = ("score", "grade", "trend", "reasons", "updated", "stale")
        return {r: getattr(self, r) for r in (*core, *(r for r in CHURN_ROLES if r in churn_roles))}


class HubSpotSource(_Strict):
    """HubSpot companies: a second CRM matched to Salesforce's accounts, or (with
    ``record_system``) the CRM of record whose companies are the accounts."""

    enabled: bool = False
    record_system: bool = Field(
        False, description="companies are the accounts (turn the salesforce source off)"
    )
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="account attribute → company property (record system only)",
    )
    portal_id: int | None = Field(None, description="your HubSpot account id, for links")
    record_url: str = Field(
        "https://app.hubspot.com/contacts/{portal_id}/company/{id}",
        description="link to a company in alerts",
    )
    sync_every: Duration = timedelta(minutes=15)
    overlap: Duration = Field(
        timedelta(minutes=5), description="re-read this much before the cursor"
    )
    account_id_property: str | None = Field(
        "salesforce_account_id",
        description="company property holding the CRM account id; "
        "companies without it are matched by domain",
    )
    metrics: dict[str, str] = Field(
        default_factory=dict,
        description="metric name → company property (numbers, booleans, dates)",
    )
    write_back: HubSpotWriteBack = HubSpotWriteBack()
    override_properties: HubSpotOverrideProperties | None = Field(
        None, description="company properties CSMs set grade overrides in (off when absent)"
    )
    batch_size: int = Field(100, ge=1, le=100)
    requests_per_10s: int = Field(
        100,
        ge=1,
        le=250,
        description="your HubSpot tier's burst limit, shared by every worker through Redis",
    )
    search_page_size: int = Field(200, ge=1, le=200)
    related: list[Literal["deals", "tickets", "contacts"]] = Field(
        default_factory=list,
        description="objects pulled for per-account signals (metric "
        "names in healthscore/hubspot_related_sync.py)",
    )
    learn_contact_domains: bool = Field(
        False,
        description="add a matched contact's email "
        "domain to its account's domains (off: partners and "
        "resellers would be tied to customers)",
    )
    deleted_check_every: Duration = Field(
        timedelta(hours=24),
        description="how often to list archived companies (search never returns them)",
    )


class HubSpotEmailSource(EmailSource):
    """HubSpot marketing email events (Email Events API; Marketing Hub, scope `content`), with
    the HubSpot source's token and quota."""

    metric_prefix: str = Field("hubspot_email_", pattern=r"^[a-z][a-z0-9_]*_$")
    exclude_filtered: bool = Field(
        True, description="leave out opens HubSpot flagged as bots or machine opens"
    )


class HubSpotOverrideProperties(_Strict):
    """Company properties a CSM sets an override in (``sources.hubspot.override_properties``;
    ``healthscore setup-crm`` creates them in the health property group).

    ``set_at`` is the override's own date-time (a workflow stamps it when ``grade`` changes),
    ``by`` who set it: an email, or a HubSpot owner id (resolved to the owner's email).
    Emptying ``grade`` ends the override.
    """

    grade: str = "healthscore_override"
    reason: str = "healthscore_override_reason"
    until: str = "healthscore_override_until"
    by: str = "healthscore_override_by"
    set_at: str = "healthscore_override_set"

    def roles(self) -> dict[str, str]:
        return {r: getattr(self, r) for r in ("grade", "reason", "until", "by", "set_at")}
