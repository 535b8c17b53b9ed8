"""The YAML configuration: sources, schedule, scorecard and alert rules, in one file.

``load_config`` validates it all and reports every problem as ``file:line field: message``.
"""

from __future__ import annotations

import csv
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actions.rule_model import ActionSettings, Rule
from actions.rules import ENTERED_RED
from healthscore.core.durations import Duration
from healthscore.core.errors import ConfigError
from healthscore.core.yamlfile import YamlDocument, load_yaml, parse_yaml, validate
from healthscore.governance.policy import (
    CrmOverrideFields,
    Freshness,
    HubSpotOverrideProperties,
    OverridePolicy,
)
from healthscore.usage_config import UsageFileSource, WarehouseSource
from scoring import Scorecard, reference_problems

EXAMPLE_CONFIG = "healthscore.example.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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

    def roles(self) -> dict[str, str]:
        return {
            r: getattr(self, r) for r in ("score", "grade", "trend", "reasons", "updated", "stale")
        }


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


class ZendeskSource(_Strict):
    """Zendesk Support: tickets (incremental export), organizations, CSAT → support signals
    (metric names in connectors/zendesk/signals.py)."""

    enabled: bool = False
    subdomain: str | None = Field(
        None, description="acme for https://acme.zendesk.com (ZENDESK_SUBDOMAIN overrides)"
    )
    sync_every: Duration = timedelta(minutes=15)
    requests_per_minute: int = Field(
        700,
        ge=1,
        description="your plan's account-wide limit "
        "(Team 200, Growth/Professional 400, Enterprise 700, "
        "Enterprise Plus or High Volume 2500)",
    )
    export_requests_per_minute: int = Field(
        10, ge=1, description="the incremental export limit (30 with the High Volume add-on)"
    )
    backfill: Duration = Field(
        timedelta(days=180),
        description="how far back the first "
        "ticket export starts (signals look back up to 2 × 90 days)",
    )
    organizations_every: Duration = Field(
        timedelta(hours=1), description="how often the organization list is re-read for matching"
    )
    overlap: Duration = Field(
        timedelta(minutes=5), description="re-read this much before the CSAT cursor"
    )
    external_id_is_account_id: bool = Field(
        True, description="an organization's external_id holds the CRM account id"
    )
    topic_tag_prefix: str = Field(
        "topic_",
        description="tags starting so name a ticket's topic (besides its normalized subject)",
    )
    export_page_size: int = Field(1000, ge=1, le=1000)
    page_size: int = Field(100, ge=1, le=100)
    recompute_processes: int = Field(
        1,
        ge=0,
        le=16,
        description="worker processes reading "
        "and aggregating tickets beside the sync when it "
        "recomputes 20,000 accounts or more (0: all in the "
        "sync's own process)",
    )


class _EmailSource(_Strict):
    """Shared by the email platforms: per-account engagement signals named
    ``<metric_prefix>open_rate_90d`` … (see healthscore/email_engagement.py)."""

    enabled: bool = False
    sync_every: Duration = timedelta(hours=1)
    overlap: Duration = Field(
        timedelta(minutes=10), description="re-read this much before the cursor"
    )
    metric_prefix: str = Field(
        pattern=r"^[a-z][a-z0-9_]*_$",
        description="signal names start "
        "with it; `email_` gives email_open_rate_90d … (one platform)",
    )

    @property
    def metrics(self) -> tuple[str, ...]:
        from healthscore.email_engagement import metric_names

        return metric_names(self.metric_prefix)


class SendGridSource(_EmailSource):
    """SendGrid (SENDGRID_API_KEY): per-recipient events from the signed event webhook (or
    the Email Activity API, a paid add-on), suppressions, and stats by category."""

    metric_prefix: str = Field("sendgrid_", pattern=r"^[a-z][a-z0-9_]*_$")
    per_recipient: Literal["webhook", "activity_api"] = Field(
        "webhook",
        description="webhook: events POSTed to `healthscore webhook serve`; "
        "activity_api: pulled from /v3/messages (needs the Email Activity History add-on)",
    )
    categories: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="count only mail in these categories (empty: all mail)",
    )
    page_size: int = Field(500, ge=1, le=500, description="suppression list page size")
    webhook_max_age: Duration = Field(
        timedelta(minutes=10),
        description="reject signed webhook requests older (or newer) than this",
    )


class MailchimpSource(_EmailSource):
    """Mailchimp Marketing (MAILCHIMP_API_KEY): campaign reports with per-member activity."""

    metric_prefix: str = Field("mailchimp_", pattern=r"^[a-z][a-z0-9_]*_$")
    page_size: int = Field(1000, ge=1, le=1000, description="members per email-activity page")
    max_connections: int = Field(
        10,
        ge=1,
        le=10,
        description="simultaneous requests per key "
        "(Mailchimp allows 10 per key, shared by everything using it)",
    )


