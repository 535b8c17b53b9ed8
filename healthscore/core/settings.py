"""Environment settings, read once at start-up with pydantic-settings.

Secrets are ``SecretStr``: they never appear in reprs, logs or error messages.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from healthscore.core.errors import ConfigError


class Settings(BaseSettings):
    """Every environment variable healthscore reads (names are the field names, upper-cased)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    healthscore_config: Path = Field(
        Path("healthscore.yaml"), description="path of the YAML configuration"
    )
    database_url: str = "sqlite:///healthscore.db"
    redis_url: str = "redis://127.0.0.1:6379/0"

    salesforce_instance_url: str | None = None
    salesforce_token_url: str | None = None
    salesforce_auth_flow: Literal["client_credentials", "jwt"] = "client_credentials"
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_private_key_file: Path | None = None
    salesforce_ca_bundle: Path | None = Field(
        None, description="extra CA bundle to trust (the sandbox's CA); verification stays on"
    )
    salesforce_api_version: str = "59.0"

    slack_bot_token: SecretStr | None = None
    slack_alert_channel: str | None = None
    slack_base_url: str = "https://slack.com/api/"

    hubspot_access_token: SecretStr | None = None  # a private app's token
    hubspot_base_url: str = "https://api.hubapi.com"

    zendesk_subdomain: str | None = None  # acme for https://acme.zendesk.com
    zendesk_email: str | None = None  # an admin agent's email ("/token" is added)
    zendesk_api_token: SecretStr | None = None
    zendesk_base_url: str | None = Field(
        None, description="overrides https://{subdomain}.zendesk.com/api/v2/ (the sandbox)"
    )

    sendgrid_api_key: SecretStr | None = None  # SG.… with read access to stats/suppressions
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = Field(
        None, description="the signed event webhook's verification key (base64 DER or PEM)"
    )
    mandrill_api_key: SecretStr | None = None  # Mailchimp Transactional (tech-touch email)
    mandrill_base_url: str = "https://mandrillapp.com/api/1.3"
    mailchimp_api_key: SecretStr | None = None  # …-us6: the suffix is the data centre
    mailchimp_base_url: str | None = Field(
        None, description="default https://<dc>.api.mailchimp.com/3.0 from the key's suffix"
    )

    @field_validator(
        "salesforce_instance_url",
        "salesforce_token_url",
        "slack_base_url",
        "hubspot_base_url",
        "zendesk_base_url",
        "sendgrid_base_url",
        "mailchimp_base_url",
        "mandrill_base_url",
    )
    @classmethod
    def _secure_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("must be an https:// URL (plain http only on localhost)")
        return value

    @field_validator("salesforce_ca_bundle", "salesforce_private_key_file")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    def require_salesforce(self) -> None:
        """Stop with the names of the Salesforce variables the chosen auth flow still needs."""
        needed = ["salesforce_instance_url", "salesforce_client_id"]
        if self.salesforce_auth_flow == "client_credentials":
            needed.append("salesforce_client_secret")
        else:
            needed += ["salesforce_username", "salesforce_private_key_file"]
        missing = [n.upper() for n in needed if getattr(self, n) in (None, "")]
        if missing:
            raise ConfigError(
                f"missing environment variable(s) for Salesforce ({self.salesforce_auth_flow} "
                f"flow): {', '.join(missing)}"
            )

    def require_hubspot(self) -> str:
        if self.hubspot_access_token is None:
            raise ConfigError(
                "missing environment variable: HUBSPOT_ACCESS_TOKEN (a HubSpot private app token)"
            )
        return self.hubspot_access_token.get_secret_value()

    def require_zendesk(self) -> tuple[str, str, str]:
        """(email, API token, base URL), or stop naming the variables still missing."""
        missing = [
            n.upper()
            for n in ("zendesk_email", "zendesk_api_token")
            if getattr(self, n) in (None, "")
        ]
        if not self.zendesk_base_url and not self.zendesk_subdomain:
            missing.append("ZENDESK_SUBDOMAIN")
        if missing:
            raise ConfigError(f"missing environment variable(s) for Zendesk: {', '.join(missing)}")
        assert self.zendesk_email is not None and self.zendesk_api_token is not None
        base = self.zendesk_base_url or f"https://{self.zendesk_subdomain}.zendesk.com/api/v2/"
        return self.zendesk_email, self.zendesk_api_token.get_secret_value(), base

    @field_validator("zendesk_subdomain")
    @classmethod
    def _subdomain(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("-", "").isalnum():
            raise ValueError("the subdomain only (acme for https://acme.zendesk.com)")
        return value

    def require_sendgrid(self) -> str:
        if self.sendgrid_api_key is None:
            raise ConfigError(
                "missing environment variable: SENDGRID_API_KEY "
                "(a SendGrid API key with stats and suppressions read access)"
            )
        return self.sendgrid_api_key.get_secret_value()

    def require_mailchimp(self) -> str:
        if self.mailchimp_api_key is None:
            raise ConfigError(
                "missing environment variable: MAILCHIMP_API_KEY "
                "(a Mailchimp Marketing API key, ending in -<data centre>)"
            )
        return self.mailchimp_api_key.get_secret_value()

    def require_slack(self) -> None:
        if self.slack_bot_token is None:
            raise ConfigError("missing environment variable: SLACK_BOT_TOKEN")


def load_settings() -> Settings:
    """Read the environment; an invalid value names its variable (never its secret value)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid environment: {problems}") from None


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
