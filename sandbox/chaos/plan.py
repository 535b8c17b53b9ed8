"""The fault plan of a chaos run: 10 % of vendor requests fail (429, 5xx, an answer lost as
after a timeout), Salesforce's tokens expire, HubSpot refuses the write-back with a 401 until
the faults are lifted, and slow points hold a request open so a worker is killed inside it."""

from __future__ import annotations

from typing import Any

from sandbox.server import EmulatorServer

SHARE = 0.10  # of every request, split evenly between the three kinds below
KINDS = ("rate_limit", "server_error", "timeout")
# the vendors' APIs, not their sign-in (Salesforce's token endpoint answers no 429 or
# REQUEST_LIMIT_EXCEEDED; the expired token below is its fault)
API = r"^(?!/services/oauth2/)"
# A Slack post answered 5xx stops Slack for the rest of that run by design (the delivery
# holds a destination that errs; actions.delivery_batches), so every alert behind it waits a
# whole interval: posts get the 429s (waited out) and the lost answers (reconciled by key);
# Slack's reads get the 5xx.
NOT_SLACK_POSTS = r"^(?!.*chat\.postMessage)"
HUBSPOT_WRITE = r"/crm/v3/objects/companies/batch/update$"
# where a worker is killed: inside a Slack post (delivery) or a Salesforce collections
# update (write-back); the emulator holds the request for ``delay`` seconds, then serves it
SLOW_POINTS = {
    "delivery": ("slack", "POST", r"chat\.postMessage"),
    "write_back": ("salesforce", "PATCH", r"/composite/sobjects/?$"),
    "task": ("salesforce", "PATCH", r"/sobjects/Task/Healthscore_Key__c"),
    "email": ("sendgrid", "POST", r"/v3/mail/send$"),
}


# on top of the share, each kind at least once where it hurts: a sync page, a write-back,
# an alert post and a mail send whose answers are lost
ONCE = (
    ("salesforce", "expired_session", "GET", r"/query"),  # 401 INVALID_SESSION_ID: sign in again
    ("salesforce", "server_error", "GET", r"/query"),
    ("salesforce", "timeout", "GET", r"/query"),
    ("hubspot", "rate_limit", "POST", HUBSPOT_WRITE),  # then the 401s below
    ("slack", "timeout", "POST", r"chat\.postMessage"),
    ("sendgrid", "timeout", "POST", r"/v3/mail/send$"),
)


def inject(emulators: dict[str, EmulatorServer], seed: int) -> None:
    """Turn the faults on: each kind at SHARE/3 of every emulator's requests (seeded per
    emulator) and ONCE (Salesforce's token expired among them), HubSpot's write-back answers
    401 until the faults are lifted."""
    for name, kind, method, path in ONCE:
        emulators[name].faults.add(kind, method=method, path=path, times=1)
    for n, (name, emulator) in enumerate(sorted(emulators.items())):
        if name == "hubspot":
            emulator.faults.add("expired_session", method="POST", path=HUBSPOT_WRITE)
        for k, kind in enumerate(KINDS):
            path = NOT_SLACK_POSTS if (name, kind) == ("slack", "server_error") else API
            emulator.faults.add(
                kind, path=path, share=SHARE / len(KINDS), seed=seed * 100 + n * 10 + k
            )


def slow_point(
    emulators: dict[str, EmulatorServer], where: str, delay: float, times: int = 1
) -> None:
    """Hold the next ``times`` requests at ``where`` (see SLOW_POINTS) for ``delay`` seconds;
    it goes before the share rules, so the held request is served normally."""
    name, method, path = SLOW_POINTS[where]
    emulators[name].faults.add(
        "slow", method=method, path=path, times=times, delay=delay, first=True
    )


def lift(emulators: dict[str, EmulatorServer]) -> None:
    """Every fault off: the vendors answer normally from now on."""
    for emulator in emulators.values():
        emulator.faults.clear()


def injected(emulators: dict[str, EmulatorServer]) -> dict[str, Any]:
    """Faults the emulators answered with, by vendor and kind (slow points are not faults)."""
    counts: dict[str, int] = {}
    for name, emulator in sorted(emulators.items()):
        for r in emulator.requests():
            if r.fault is not None and r.fault != "slow":
                counts[f"{name} {r.fault}"] = counts.get(f"{name} {r.fault}", 0) + 1
    return counts
