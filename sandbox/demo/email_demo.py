"""The demo's email platforms: the SendGrid and Mailchimp emulators (started and seeded with
the others, ``serve_demo.demo_sandbox``), SendGrid's events delivered through the real webhook
receiver (signed, over HTTP)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from connectors.sendgrid.webhook_app import PATH, SendGridWebhookApp, make_server_for
from healthscore.config import Config
from sandbox import MailchimpEmulator, SendGridEmulator
from scoring import Scorecard
from store import Store


@dataclass
class EmailSandbox:
    sendgrid: SendGridEmulator
    mailchimp: MailchimpEmulator

    def settings(self) -> dict[str, Any]:
        """Settings fields pointing the connectors at the emulators."""
        return {
            "sendgrid_api_key": self.sendgrid.api_key,
            "sendgrid_base_url": self.sendgrid.base_url,
            "sendgrid_webhook_public_key": self.sendgrid.webhook_public_key,
            "mailchimp_api_key": self.mailchimp.api_key,
            "mailchimp_base_url": self.mailchimp.base_url,
        }

    @staticmethod
    def enable(config: Config) -> Config:
        """Both platforms on, and their open rates as Engagement measures of the scorecard."""
        sources = config.sources
        sendgrid = sources.sendgrid.model_copy(update={"enabled": True})
        mailchimp = sources.mailchimp.model_copy(update={"enabled": True})
        card = config.scorecard.model_dump(by_alias=True)
        card["measures"].update(email_measures(sendgrid.metric_prefix, mailchimp.metric_prefix))
        return config.model_copy(
            update={
                "sources": sources.model_copy(
                    update={"sendgrid": sendgrid, "mailchimp": mailchimp}
                ),
                "scorecard": Scorecard.model_validate(card),
            }
        )

    def deliver_webhook(self, store: Store, config: Config) -> int:
        """POST every SendGrid event to a real receiver (signed batches); events kept."""
        app = SendGridWebhookApp(
            store, self.sendgrid.webhook_public_key, config.sources.sendgrid, recompute_every=0
        )
        server = make_server_for(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_port}{PATH}"
            responses = self.sendgrid.post_events(url, batch_size=1000)
            bad = [r for r in responses if r.status_code != 200]
            if bad:
                raise RuntimeError(f"webhook answered {bad[0].status_code}: {bad[0].text}")
            return sum(int(r.json()["new"]) for r in responses)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


def email_measures(sendgrid_prefix: str, mailchimp_prefix: str) -> dict[str, Any]:
    """Open rate over 90 days: 10 % scores 0, 45 % and above 100 (a CS-ops starting point)."""
    return {
        "email_opens": {
            "label": "Lifecycle email open rate (90d)",
            "group": "engagement",
            "weight": 1,
            "metric": sendgrid_prefix + "open_rate_90d",
            "linear": {"from": 0.10, "to": 0.45},
            "unit": "%",
        },
        "newsletter_opens": {
            "label": "Newsletter open rate (90d)",
            "group": "engagement",
            "weight": 1,
            "metric": mailchimp_prefix + "open_rate_90d",
            "linear": {"from": 0.10, "to": 0.45},
            "unit": "%",
        },
    }
