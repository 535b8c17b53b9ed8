"""Workspace members of the Slack emulator and the user object Slack returns for them.

``users.lookupByEmail`` answers ``{"ok": true, "user": {...}}`` with the full user object of
docs.slack.dev/reference/methods/users.lookupByEmail ("Typical success response"): ``id``,
``team_id``, ``name``, ``deleted``, ``color``, ``real_name``, ``tz``, ``tz_label``,
``tz_offset``, ``profile`` (``avatar_hash``, ``status_*``, ``real_name``, ``display_name``,
their ``*_normalized`` forms, ``email``, ``image_24`` … ``image_512``, ``team``), the
``is_admin`` / ``is_owner`` / ``is_primary_owner`` / ``is_restricted`` /
``is_ultra_restricted`` / ``is_bot`` / ``is_app_user`` flags, ``updated`` (epoch seconds) and
``has_2fa``.  See /work/shared/api-specs/slack.md §4.
"""

from __future__ import annotations

import hashlib
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: sizes of the ``profile.image_<n>`` avatar URLs
IMAGE_SIZES = (24, 32, 48, 72, 192, 512)
#: ``tz_label`` Slack shows for a zone: (standard time, daylight saving time)
_TZ_LABELS = {
    "Etc/UTC": ("Coordinated Universal Time", "Coordinated Universal Time"),
    "UTC": ("Coordinated Universal Time", "Coordinated Universal Time"),
    "Europe/London": ("Greenwich Mean Time", "British Summer Time"),
    "Europe/Berlin": ("Central European Time", "Central European Summer Time"),
    "Europe/Paris": ("Central European Time", "Central European Summer Time"),
    "America/New_York": ("Eastern Standard Time", "Eastern Daylight Time"),
    "America/Chicago": ("Central Standard Time", "Central Daylight Time"),
    "America/Denver": ("Mountain Standard Time", "Mountain Daylight Time"),
    "America/Los_Angeles": ("Pacific Standard Time", "Pacific Daylight Time"),
}
_DEFAULT_AVATAR = "https://a.slack-edge.com/df10d/img/avatars/ava_0001-{size}.png"


def _normalized(text: str) -> str:
    """Slack's ``*_normalized`` profile fields: the name without accents."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _tz_fields(tz: str, now: datetime) -> dict[str, Any]:
    try:
        local = now.astimezone(ZoneInfo(tz))
    except (ZoneInfoNotFoundError, ValueError):
        return {"tz": tz, "tz_label": tz, "tz_offset": 0}
    offset = local.utcoffset()
    dst = bool(local.dst())
    labels = _TZ_LABELS.get(tz)
    label = labels[dst] if labels else str(local.tzname() or tz)
    return {
        "tz": tz,
        "tz_label": label,
        "tz_offset": int(offset.total_seconds()) if offset is not None else 0,
    }


@dataclass
class SlackUser:
    """One member; ``name`` is the real name, the handle is the email's local part."""

    id: str
    team_id: str
    email: str
    name: str
    deleted: bool = False
    tz: str = "Etc/UTC"
    updated: int = field(default_factory=lambda: int(time.time()))

    def touch(self) -> None:
        self.updated = max(int(time.time()), self.updated + 1)

    def profile(self) -> dict[str, Any]:
        handle = self.email.split("@")[0]
        display = handle.split(".")[0]
        first, _, last = self.name.partition(" ")
        digest = hashlib.md5(self.email.strip().lower().encode(), usedforsecurity=False)
        email_hash = digest.hexdigest()
        images = {
            f"image_{size}": (
                f"https://secure.gravatar.com/avatar/{email_hash}.jpg?s={size}"
                f"&d={quote(_DEFAULT_AVATAR.format(size=size), safe='')}"
            )
            for size in IMAGE_SIZES
        }
        return {
            "title": "",
            "phone": "",
            "skype": "",
            "avatar_hash": "g" + email_hash[:11],
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "real_name": self.name,
            "display_name": display,
            "real_name_normalized": _normalized(self.name),
            "display_name_normalized": _normalized(display),
            "first_name": first,
            "last_name": last,
            "email": self.email,
            **images,
            "team": self.team_id,
        }

    def as_json(self, now: datetime | None = None) -> dict[str, Any]:
        """The user object of ``users.lookupByEmail`` / ``users.info``."""
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.email.split("@")[0],
            "deleted": self.deleted,
            "color": hashlib.sha256(self.id.encode()).hexdigest()[:6],
            "real_name": self.name,
            **_tz_fields(self.tz, now or datetime.now(UTC)),
            "profile": self.profile(),
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": False,
            "is_app_user": False,
            "updated": self.updated,
            "is_email_confirmed": True,
            "has_2fa": False,
        }
