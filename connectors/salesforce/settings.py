"""Salesforce API constants and the environment variables of its connection."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from healthscore.core.errors import ConfigError
from healthscore.core.settings import ENV, secure_url

API_VERSION = "59.0"
COLLECTION_LIMIT = 200  # records per sObject Collections request
REQUEST_TIMEOUT = 60.0  # seconds per HTTP request
DAILY_LIMIT_WAIT = 3600.0  # the 24 h allocation is spent: retry much later, never in-process
SOQL_DATETIME = "%Y-%m-%dT%H:%M:%SZ"


class SalesforceSettings(BaseSettings):
    """SALESFORCE_*: the org, the connected app and its auth flow."""

    model_config = ENV

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
    salesforce_api_version: str = API_VERSION

    salesforce_urls_secure = field_validator("salesforce_instance_url", "salesforce_token_url")(
        classmethod(secure_url)
    )

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
