"""Zendesk's cursor-paginated lists: organizations and satisfaction ratings.

Both page with ``page[size]`` (at most 100) and ``page[after]``; ``meta.has_more`` says when to
stop. The next page is asked for with our own base URL and the ``after_cursor`` (not by
following ``links.next``, whose host may differ from the one we were configured with).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.zendesk.client import ZendeskClient
from healthscore.core.errors import FatalError


@dataclass
class ListState:
    requests: int = 0
    records: int = 0


def pull_list(
    client: ZendeskClient,
    path: str,
    key: str,
    state: ListState,
    *,
    params: Mapping[str, Any] | None = None,
    page_size: int = 100,
) -> Iterator[list[dict[str, Any]]]:
    """Pages of the ``key`` objects of a cursor-paginated list endpoint."""
    base = {**(params or {}), "page[size]": page_size}
    query = dict(base)
    while True:
        body = client.get(path, query, what=path.removesuffix(".json"))
        state.requests += 1
        items = body.get(key)
        if not isinstance(items, list):
            raise FatalError(f"Zendesk {path}: no {key!r} list in the response")
        state.records += len(items)
        yield [i for i in items if isinstance(i, dict)]
        meta = body.get("meta") or {}
        if not meta.get("has_more"):
            return
        after = meta.get("after_cursor")
        if not after:
            raise FatalError(f"Zendesk {path}: has_more without an after_cursor")
        query = {**base, "page[after]": after}


def pull_organizations(
    client: ZendeskClient, state: ListState, *, page_size: int = 100
) -> Iterator[list[dict[str, Any]]]:
    return pull_list(client, "organizations.json", "organizations", state, page_size=page_size)


def pull_ratings(
    client: ZendeskClient, state: ListState, *, start_time: int, page_size: int = 100
) -> Iterator[list[dict[str, Any]]]:
    """Received (good or bad) satisfaction ratings changed since ``start_time`` (Unix s).

    A rating carries no organization: the caller joins it through its ticket.
    """
    return pull_list(
        client,
        "satisfaction_ratings.json",
        "satisfaction_ratings",
        state,
        params={"score": "received", "start_time": start_time},
        page_size=page_size,
    )
