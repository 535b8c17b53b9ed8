"""The one list of sources, the order a cycle syncs them in, and what they add up to: the
``sources:`` section of the YAML and the environment settings.

Everything that lists sources — the beat schedule, the Celery task, ``healthscore sync``,
``sources``, ``run``, ``check``, the cycle and the demo — reads this module. Adding a source is
one package under ``connectors/`` plus one ``register`` line here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from pydantic import Field, create_model, model_validator

from connectors.accounts_file.source import SOURCE_ENTRY as ACCOUNTS_FILE
from connectors.attribute_history.source import SOURCE_ENTRY as ATTRIBUTE_HISTORY
from connectors.contract import Crm, Source
from connectors.hubspot.settings import HubSpotSettings
from connectors.hubspot.source import EMAIL_ENTRY as HUBSPOT_EMAIL
from connectors.hubspot.source import SOURCE_ENTRY as HUBSPOT
from connectors.mailchimp.settings import MailchimpSettings
from connectors.mailchimp.source import SOURCE_ENTRY as MAILCHIMP
from connectors.salesforce.settings import SalesforceSettings
from connectors.salesforce.source import SOURCE_ENTRY as SALESFORCE
from connectors.sendgrid.settings import SendGridSettings
from connectors.sendgrid.source import SOURCE_ENTRY as SENDGRID
from connectors.usage.source import FILE_ENTRY as USAGE_FILE
from connectors.usage.source import WAREHOUSE_ENTRY as WAREHOUSE
from connectors.zendesk.settings import ZendeskSettings
from connectors.zendesk.source import SOURCE_ENTRY as ZENDESK
from healthscore.core.model import StrictModel
from healthscore.core.settings import CoreSettings, read_settings

_SOURCES: dict[str, Source] = {}
_model_cache: dict[str, type[SourcesBase]] = {}
CRMS = ("salesforce", "hubspot")


def register(entry: Source, *, after: Iterable[str] = ()) -> Source:
    """Add a source (``after``: the sources a cycle must sync before it)."""
    entry = replace(entry, after=tuple(dict.fromkeys((*entry.after, *after))))
    _SOURCES[entry.name] = entry
    _model_cache.clear()
    return entry


def unregister(name: str) -> None:
    _SOURCES.pop(name, None)
    _model_cache.clear()


register(ACCOUNTS_FILE)
register(SALESFORCE)
register(HUBSPOT, after=("salesforce", "accounts_file"))  # matches companies to accounts
register(ZENDESK, after=CRMS)  # organizations match the CRM's accounts
register(SENDGRID, after=CRMS)  # recipients match through the accounts' domains
register(MAILCHIMP, after=CRMS)
register(HUBSPOT_EMAIL, after=CRMS)
register(USAGE_FILE, after=(*CRMS, "accounts_file"))  # usage maps to accounts
register(WAREHOUSE, after=(*CRMS, "accounts_file"))
register(ATTRIBUTE_HISTORY, after=(*CRMS, "accounts_file"))  # attributes of known accounts


def all_sources() -> list[Source]:
    return list(_SOURCES.values())


def source(name: str) -> Source:
    try:
        return _SOURCES[name]
    except KeyError:
        raise LookupError(f"unknown source {name!r} (known: {', '.join(_SOURCES)})") from None


def enabled(sources: Any) -> list[Source]:
    """The enabled sources in the order a cycle syncs them (each after its ``after``)."""
    on = {s.name: s for s in _SOURCES.values() if s.enabled(getattr(sources, s.name, None))}
    ordered: list[Source] = []
    placed: set[str] = set()

    def place(entry: Source, path: tuple[str, ...] = ()) -> None:
        if entry.name in placed:
            return
        if entry.name in path:
            raise ValueError(f"sources run after each other in a circle: {' → '.join(path)}")
        for before in entry.after:
            if before in on:
                place(on[before], (*path, entry.name))
        placed.add(entry.name)
        ordered.append(entry)

    for entry in on.values():
        place(entry)
    return ordered


def client_factories() -> dict[str, Any]:
    """Vendor name → how its one client is built (the sync context builds it on first use)."""
    return {s.name: s.make_client for s in _SOURCES.values() if s.make_client is not None}


def crms() -> list[Crm]:
    return [s.crm for s in _SOURCES.values() if s.crm is not None]


def renewal_lost_metrics() -> list[str]:
    """The metrics holding each CRM's last closed-lost renewal (a churn)."""
    return [c.renewal_lost_metric for c in crms() if c.renewal_lost_metric is not None]


