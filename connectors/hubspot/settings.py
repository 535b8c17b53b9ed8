"""The environment variables of the HubSpot connection."""

from __future__ import annotations

from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings

from healthscore.core.errors import ConfigError
from healthscore.core.settings import ENV, secure_url


class HubSpotSettings(BaseSettings):
    model_config = ENV

    hubspot_access_token: SecretStr | None = None  # a private app's token
    hubspot_base_url: str = "https://api.hubapi.com"

    hubspot_urls_secure = field_validator("hubspot_base_url")(classmethod(secure_url))

    def require_hubspot(self) -> str:
        if self.hubspot_access_token is None:
            raise ConfigError(
                "missing environment variable: HUBSPOT_ACCESS_TOKEN (a HubSpot private app token)"
            )
        return self.hubspot_access_token.get_secret_value()
