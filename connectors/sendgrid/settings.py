"""The environment variables of the SendGrid connection."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from healthscore.core.errors import ConfigError
from healthscore.core.settings import ENV, secure_url


class SendGridSettings(BaseSettings):
    model_config = ENV

    sendgrid_api_key: SecretStr | None = None  # SG.… with read access to stats/suppressions
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = Field(
        None, description="the signed event webhook's verification key (base64 DER or PEM)"
    )

    sendgrid_urls_secure = field_validator("sendgrid_base_url")(classmethod(secure_url))

    def require_sendgrid(self) -> str:
        if self.sendgrid_api_key is None:
            raise ConfigError(
                "missing environment variable: SENDGRID_API_KEY "
                "(a SendGrid API key with stats and suppressions read access)"
            )
        return self.sendgrid_api_key.get_secret_value()