def email_senders() -> list[tuple[str, Any]]:
    return [(s.name, s.email_sender) for s in _SOURCES.values() if s.email_sender is not None]


# -- the `sources:` section ----------------------------------------------------------------------
class SourcesBase(StrictModel):
    """Every registered source's section (attribute per source name)."""

    @model_validator(mode="after")
    def _one_record_system(self) -> SourcesBase:
        salesforce, hubspot = getattr(self, "salesforce", None), getattr(self, "hubspot", None)
        accounts_file = getattr(self, "accounts_file", None)
        sf_on = salesforce is not None and salesforce.enabled
        hs_record = hubspot is not None and hubspot.record_system
        if accounts_file is not None:
            if sf_on or hs_record:
                raise ValueError(
                    "accounts_file is the record system: set salesforce.enabled: "
                    "false and drop hubspot.record_system (or drop accounts_file)"
                )
            return self
        if hs_record and sf_on:
            raise ValueError(
                "hubspot.record_system: HubSpot is the CRM of record, so set "
                "salesforce.enabled: false (or drop record_system)"
            )
        if hs_record and not hubspot.enabled:
            raise ValueError("hubspot.record_system needs hubspot.enabled: true")
        email = getattr(self, "hubspot_email", None)
        if email is not None and email.enabled and not (hubspot is not None and hubspot.enabled):
            raise ValueError("hubspot_email needs hubspot.enabled: true (it uses its token)")
        if not sf_on and not hs_record:
            raise ValueError(
                "no CRM of record: enable salesforce, or hubspot with record_system: true"
            )
        return self

    @property
    def record_crm(self) -> str:
        """The record system: a CRM's source name, or ``file``."""
        if getattr(self, "accounts_file", None) is not None:
            return "file"
        for crm in crms():
            if crm.record_system(self):
                return crm.name
        return "file"

    @property
    def attributes(self) -> dict[str, str]:
        """Account attributes of the record system."""
        accounts_file = getattr(self, "accounts_file", None)
        if accounts_file is not None:
            return {a: a for a in accounts_file.attribute_names() or ()}
        section = getattr(self, self.record_crm, None)
        return dict(getattr(section, "attributes", {}) or {})


def sources_model() -> type[SourcesBase]:
    """The ``sources:`` model of the registered sources (rebuilt when the registry changes)."""
    if "model" not in _model_cache:
        fields: dict[str, Any] = {}
        for entry in _SOURCES.values():
            if entry.default is None:
                fields[entry.name] = (entry.config | None, Field(None, description=entry.describe))
            else:
                fields[entry.name] = (
                    entry.config,
                    Field(entry.default, description=entry.describe),
                )
        _model_cache["model"] = create_model("Sources", __base__=SourcesBase, **fields)
    return _model_cache["model"]


def provided_metrics(sources: Any) -> list[tuple[str, str, str]]:
    """(metric, source, where in the YAML) for every metric the enabled sources provide."""
    return [
        (metric, entry.name, where)
        for entry in enabled(sources)
        for metric, where in entry.metrics(getattr(sources, entry.name))
    ]


def source_metrics(sources: Any) -> set[str]:
    """Every metric the enabled sources provide."""
    return {metric for metric, _, _ in provided_metrics(sources)}


def metric_collisions(sources: Any) -> list[str]:
    """Metric names two sources would both write (the later would overwrite the earlier)."""
    seen: dict[str, str] = {}
    clashes = []
    for metric, _, where in provided_metrics(sources):
        if not where:
            continue
        if metric in seen and seen[metric] != where:
            clashes.append(
                f"metric {metric!r} comes from both {seen[metric]} and {where}; rename one"
            )
        seen.setdefault(metric, where)
    return clashes


# -- the environment -----------------------------------------------------------------------------
class Settings(
    CoreSettings,
    SalesforceSettings,
    HubSpotSettings,
    ZendeskSettings,
    SendGridSettings,
    MailchimpSettings,
):
    """Every environment variable healthscore reads: the core ones and each source's."""


def load_settings() -> Settings:
    """Read the environment; an invalid value names its variable (never its secret value)."""
    return read_settings(Settings)
