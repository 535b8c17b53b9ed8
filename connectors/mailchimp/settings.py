"""The environment variables of the Mailchimp Marketing and Transactional connections."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from healthscore.core.errors import ConfigError
from healthscore.core.settings import ENV, secure_url


class MailchimpSettings(BaseSettings):
    model_config = ENV

    mandrill_api_key: SecretStr | None = None  # Mailchimp Transactional (tech-touch email)
    mandrill_base_url: str = "https://mandrillapp.com/api/1.3"
    mailchimp_api_key: SecretStr | None = None  # …-us6: the suffix is the data centre
    mailchimp_base_url: str | None = Field(
        None, description="default https://<dc>.api.mailchimp.com/3.0 from the key's suffix"
    )

    mailchimp_urls_secure = field_validator("mailchimp_base_url", "mandrill_base_url")(
        classmethod(secure_url)
    )

    def require_mailchimp(self) -> str:
        if self.mailchimp_api_key is None:
            raise ConfigError(
                "missing environment variable: MAILCHIMP_API_KEY "
                "(a Mailchimp Marketing API key, ending in -<data centre>)"
            )
        return self.mailchimp_api_key.get_secret_value()
