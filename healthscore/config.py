"""The YAML configuration: sources, schedule, scorecard and alert rules, in one file.

``load_config`` validates it all and reports every problem as ``file:line field: message``.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path

from pydantic import ConfigDict, Field, SerializeAsAny

from actions.rule_model import ActionSettings, Rule
from actions.rules import ENTERED_RED
from connectors.registry import SourcesBase, metric_collisions, source_metrics, sources_model
from healthscore.core.durations import Duration
from healthscore.core.errors import ConfigError
from healthscore.core.model import StrictModel as _Strict
from healthscore.core.yamlfile import YamlDocument, load_yaml, parse_yaml, validate
from healthscore.governance.policy import Freshness, OverridePolicy
from scoring import Scorecard, reference_problems

EXAMPLE_CONFIG = "healthscore.example.yaml"


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
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    sources: SerializeAsAny[SourcesBase]  # dumped as the registry's sources model
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


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate the configuration file (the packaged example when ``path`` is None)."""
    if path is None:
        text = resources.files("healthscore").joinpath(EXAMPLE_CONFIG).read_text("utf-8")
        return config_from_document(parse_yaml(text, f"<packaged {EXAMPLE_CONFIG}>"))
    return config_from_document(load_yaml(path))


def config_from_document(doc: YamlDocument) -> Config:
    if not isinstance(doc.data, dict):
        raise ConfigError(f"{doc.path}:1: expected a mapping with 'sources' and 'scorecard'")
    sources = _relative_to(validate(doc, sources_model(), root=("sources",)), doc.path)
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


def _relative_to(sources: SourcesBase, config_path: str) -> SourcesBase:
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