class HubSpotEmailSource(_EmailSource):
    """HubSpot marketing email events (Email Events API; Marketing Hub, scope `content`), with
    the HubSpot source's token and quota."""

    metric_prefix: str = Field("hubspot_email_", pattern=r"^[a-z][a-z0-9_]*_$")
    exclude_filtered: bool = Field(
        True, description="leave out opens HubSpot flagged as bots or machine opens"
    )


class AccountsFile(_Strict):
    """Accounts from a CSV file instead of a CRM (see healthscore/accounts_file.py).

    One row per account; every column but the id and name is kept as an account attribute
    (or only ``attributes`` when given). A relative path is relative to the YAML file.
    """

    path: Path
    id_column: str = "account_id"
    name_column: str = "name"
    start_column: str | None = Field(
        "start_date",
        description="the customer's start date (a snapshot before it leaves the account out)",
    )
    attributes: list[str] | None = Field(
        None, description="columns kept as attributes (default: every other column)"
    )
    sync_every: Duration = Field(
        timedelta(hours=1), description="how often beat re-imports the file"
    )

    def attribute_names(self) -> set[str] | None:
        """The attributes accounts will carry (None: not known until the file is read)."""
        if self.attributes is not None:
            return set(self.attributes) | ({self.start_column} if self.start_column else set())
        if not self.path.is_file():
            return None
        with self.path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
        return {c.strip() for c in header} - {self.id_column, self.name_column}


class Sources(_Strict):
    salesforce: SalesforceSource = SalesforceSource(enabled=False, metrics={})
    hubspot: HubSpotSource = HubSpotSource()
    zendesk: ZendeskSource = ZendeskSource()
    sendgrid: SendGridSource = SendGridSource()
    mailchimp: MailchimpSource = MailchimpSource()
    hubspot_email: HubSpotEmailSource = HubSpotEmailSource()
    usage_file: UsageFileSource = Field(
        UsageFileSource(), description="product usage files (CSV/Parquet) into usage_daily"
    )
    warehouse: WarehouseSource = Field(
        WarehouseSource(), description="product usage from a SQL query into usage_daily"
    )
    accounts_file: AccountsFile | None = Field(
        None, description="accounts from a CSV file: the record system when there is no CRM"
    )

    @model_validator(mode="after")
    def _one_record_system(self) -> Sources:
        if self.accounts_file is not None:
            if self.salesforce.enabled or self.hubspot.record_system:
                raise ValueError(
                    "accounts_file is the record system: set salesforce.enabled: "
                    "false and drop hubspot.record_system (or drop accounts_file)"
                )
            return self
        if self.hubspot.record_system and self.salesforce.enabled:
            raise ValueError(
                "hubspot.record_system: HubSpot is the CRM of record, so set "
                "salesforce.enabled: false (or drop record_system)"
            )
        if self.hubspot.record_system and not self.hubspot.enabled:
            raise ValueError("hubspot.record_system needs hubspot.enabled: true")
        if self.hubspot_email.enabled and not self.hubspot.enabled:
            raise ValueError("hubspot_email needs hubspot.enabled: true (it uses its token)")
        if not self.salesforce.enabled and not self.hubspot.record_system:
            raise ValueError(
                "no CRM of record: enable salesforce, or hubspot with record_system: true"
            )
        return self

    @property
    def record_crm(self) -> str:
        if self.accounts_file is not None:
            return "file"
        return "hubspot" if self.hubspot.record_system else "salesforce"

    @property
    def attributes(self) -> dict[str, str]:
        """Account attributes of the CRM of record."""
        if self.accounts_file is not None:
            return {a: a for a in self.accounts_file.attribute_names() or ()}
        return self.hubspot.attributes if self.hubspot.record_system else self.salesforce.attributes


class Scoring(_Strict):
    every: Duration = timedelta(hours=1)
    trend_window: Duration = Field(timedelta(days=7), description="trend compares against this")
    start_field: str | None = Field(
        None,
        description="account attribute or date metric with "
        "the customer's start (past snapshots leave an account "
        "out before it); default: the accounts file's start column",
    )


class SlackAlerts(_Strict):
    channel: str | None = Field(
        None, description="channel id or #name (SLACK_ALERT_CHANNEL overrides)"
    )
    messages_per_second: float = Field(1.0, gt=0, le=50, description="per-channel pace")
    max_retry_wait: float = Field(30, ge=0, description="longest Retry-After honoured in-task")


