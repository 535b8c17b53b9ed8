"""Alert rules as CS operations write them in the YAML (``rules:``).

A rule has one trigger (``when``), an optional ``for`` (the condition must hold that long),
a ``cooldown`` (no new episode sooner after the last one fired), an optional segment filter
and one or more actions (a Slack alert by default). It fires when an account *enters* its
condition — once per episode — and not again until the account has left the condition (and
the cooldown has passed).

    rules:
      - name: sharp_drop
        when: {score_dropped: {points: 15, within: 7d}}
        cooldown: 14d
      - name: renewal_at_risk
        when: {renewal_within: {days: 90, below: 60}}
        actions:
          - slack: {channel: "#renewals", segments: {enterprise: "#ent-renewals"}}
          - task: {subject: "Renewal at risk: {name}", due_in: 3d, priority: High}
      - name: onboarding_nudge
        when: {onboarding_not_past: {score: 60, by_day: 7}}
        actions:
          - email: {template: d-onboarding, roles: [Admin], steps: [{day: 7}, {day: 14}]}
      - name: low_scores
        when: {score_below: 40}
        actions: [{slack: {digest: weekly}}]

The templates' placeholders (``{name}``, ``{why}`` …, see ``PLACEHOLDERS``) are checked at load.
"""

from __future__ import annotations

import string
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from healthscore.core.durations import Duration

