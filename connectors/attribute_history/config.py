"""The sources.attribute_history section: account attributes as of each date, from a file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel

SOURCE = "attribute_history"


class AttributeHistoryFile(StrictModel):
    """A CSV of ``account_id, date, attribute, value`` rows: each attribute's value from that
    date on (seats, MRR, plan, renewal date …). Point-in-time scoring reads the value of the
    latest row dated on or before the scored date. A relative path is relative to the YAML.
    """

    path: Path | None = Field(None, description="the CSV file (or give it to load-attributes)")
    account_column: str = "account_id"
    match_by: str = Field(
        "account",
        description="account (the account id), domain, or an account key kind such as "
        "<source>:company",
    )
    date_column: str = "date"
    attribute_column: str = "attribute"
    value_column: str = "value"
    attributes: list[str] = Field(
        default_factory=list,
        description="attributes the file carries that the accounts may not have yet, so the "
        "scorecard may name them (the accounts' own attributes are known already)",
    )
    sync_every: Duration = Field(
        timedelta(hours=1), description="how often beat re-loads the file (unchanged: no writes)"
    )

    @field_validator("match_by")
    @classmethod
    def _match_by(cls, value: str) -> str:
        if value in ("account", "domain") or ":" in value:
            return value
        raise ValueError(
            "must be account, domain, or an account key kind such as "
            f"<source>:company; got {value!r}"
        )

    def columns(self) -> list[str]:
        return [self.account_column, self.date_column, self.attribute_column, self.value_column]
