"""The environment variables of the Zendesk connection."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from healthscore.core.errors import ConfigError
from healthscore.core.settings import ENV, secure_url


class ZendeskSettings(BaseSettings):
    model_config = ENV

    zendesk_subdomain: str | None = None  # acme for https://acme.zendesk.com
    zendesk_email: str | None = None  # an admin agent's email ("/token" is added)
    zendesk_api_token: SecretStr | None = None
    zendesk_base_url: str | None = Field(
        None, description="overrides https://{subdomain}.zendesk.com/api/v2/ (the sandbox)"
    )

    zendesk_urls_secure = field_validator("zendesk_base_url")(classmethod(secure_url))

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
