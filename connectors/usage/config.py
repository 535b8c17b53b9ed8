"""YAML models of the product-usage sources: a file drop and a SQL warehouse.

Both read the same table shape and share one column mapping (:class:`UsageMapping`):

* **long** form — one value per row: ``account_id, date, metric, value``;
* **wide** form — one row per account and day, one column per metric:
  ``account_id, date, logins, active_users, …``.

The account column holds the CRM account id (``match_by: account``), a web/email domain
(``match_by: domain``) or another system's id kept as an account key (e.g.
``match_by: <source>:<key>``, a key kind a CRM source keeps); see connectors/identity.py.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from healthscore.core.durations import Duration

_METRIC_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UsageMapping(BaseModel):
    """Which columns hold the account, the day, and the metrics (long or wide form).

    Usage counts are not negative: a value below 0 is reported and skipped unless its metric
    is listed in ``allow_negative`` (a net change or a balance may go below 0).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    form: Literal["long", "wide"] = Field(
        "long", description="long: account, date, metric, value rows; wide: one column per metric"
    )
    account_column: str = "account_id"
    match_by: str = Field(
        "account",
        description="account (the CRM account id), domain, or "
        "an account key kind such as <source>:company",
    )
    date_column: str = "date"
    date_format: str = Field("%Y-%m-%d", description="strptime format of text dates")
    metric_column: str = Field("metric", description="long form: the metric name column")
    value_column: str = Field("value", description="long form: the value column")
    metrics: dict[str, str] = Field(
        default_factory=dict,
        description="wide: column → metric name; long: metric in the "
        "data → metric name (then other metrics are ignored; empty: load every metric as "
        "named)",
    )
    allow_negative: list[str] = Field(
        default_factory=list,
        description="metrics whose values may be below 0 (a net change, a balance); "
        "elsewhere a negative value is a bad row, reported with its place and skipped",
    )

    writers: int = Field(
        2,
        ge=1,
        le=16,
        description="PostgreSQL connections writing in "
        "parallel (an account's rows always go through the same one)",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _list_means_same_name(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(v): str(v) for v in value}
        return value

    @field_validator("metrics")
    @classmethod
    def _metric_names(cls, value: dict[str, str]) -> dict[str, str]:
        for column, metric in value.items():
            if not _METRIC_NAME.match(metric):
                raise ValueError(
                    f"{column}: metric name {metric!r} must be letters, digits and "
                    "underscores, not starting with a digit"
                )
        return value

    @field_validator("allow_negative", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("allow_negative")
    @classmethod
    def _negative_metrics(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # metric names as stored (the values of `metrics`), not the file's columns
        declared = set((info.data.get("metrics") or {}).values())
        for name in value:
            if not _METRIC_NAME.match(name):
                raise ValueError(f"{name!r} is not a metric name")
            if declared and name not in declared:
                raise ValueError(
                    f"{name!r} is not one of this source's metrics ({', '.join(sorted(declared))})"
                )
        return value

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        if "%" not in value:
            raise ValueError(f"must be a strptime format such as %Y-%m-%d; got {value!r}")
        return value

    @field_validator("match_by")
    @classmethod
    def _match_by(cls, value: str) -> str:
        if value in ("account", "domain") or ":" in value:
            return value
        raise ValueError(
            "must be account, domain, or an account key kind such as "
            f"<source>:company; got {value!r}"
        )

    @model_validator(mode="after")
    def _form_needs(self) -> UsageMapping:
        if self.form == "wide" and not self.metrics:
            raise ValueError("form: wide needs metrics (column → metric name)")
        if self.form == "wide":
            clash = {self.account_column, self.date_column} & set(self.metrics)
            if clash:
                raise ValueError(f"metrics: {sorted(clash)[0]!r} is the account or date column")
        return self

    def columns(self) -> list[str]:
        """The columns a source must have."""
        if self.form == "wide":
            return [self.account_column, self.date_column, *self.metrics]
        return [self.account_column, self.date_column, self.metric_column, self.value_column]

    @property
    def metric_names(self) -> set[str]:
        """Metric names this source declares (what a scorecard may name)."""
        return set(self.metrics.values())


class UsageFileSource(UsageMapping):
    """Usage files dropped in a folder: CSV (optionally gzipped) or Parquet."""

    enabled: bool = False
    path: str = Field(
        "",
        description="a file, a folder, or a glob (e.g. /srv/drop/*.csv); "
        "relative to the working directory",
    )
    format: Literal["auto", "csv", "parquet"] = Field("auto", description="auto: by extension")
    delimiter: str = Field(",", min_length=1, max_length=1)
    chunk_rows: int | None = Field(
        None,
        ge=1,
        description="rows per write (default: 250,000 on PostgreSQL, 1,000,000 on SQLite): "
        "larger chunks load faster (each is sorted by key) and hold more memory",
    )
    sync_every: Duration = timedelta(minutes=15)

    @model_validator(mode="after")
    def _path_when_enabled(self) -> UsageFileSource:
        if self.enabled and not self.path:
            raise ValueError("path: needed when usage_file is enabled (a file, folder or glob)")
        return self


class WarehouseSource(UsageMapping):
    """A SQL query over any SQLAlchemy URL; ``:since`` makes it incremental."""

    enabled: bool = False
    url_env: str = Field(
        "WAREHOUSE_URL",
        description="environment variable holding the "
        "SQLAlchemy URL (never put credentials in this file)",
    )
    query: str = Field(
        "",
        description="SELECT returning the mapped columns; use :since "
        "(a date) to read only recent days",
    )
    start_date: date | None = Field(
        None, description="first :since (default: today minus initial_lookback)"
    )
    initial_lookback: Duration = timedelta(days=365)
    overlap: Duration = Field(
        timedelta(days=3),
        description="re-read this many days before the last loaded day (late-arriving rows)",
    )
    fetch_rows: int = Field(50_000, ge=1, description="rows per fetch and per write")
    sync_every: Duration = timedelta(hours=1)

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError(
                f"must be an environment variable name; got {value!r} (never the URL itself)"
            )
        return value

    @model_validator(mode="after")
    def _query_when_enabled(self) -> WarehouseSource:
        if self.enabled and not self.query.strip():
            raise ValueError("query: needed when the warehouse is enabled")
        return self

    @property
    def incremental(self) -> bool:
        return bool(re.search(r"(?<!:):since\b", self.query))
