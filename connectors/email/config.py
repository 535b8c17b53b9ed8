"""What every email platform's section shares: signal names, schedule and overlap."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel as _Strict


class EmailSource(_Strict):
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
        from connectors.email.engagement import metric_names

        return metric_names(self.metric_prefix)