class Alerts(_Strict):
    enter_red: bool = Field(True, description="alert when an account enters red")
    slack: SlackAlerts = SlackAlerts()


class Outcomes(_Strict):
    """Where churn and renewal outcomes come from (see healthscore/outcomes.py)."""

    file: Path | None = Field(None, description="CSV: account_id, churn_date[, renewal_date]")
    id_column: str = "account_id"
    churn_column: str = "churn_date"
    renewal_column: str = "renewal_date"
    churn_metric: str | None = Field(
        None,
        description="a date metric of the sources holding "
        "each account's churn date (e.g. an Account field)",
    )
    renewal_lost: bool = Field(
        True, description="a closed-lost renewal opportunity (renewal_lost_at) is a churn"
    )


class Config(_Strict):
    sources: Sources
    scoring: Scoring = Scoring()
    scorecard: Scorecard
    alerts: Alerts = Alerts()
    outcomes: Outcomes = Outcomes()
    rules: list[Rule] = Field(
        default_factory=list,
        description="alert rules beyond alerts.enter_red (see actions/rule_model.py)",
    )
    overrides: OverridePolicy = OverridePolicy()
    freshness: Freshness = Freshness()
    actions: ActionSettings = ActionSettings()

    @property
    def active_rules(self) -> list[Rule]:
        """``alerts.enter_red`` as a rule, then the configured rules."""
        own = [r for r in self.rules if r.name != ENTERED_RED.name]
        named = [r for r in self.rules if r.name == ENTERED_RED.name]
        base = named or ([ENTERED_RED] if self.alerts.enter_red else [])
        return base + own

    @property
    def metrics(self) -> set[str]:
        return source_metrics(self.sources)

    @property
    def fields(self) -> set[str]:
        """Every metric and attribute the sources provide (what a scorecard may name)."""
        return self.metrics | set(self.sources.attributes)


def metric_collisions(sources: Sources) -> list[str]:
    """Metric names two sources would both write (the later would overwrite the earlier)."""
    from connectors.salesforce.related import RELATED

    seen: dict[str, str] = {}
    clashes = []
    named: list[tuple[str, str]] = []
    if sources.salesforce.enabled:
        named += [(m, "sources.salesforce.metrics") for m in sources.salesforce.metrics]
        named += [
            (m, f"sources.salesforce.related ({obj})")
            for obj in sources.salesforce.related
            for m in RELATED[obj].metrics
        ]
    if sources.hubspot.enabled and not sources.hubspot.record_system:
        named += [(m, "sources.hubspot.metrics") for m in sources.hubspot.metrics]
    for name in ("sendgrid", "mailchimp", "hubspot_email"):
        email = getattr(sources, name)
        if email.enabled:
            named += [
                (m, f"sources.{name} (metric_prefix {email.metric_prefix!r})")
                for m in email.metrics
            ]
    for metric, where in named:
        if metric in seen and seen[metric] != where:
            clashes.append(
                f"metric {metric!r} comes from both {seen[metric]} and {where}; rename one"
            )
        seen.setdefault(metric, where)
    return clashes


