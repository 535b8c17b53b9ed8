"""The Zendesk emulator on the wire, and the client's status → error table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors.zendesk import StartTimeTooRecent, classify
from healthscore.core.errors import AuthError, FatalError, RateLimited, RetriableError
from sandbox import ZendeskEmulator


def test_export_pages_with_a_stable_cursor_and_sideloads_metric_sets() -> None:
    with ZendeskEmulator(limit_scale=600) as emu:
        emu.set_time(datetime.now(UTC) - timedelta(hours=1))
        org = emu.add_organization("Acme", ["acme.example"])
        ids = [emu.add_ticket(org, f"Ticket {i}", reopens=i % 2) for i in range(5)]
        emu.set_time(None)
        emu.add_ticket(org, "changed seconds ago: withheld")
        auth = (f"{emu.email}/token", emu.api_token)
        url = emu.api_url + "incremental/tickets/cursor.json"
        start = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
        with httpx.Client(auth=auth) as http:
            first = http.get(
                url, params={"start_time": start, "per_page": 3, "include": "metric_sets"}
            ).json()
            again = http.get(url, params={"start_time": start, "per_page": 3}).json()
            rest = http.get(url, params={"cursor": first["after_cursor"]}).json()
            empty = http.get(url, params={"cursor": rest["after_cursor"]}).json()
            orgs = http.get(emu.api_url + "organizations.json", params={"page[size]": 1})
    assert [t["id"] for t in first["tickets"]] == ids[:3] and not first["end_of_stream"]
    assert again["after_cursor"] == first["after_cursor"]  # a retried page is the same page
    assert [m["reopens"] for m in first["metric_sets"]] == [0, 1, 0]
    assert [t["id"] for t in rest["tickets"]] == ids[3:] and rest["end_of_stream"]
    assert empty["tickets"] == [] and empty["end_of_stream"] and empty["after_cursor"]
    body = orgs.json()
    assert body["organizations"][0]["domain_names"] == ["acme.example"]
    assert body["meta"]["has_more"] is False and body["links"]["next"] is None
    assert orgs.headers["X-Rate-Limit"] == "700" and "ratelimit-remaining" in orgs.headers


def _response(
    status: int, body: object = None, text: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    request = httpx.Request("GET", "https://acme.zendesk.com/api/v2/x")
    if body is not None:
        return httpx.Response(status, json=body, headers=headers, request=request)
    return httpx.Response(status, text=text, headers=headers, request=request)


@pytest.mark.parametrize(
    ("response", "kind", "message"),
    [
        (
            _response(
                429,
                text="Number of allowed API requests per minute exceeded",
                headers={"Retry-After": "17"},
            ),
            RateLimited,
            "per minute exceeded",
        ),
        (
            _response(429, {"error": "APIRateLimitExceeded"}, headers={"Retry-After": "42"}),
            RateLimited,
            "APIRateLimitExceeded",
        ),
        (_response(503, {"error": "ServiceUnavailable"}), RetriableError, "503"),
        (_response(500, text="<html>oops</html>"), RetriableError, "500"),
        (_response(401, {"error": "Couldn't authenticate you"}), AuthError, "ZENDESK_API_TOKEN"),
        (_response(403, {"error": "Forbidden"}), AuthError, "admin"),
        (
            _response(
                400,
                {
                    "error": "InvalidValue",
                    "description": "Too recent start_time. Use a start_time older than 1 minute",
                },
            ),
            StartTimeTooRecent,
            "Too recent",
        ),
        (
            _response(404, {"error": "RecordNotFound", "description": "Not found"}),
            FatalError,
            "RecordNotFound: Not found",
        ),
    ],
)
def test_status_decides_what_the_caller_does(response, kind, message) -> None:
    error = classify(response, "export")
    assert type(error) is kind and message in str(error)
    if isinstance(error, RateLimited):
        assert error.retry_after == float(response.headers["Retry-After"])
    assert classify(_response(200, {}), "x") is None


def test_ticket_rounds_add_tickets_not_organizations() -> None:
    from sandbox import generate_org

    org = generate_org(40, seed=3)
    now = datetime.now(UTC)
    with ZendeskEmulator() as once, ZendeskEmulator() as thrice:
        once.seed(org, now)
        thrice.seed(org, now, ticket_rounds=3)
        assert thrice.organization_count == once.organization_count
        assert once.ticket_count > 0
        assert 2 * once.ticket_count < thrice.ticket_count < 4 * once.ticket_count
