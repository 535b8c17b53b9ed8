"""The sources.salesforce section: Account fields read, written back and overridden."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel as _Strict
from scoring.churn_model import CHURN_ROLES


class WriteBackFields(_Strict):
    """Account fields the score is written to (create them in the org: see README)."""

    score: str = "Health_Score__c"
    grade: str = "Health_Grade__c"
    trend: str = "Health_Trend__c"
    reasons: str = "Health_Reasons__c"
    updated: str = "Health_Updated__c"
    stale: str = Field(
        "Health_Data_Stale__c",
        description="checkbox: the score rests on data older than the freshness limit",
    )
    churn_risk: str = Field(
        "Health_Churn_Risk__c",
        description="percent: P(churn within the churn model's horizon); written only when "
        "the scorecard has a churn_model",
    )
    arr_at_risk: str = Field(
        "Health_ARR_at_Risk__c",
        description="currency: churn probability × ARR; written only when the churn_model "
        "names an arr_attribute",
    )

    def roles(self, churn_roles: tuple[str, ...] = ()) -> dict[str, str]:
        """Role → field of what is written: the core health fields, and of the churn
        fields only ``churn_roles`` (those the card's churn model fills)."""
        return {
            role: name
            for role, name in self.model_dump().items()
            if role not in CHURN_ROLES or role in churn_roles
        }


class SalesforceSource(_Strict):
    enabled: bool = True
    sync_every: Duration = timedelta(minutes=15)
    overlap: Duration = Field(
        timedelta(minutes=5), description="re-read this much before the cursor (clock skew)"
    )
    metrics: dict[str, str] = Field(
        description="metric name → Account field (numbers, booleans, dates)"
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="account attribute → Account field"
    )
    domain_field: str | None = Field(
        "Website", description="the Account's web address: matches support/email records by domain"
    )
    related: list[Literal["Opportunity", "Case", "Task", "Event", "Contact"]] = Field(
        default_factory=list,
        description="objects pulled for per-account signals "
        "(see connectors/salesforce/related.py for the metric names)",
    )
    bulk_threshold: int = Field(
        10_000,
        ge=0,
        description="a full sync of an object with more rows uses Bulk API 2.0 (0: never)",
    )
    write_back: WriteBackFields = WriteBackFields()
    override_fields: CrmOverrideFields | None = Field(
        None, description="Account fields CSMs set grade overrides in (off when absent)"
    )
    batch_size: int = Field(200, ge=1, le=200)
    record_url: str = Field(
        "{instance_url}/lightning/r/Account/{id}/view", description="link to an account in alerts"
    )

    @field_validator("metrics", "attributes")
    @classmethod
    def _soql_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, field in value.items():
            if not field.replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"{name}: {field!r} is not a Salesforce field name")
        return value


class CrmOverrideFields(_Strict):
    """Account fields a CSM sets an override in (``sources.salesforce.override_fields``).

    ``set_at`` is the override's own last-modified date (a Date/Time field a before-save flow
    stamps when ``grade`` changes), ``by`` the email of who set it (the same flow writes
    ``$User.Email``). Emptying ``grade`` ends the override.
    """

    grade: str = "Health_Override__c"
    reason: str = "Health_Override_Reason__c"
    until: str = "Health_Override_Until__c"
    by: str = "Health_Override_By__c"
    set_at: str = "Health_Override_Set__c"
