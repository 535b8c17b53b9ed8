"""Environment settings, read once at start-up with pydantic-settings.

The core settings (store, broker, configuration file, Slack) live here; each source package
adds the variables of its own connection, and ``connectors.registry.Settings`` combines them.
Secrets are ``SecretStr``: they never appear in reprs, logs or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthscore.core.errors import ConfigError

ENV = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")
S = TypeVar("S", bound=BaseSettings)


def secure_url(cls: type, value: str | None) -> str | None:
    """A field validator: https only (plain http only on localhost, for the sandbox)."""
    if value is None:
        return None
    if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ValueError("must be an https:// URL (plain http only on localhost)")
    return value


class CoreSettings(BaseSettings):
    """Every environment variable healthscore reads outside the sources (names are the
    field names, upper-cased)."""

    model_config = ENV

    healthscore_config: Path = Field(
        Path("healthscore.yaml"), description="path of the YAML configuration"
    )
    database_url: str = "sqlite:///healthscore.db"
    redis_url: str = "redis://127.0.0.1:6379/0"

    slack_bot_token: SecretStr | None = None
    slack_alert_channel: str | None = None
    slack_base_url: str = "https://slack.com/api/"

    slack_url_secure = field_validator("slack_base_url")(classmethod(secure_url))

    def require_slack(self) -> None:
        if self.slack_bot_token is None:
            raise ConfigError("missing environment variable: SLACK_BOT_TOKEN")


def read_settings(cls: type[S]) -> S:
    """Read the environment; an invalid value names its variable (never its secret value)."""
    try:
        return cls()
    except ValidationError as exc:
        problems = "; ".join(f"{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid environment: {problems}") from None
