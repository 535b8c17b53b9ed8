"""Identity resolution: which CRM account does a record from another system belong to?

A record is matched by a configured external id first (e.g. the record CRM's account id kept
on a second CRM's company), then by web/email domain. Free-mail domains (gmail.com, …) identify no
company and are ignored. A domain that belongs to two accounts is *ambiguous*: reported,
never guessed. A record that matches nothing is *unmatched*: counted and listed
(``healthscore sources --unmatched``), never silently dropped.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

DOMAIN = "domain"
ACCOUNT = "account"  # external key kind: the CRM account id itself

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "ymail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "outlook.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "zoho.com",
        "qq.com",
        "163.com",
        "126.com",
        "fastmail.com",
        "hey.com",
        "tutanota.com",
    }
)


def domain_of(value: str | None) -> str | None:
    """``jane@Acme.com``, ``https://www.acme.com/about`` or ``acme.com`` → ``acme.com``."""
    if not value:
        return None
    text = value.strip().lower()
    if "@" in text and "://" not in text:
        text = text.rsplit("@", 1)[1]
    if "://" not in text:
        text = "//" + text
    host = urlsplit(text).hostname or ""
    host = host.strip(".")
    if host.startswith("www."):
        host = host[4:]
    if "." not in host or " " in host:
        return None
    return host


def _parents(domain: str) -> Iterable[str]:
    """``eu.app.acme.com`` → itself, ``app.acme.com``, ``acme.com`` (never a bare TLD)."""
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        yield ".".join(labels[start:])


@dataclass(frozen=True)
class Match:
    account_id: str | None
    method: str  # external_id | domain | "" when unmatched
    reason: str = ""  # no_match | ambiguous | no_key (when unmatched)
    detail: str = ""

    @property
    def matched(self) -> bool:
        return self.account_id is not None


K = TypeVar("K", bound=Hashable)


class IdentityIndex:
    """Lookups built once per sync from the store's account keys.

    A key with one owner (nearly all) maps to that account id itself, not to a one-element
    set: at 100k accounts that is tens of megabytes less per sync.
    """

    def __init__(
        self, keys: Iterable[tuple[str, str, str]], account_ids: Iterable[str] = ()
    ) -> None:
        self._accounts: set[str] = set(account_ids)
        self._external: dict[tuple[str, str], str | set[str]] = {}
        self._domains: dict[str, str | set[str]] = {}
        for kind, value, account_id in keys:
            if kind == DOMAIN:
                _add(self._domains, value.lower(), account_id)
            else:
                _add(self._external, (kind, value), account_id)

    def _owners(self, kind: str, value: str) -> set[str]:
        held = self._external.get((kind, value))
        owners = {held} if isinstance(held, str) else set(held or ())
        if kind == ACCOUNT and value in self._accounts:
            owners.add(value)
        return owners

    def resolve(
        self, *, external: Iterable[tuple[str, str | None]] = (), domains: Iterable[str | None] = ()
    ) -> Match:
        """Match by the first external id that is known, else by domain.

        ``external`` holds (kind, value) pairs, e.g. ``("crm:account", "001…")`` — a
        CRM account id itself is kind ``account``. ``domains`` are emails, URLs or domains.
        """
        for kind, value in external:
            if not value:
                continue
            owners = self._owners(kind, value)
            if len(owners) == 1:
                return Match(next(iter(owners)), "external_id")
        seen: list[str] = []
        for raw in domains:
            domain = domain_of(raw)
            if domain is None or domain in FREE_MAIL_DOMAINS:
                continue
            seen.append(domain)
            for candidate in _parents(domain):
                held = self._domains.get(candidate)
                if not held:
                    continue
                owners = {held} if isinstance(held, str) else held
                if len(owners) > 1:
                    return Match(
                        None,
                        "",
                        "ambiguous",
                        f"domain {candidate} belongs to {len(owners)} accounts: "
                        + ", ".join(sorted(owners)),
                    )
                return Match(next(iter(owners)), "domain")
        if not seen:
            return Match(None, "", "no_key", "no external id and no company domain")
        return Match(None, "", "no_match", "no account with domain " + ", ".join(seen))


def _add(index: dict[K, str | set[str]], key: K, account_id: str) -> None:
    held = index.get(key)
    if held is None:
        index[key] = account_id
    elif isinstance(held, str):
        if held != account_id:
            index[key] = {held, account_id}
    else:
        held.add(account_id)