Grade = Literal["red", "yellow", "green", "insufficient_data"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Drop(_Strict):
    points: float = Field(gt=0)
    within: Duration


class Onboarding(_Strict):
    score: float = Field(ge=0, le=100, description="the score to be past ...")
    by_day: int = Field(gt=0, description="... by this many days after the start")
    age_metric: str = Field("customer_age_days", description="days since the start")


class Renewal(_Strict):
    days: int = Field(gt=0, description="renewal within this many days")
    below: float = Field(ge=0, le=100, description="while the score is below this")
    metric: str = Field("renewal_next_at", description="a date metric: the next renewal")


class MeasureBelow(_Strict):
    measure: str
    points: float = Field(ge=0, le=100)


class MetricAtLeast(_Strict):
    metric: str
    value: float
    grade: Grade | None = Field(None, description="only accounts in this grade")


TRIGGERS = (
    "grade_is",
    "score_dropped",
    "score_below",
    "onboarding_not_past",
    "renewal_within",
    "measure_below",
    "metric_at_least",
)


class Trigger(_Strict):
    grade_is: Grade | None = Field(None, description="the account is in this grade")
    score_dropped: Drop | None = None
    score_below: float | None = Field(None, ge=0, le=100)
    onboarding_not_past: Onboarding | None = None
    renewal_within: Renewal | None = None
    measure_below: MeasureBelow | None = Field(
        None,
        description="a measure's points below a value (e.g. its red band, or a "
        "usage-vs-NPS divergence measure)",
    )
    metric_at_least: MetricAtLeast | None = Field(
        None, description="e.g. healthy with seat utilization ≥ 0.9: an upsell signal"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        given = [t for t in TRIGGERS if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one trigger of {', '.join(TRIGGERS)}"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(t for t in TRIGGERS if getattr(self, t) is not None)


PLACEHOLDERS = (
    "name",
    "score",
    "grade",
    "why",
    "reasons",
    "rule",
    "renewal_date",
    "arr",
    "owner_name",
    "owner_email",
    "segment",
    "crm_url",
    "delta",
)


def _template(text: str) -> str:
    """A text with ``{placeholder}``s: each must be one of ``PLACEHOLDERS``."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise ValueError(f"{exc} (write {{{{ and }}}} for literal braces)") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"unknown placeholder {{{unknown[0]}}}; known: "
            + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        )
    return text


class SlackAction(_Strict):
    """A Slack alert (Block Kit) — or, with ``digest``, one message a day/week per rule."""

    channel: str | None = Field(
        None,
        description="channel id or #name (default: the rule's channel, then the alert channel)",
    )
    segments: dict[str, str] = Field(
        default_factory=dict, description="segment → channel, for accounts in it"
    )
    digest: Literal["daily", "weekly"] | None = Field(
        None,
        description="collect the rule's matches into one message per period (UTC day, "
        "ISO week) instead of one message each",
    )


class TaskAction(_Strict):
    """A CSM task in the CRM of record, owned by the account owner."""

    subject: str = Field("Health: {name} — {why}", max_length=255)
    description: str = Field(
        "{name}: {why}. Score {score} ({grade}).\nTop reasons: {reasons}\n{crm_url}"
    )
    due_in: Duration = Field(timedelta(days=3), description="due date: this long after firing")
    priority: Literal["High", "Normal", "Low"] = "Normal"

    _check_subject = field_validator("subject", "description")(_template)


class EmailStep(_Strict):
    day: int = Field(ge=0, description="days since the start (the age metric)")
    template: str | None = Field(None, description="this step's template (default: the action's)")


class EmailAction(_Strict):
    """A tech-touch email to the account's contacts in some roles, through a template."""

    template: str = Field(
        description="SendGrid dynamic template id (d-…) or Mailchimp Transactional template slug"
    )
    provider: Literal["sendgrid", "mailchimp"] | None = Field(
        None, description="default: actions.email.provider"
    )
    roles: list[str] = Field(
        default_factory=lambda: ["Admin", "Champion"],
        min_length=1,
        description="contact roles (Salesforce Role__c, else title; "
        "HubSpot job title) that receive it",
    )
    subject: str | None = Field(
        None, description="subject (Mailchimp; SendGrid templates carry their own)"
    )
    steps: list[EmailStep] = Field(
        default_factory=list,
        description="a sequence: one email "
        "when the account's age reaches each day, while the rule "
        "still holds",
    )
    age_metric: str = Field("customer_age_days", description="days since the start (steps)")

    _check_subject = field_validator("subject")(lambda v: None if v is None else _template(v))

    @field_validator("steps")
    @classmethod
    def _ascending(cls, steps: list[EmailStep]) -> list[EmailStep]:
        days = [s.day for s in steps]
        if days != sorted(set(days)):
            raise ValueError(f"step days must be distinct and ascending; got {days}")
        return steps


ACTION_KINDS = ("slack", "task", "email")


class Action(_Strict):
    """One of ``slack``, ``task``, ``email`` — a bare name takes the defaults."""

    slack: SlackAction | None = None
    task: TaskAction | None = None
    email: EmailAction | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in ACTION_KINDS:
                raise ValueError(f"unknown action {value!r}; one of {', '.join(ACTION_KINDS)}")
            if value == "email":
                raise ValueError("email needs settings: {email: {template: ...}}")
            return {value: {}}
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        given = [k for k in ACTION_KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(ACTION_KINDS)} per action"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ACTION_KINDS if getattr(self, k) is not None)


class Rule(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    when: Trigger
    for_: Duration = Field(
        timedelta(0), alias="for", description="the condition must hold this long first"
    )
    cooldown: Duration = Field(
        timedelta(0), description="no new episode sooner than this after the last one fired"
    )
    segments: list[str] = Field(default_factory=list, description="only these segments")
    channel: str | None = Field(None, description="Slack channel (default: the alert channel)")
    actions: list[Action] = Field(
        default_factory=lambda: [Action(slack=SlackAction())],
        min_length=1,
        description="what firing does (default: a Slack alert)",
    )

    @field_validator("actions")
    @classmethod
    def _one_of_each(cls, actions: list[Action]) -> list[Action]:
        kinds = [a.kind for a in actions]
        for kind in ACTION_KINDS:
            if kinds.count(kind) > 1:
                raise ValueError(
                    f"{kind} is named twice (one per kind: the idempotency key "
                    f"is rule:account:episode:{kind})"
                )
        return actions

    def action(self, kind: str) -> Action | None:
        return next((a for a in self.actions if a.kind == kind), None)


class EmailSettings(_Strict):
    """How tech-touch emails go out (``actions.email`` in the YAML)."""

    provider: Literal["sendgrid", "mailchimp"] = "sendgrid"
    from_email: str = Field("success@example.com", pattern=r"^[^@\s]+@[^@\s]+$")
    from_name: str = "Customer Success"
    unsubscribe_group: int | None = Field(
        None, description="SendGrid unsubscribe group (asm) id: its unsubscribes are skipped too"
    )
    max_per_contact: int = Field(1, ge=1, description="emails a contact may get per cap_window")
    cap_window: Duration = Field(timedelta(days=7))
    suppressed: list[str] = Field(
        default_factory=list,
        description="a local suppression list: addresses, or @domain for a whole domain",
    )
    categories: list[str] = Field(default_factory=lambda: ["healthscore"], max_length=10)


class ActionSettings(_Strict):
    """Settings every rule's actions share (``actions:`` in the YAML)."""

    email: EmailSettings = EmailSettings()
    salesforce_task_key_field: str = Field(
        "Healthscore_Key__c", description="external-id field on Task holding the idempotency key"
    )
    hubspot_task_key_property: str = Field(
        "healthscore_key",
        description="task property holding the idempotency key "
        "(`healthscore setup-crm` creates it)",
    )
