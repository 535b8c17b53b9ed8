"""The YAML sections for governance: who may override a grade, and how fresh data must be.

overrides:
  allowed_roles: [account_owner, cs_lead]   # account_owner: the account's own CSM
  allowed_users: [vp-cs@example.com]
  roles:
    cs_lead: [lead.one@example.com, lead.two@example.com]
  max_duration: 90d        # an override lasts at most this long
  notify_before: 3d        # Slack note to the owner this long before it expires

freshness:
  default: 1d              # data older than this makes an account stale
  sources: {usage_file: 2d}   # per source (the signal source name)
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from healthscore.core.durations import Duration

ACCOUNT_OWNER = "account_owner"  # built-in role: the CSM who owns the account


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OverridePolicy(_Strict):
    allowed_roles: list[str] = Field(
        default_factory=lambda: [ACCOUNT_OWNER], description="roles that may set an override"
    )
    allowed_users: list[str] = Field(
        default_factory=list, description="emails that may set one whatever their role"
    )
    roles: dict[str, list[str]] = Field(default_factory=dict, description="role → emails")
    default_duration: Duration = Field(timedelta(days=30), description="when none is given")
    max_duration: Duration = Field(timedelta(days=90), description="the longest allowed")
    notify_before: Duration = Field(
        timedelta(days=3),
        description="Slack note to the owner this long before an override expires",
    )

    @field_validator("allowed_users")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if "@" not in v]
        if bad:
            raise ValueError(f"not an email address: {', '.join(bad)}")
        return [v.strip().casefold() for v in value]

    @field_validator("roles")
    @classmethod
    def _role_emails(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, emails in value.items():
            bad = [e for e in emails if "@" not in e]
            if bad:
                raise ValueError(f"{role}: not an email address: {', '.join(bad)}")
        return {r: [e.strip().casefold() for e in emails] for r, emails in value.items()}

    @model_validator(mode="after")
    def _known_roles(self) -> OverridePolicy:
        unknown = [r for r in self.allowed_roles if r != ACCOUNT_OWNER and r not in self.roles]
        if unknown:
            raise ValueError(
                f"allowed_roles: no role {', '.join(map(repr, unknown))} under "
                f"'roles' (built in: {ACCOUNT_OWNER})"
            )
        if self.default_duration > self.max_duration:
            raise ValueError("default_duration is longer than max_duration")
        return self

    def permits(self, email: str | None, owner_email: str | None) -> tuple[bool, str]:
        """(allowed?, why) for ``email`` setting an override on an account owned by
        ``owner_email``."""
        who = (email or "").strip().casefold()
        if not who:
            return False, "no user given (who set it is unknown)"
        if who in self.allowed_users:
            return True, "allowed user"
        for role in self.allowed_roles:
            if role == ACCOUNT_OWNER:
                if owner_email and who == owner_email.strip().casefold():
                    return True, "account owner"
            elif who in self.roles.get(role, []):
                return True, f"role {role}"
        roles = ", ".join(self.allowed_roles) or "none"
        return False, f"{email} may not override grades (allowed roles: {roles}" + (
            f"; users: {', '.join(self.allowed_users)})" if self.allowed_users else ")"
        )


class Freshness(_Strict):
    default: Duration = Field(timedelta(days=1), description="data older than this is stale")
    sources: dict[str, Duration] = Field(default_factory=dict, description="source → its own limit")
    channel: str | None = Field(
        None,
        description="Slack channel for 'source stopped' "
        "operations alerts (default: the alert channel)",
    )

    def limit(self, source: str) -> timedelta:
        return self.sources.get(source, self.default)