def source_metrics(sources: Sources) -> set[str]:
    """Every metric the enabled sources provide."""
    from connectors.salesforce.related import RELATED

    out: set[str] = set()
    if sources.salesforce.enabled:
        out |= set(sources.salesforce.metrics)
        for obj in sources.salesforce.related:
            out |= set(RELATED[obj].metrics)
    if sources.hubspot.enabled:
        from healthscore.hubspot_related_sync import METRICS as HUBSPOT_RELATED

        out |= set(sources.hubspot.metrics)
        for obj in sources.hubspot.related:
            out |= set(HUBSPOT_RELATED[obj])
    if sources.zendesk.enabled:
        from connectors.zendesk.signals import METRICS as ZENDESK_METRICS

        out |= set(ZENDESK_METRICS)
    for email in (sources.sendgrid, sources.mailchimp, sources.hubspot_email):
        if email.enabled:
            out |= set(email.metrics)
    for usage in (sources.usage_file, sources.warehouse):  # daily values in usage_daily
        if usage.enabled:
            out |= usage.metric_names
    return out


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the configuration file (the packaged example when ``path`` is None)."""
    if path is None:
        text = resources.files("healthscore").joinpath(EXAMPLE_CONFIG).read_text("utf-8")
        return config_from_document(parse_yaml(text, f"<packaged {EXAMPLE_CONFIG}>"))
    return config_from_document(load_yaml(path))


def config_from_document(doc: YamlDocument) -> Config:
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{doc.path}:1: expected a mapping with 'sources' and 'scorecard'")
    sources = _relative_to(validate(doc, Sources, root=("sources",)), doc.path)
    clashes = metric_collisions(sources)
    if clashes:
        raise ConfigError(
            "\n".join(f"{doc.path}:{doc.line_of(('sources',)) or 1} sources: {c}" for c in clashes)
        )
    provided: set[str] | None = source_metrics(sources) | set(sources.attributes)
    if sources.accounts_file is not None and sources.accounts_file.attribute_names() is None:
        provided = None  # the file's columns are not known yet: checked when it is imported
    scorecard = validate(doc, Scorecard, root=("scorecard",))
    problems = [
        f"{doc.path}:{doc.line_of(('scorecard', *loc)) or 1} "
        f"scorecard.{'.'.join(map(str, loc))}: {msg}"
        for loc, msg in reference_problems(scorecard, provided)
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    data = dict(doc.data)
    data["sources"], data["scorecard"] = sources, scorecard
    doc_for_rest = YamlDocument(doc.path, data, doc.lines)
    config = validate(doc_for_rest, Config)
    if config.outcomes.file is not None and not config.outcomes.file.is_absolute():
        config = config.model_copy(
            update={
                "outcomes": config.outcomes.model_copy(
                    update={"file": Path(doc.path).parent / config.outcomes.file}
                )
            }
        )
    known = provided if provided is not None else set(config.scorecard.derived)
    problems = [
        f"{doc.path}:{doc.line_of(('rules', *loc)) or 1} rules.{'.'.join(map(str, loc))}: {msg}"
        for loc, msg in rule_problems(config, known)
        if provided is not None
    ]
    start = config.scoring.start_field
    if start is not None and provided is not None and start not in provided:
        problems.append(
            f"{doc.path}:{doc.line_of(('scoring', 'start_field')) or 1} "
            f"scoring.start_field: unknown field {start!r}; known: "
            f"{', '.join(sorted(provided))}"
        )
    metric = config.outcomes.churn_metric
    if metric is not None and provided is not None and metric not in provided:
        problems.append(
            f"{doc.path}:{doc.line_of(('outcomes', 'churn_metric')) or 1} "
            f"outcomes.churn_metric: unknown metric {metric!r}; the sources "
            f"provide: {', '.join(sorted(source_metrics(sources)))}"
        )
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def _relative_to(sources: Sources, config_path: str) -> Sources:
    """An accounts file path relative to the YAML file (not to where healthscore runs)."""
    spec = sources.accounts_file
    if spec is None or spec.path.is_absolute() or config_path.startswith("<"):
        return sources
    return sources.model_copy(
        update={
            "accounts_file": spec.model_copy(update={"path": Path(config_path).parent / spec.path})
        }
    )


def rule_problems(config: Config, provided: set[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules naming a measure, metric or segment the scorecard does not have."""
    card = config.scorecard
    metrics = provided | set(card.derived)
    problems: list[tuple[tuple[str | int, ...], str]] = []
    names = [r.name for r in config.rules]
    for k, rule in enumerate(config.rules):
        if rule.name in names[:k]:
            problems.append(((k, "name"), f"rule {rule.name!r} is defined twice"))
        for seg in rule.segments:
            if seg not in card.segment_names:
                problems.append(
                    (
                        (k, "segments"),
                        f"no segment {seg!r} (known: {', '.join(card.segment_names)})",
                    )
                )
        for j, action in enumerate(rule.actions):
            if action.slack is not None:
                for seg in action.slack.segments:
                    if seg not in card.segment_names:
                        problems.append(
                            (
                                (k, "actions", j, "slack", "segments", seg),
                                f"no segment {seg!r} (known: {', '.join(card.segment_names)})",
                            )
                        )
            if (
                action.email is not None
                and action.email.steps
                and action.email.age_metric not in metrics
            ):
                problems.append(
                    (
                        (k, "actions", j, "email", "age_metric"),
                        f"unknown metric {action.email.age_metric!r}; known: "
                        f"{', '.join(sorted(metrics))}",
                    )
                )
        t = rule.when
        loc = (k, "when", t.kind)
        if t.measure_below is not None and t.measure_below.measure not in card.measures:
            problems.append((loc, f"no measure {t.measure_below.measure!r}"))
        for metric in (
            t.metric_at_least.metric if t.metric_at_least else None,
            t.renewal_within.metric if t.renewal_within else None,
            t.onboarding_not_past.age_metric if t.onboarding_not_past else None,
        ):
            if metric is not None and metric not in metrics:
                problems.append(
                    (loc, f"unknown metric {metric!r}; known: {', '.join(sorted(metrics))}")
                )
    return problems
