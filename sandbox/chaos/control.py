"""The chaos emulators' control and log endpoint, served from the emulators' own process.

The runner asks it (plain HTTP on 127.0.0.1) to turn faults on and off, to hold a request at a
slow point, to move accounts into red and back (new episodes), and for ``/state``: what the
vendors hold and logged — Slack messages, CRM tasks and emails by idempotency key, the health
fields on every Salesforce Account and matched HubSpot company, requests in flight, faults.
"""

from __future__ import annotations

import json
import random
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox.chaos import plan
from sandbox.demo.serve_demo import DemoSandbox
from sandbox.server import EmulatorServer, Request, Response

# an account pushed into red: no one logs in, adoption gone, urgent cases open, detractor NPS
RED_VALUES = {
    "Active_Users_30d__c": 0.0,
    "Logins_30d__c": 0.0,
    "Feature_Adoption__c": 1.0,
    "Open_Cases__c": 6.0,
    "Urgent_Open_Cases__c": 4.0,
    "NPS_Score__c": 0.0,
}


class InFlight:
    """Requests being served right now, by slow point (a worker is inside one of them)."""

    def __init__(self, emulators: dict[str, EmulatorServer]) -> None:
        self._lock = threading.Lock()
        self.now: Counter[str] = Counter()
        for where, (name, method, path) in plan.SLOW_POINTS.items():
            _track(emulators[name], self, where, method, path)

    def change(self, where: str, by: int) -> None:
        with self._lock:
            self.now[where] += by

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {where: self.now[where] for where in plan.SLOW_POINTS}


def _track(emulator: EmulatorServer, flight: InFlight, where: str, method: str, path: str) -> None:
    """Count the requests at ``where`` while the emulator serves them (its dispatch, wrapped)."""
    pattern, inner = re.compile(path), emulator.dispatch

    def dispatch(req: Request) -> tuple[Response, str | None]:
        if req.method != method or not pattern.search(req.path):
            return inner(req)
        flight.change(where, 1)
        try:
            return inner(req)
        finally:
            flight.change(where, -1)

    emulator.dispatch = dispatch  # type: ignore[method-assign]


class Control:
    """What the endpoint does, on the running sandbox."""

    def __init__(self, box: DemoSandbox, write_fields: dict[str, str], seed: int) -> None:
        self.box = box
        self.emulators: dict[str, EmulatorServer] = {
            "salesforce": box.salesforce,
            "hubspot": box.hubspot,
            "zendesk": box.zendesk,
            "slack": box.slack,
            "sendgrid": box.email.sendgrid,
            "mailchimp": box.email.mailchimp,
        }
        self.flight = InFlight(self.emulators)
        self.write_fields = write_fields  # role → Account field
        self.seed = seed
        self.rng = random.Random(seed)
        self.reddened: dict[str, dict[str, Any]] = {}  # account id → its values before
        self.faulty_since = self.under_faults = 0  # request counts (see ``faults``)

    def faults(self, on: bool) -> dict[str, Any]:
        """Faults on or off; counts the requests the vendors answered in between."""
        seen = sum(len(e.requests()) for e in self.emulators.values())
        if on:
            plan.inject(self.emulators, self.seed)
            self.faulty_since = seen
        else:
            plan.lift(self.emulators)
            self.under_faults = seen - self.faulty_since
        return {"faults": on}

    def slow(self, where: str, delay: float) -> dict[str, Any]:
        plan.slow_point(self.emulators, where, delay)
        return {"slow": where}

    def churn(self, red: int, recover: int) -> dict[str, Any]:
        """``recover`` accounts pushed red earlier get their values back (their episode ends);
        ``red`` others are pushed into red (a new episode each)."""
        sf = self.box.salesforce
        back = sorted(self.reddened)[:recover]
        for account_id in back:
            sf.update("Account", account_id, self.reddened.pop(account_id))
        candidates = [a for a in self.box.sf_ids if a not in self.reddened and a not in back]
        chosen = self.rng.sample(candidates, min(red, len(candidates)))
        for account_id in chosen:
            record = sf.record("Account", account_id)
            last = (datetime.now(UTC) - timedelta(days=75)).date().isoformat()
            values = {**RED_VALUES, "Last_Login_Date__c": last}
            self.reddened[account_id] = {f: record.get(f) for f in values}
            sf.update("Account", account_id, values)
        return {"reddened": chosen, "recovered": back}

    def state(self) -> dict[str, Any]:
        box = self.box
        fields = self.write_fields
        accounts = {
            r["Id"]: {role: r.get(field) for role, field in fields.items()}
            for r in box.salesforce.records("Account")
        }
        companies = {r["id"]: r.get("properties", r) for r in box.hubspot.records("companies")}
        tasks = Counter(
            t.get("Healthscore_Key__c")
            for t in box.salesforce.records("Task")
            if t.get("Healthscore_Key__c")
        )
        slack = [
            {
                "key": ((m.get("metadata") or {}).get("event_payload") or {}).get("key"),
                "ts": float(m.get("ts") or 0),
            }
            for m in box.slack.messages
        ]
        emails = Counter(
            (m.get("custom_args") or {}).get("healthscore_key") for m in box.email.sendgrid.sent
        )
        return {
            "accounts": accounts,
            "companies": companies,
            "slack": slack,
            "tasks": dict(tasks),
            "emails": {k: n for k, n in emails.items() if k},
            "in_flight": self.flight.snapshot(),
            "faults": plan.injected(self.emulators),
            "requests_under_faults": self.under_faults,
            "reddened": sorted(self.reddened),
        }


def serve_control(control: Control) -> ThreadingHTTPServer:
    """Serve ``control`` on a free port of 127.0.0.1 from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _answer(self, body: dict[str, Any], status: int = 200) -> None:
            payload = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            if self.path == "/state":
                self._answer(control.state())
            elif self.path == "/in-flight":
                self._answer(control.flight.snapshot())
            else:
                self._answer({"error": f"no {self.path}"}, 404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            routes = {
                "/faults": lambda: control.faults(bool(body["on"])),
                "/slow": lambda: control.slow(str(body["where"]), float(body["delay"])),
                "/churn": lambda: control.churn(int(body["red"]), int(body["recover"])),
            }
            if self.path not in routes:
                self._answer({"error": f"no {self.path}"}, 404)
                return
            try:
                self._answer(routes[self.path]())
            except (KeyError, ValueError) as exc:
                self._answer({"error": f"{self.path}: bad request ({exc})"}, 400)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="chaos-control", daemon=True).start()
    return server
