"""Local emulators of the vendor APIs healthscore talks to, speaking the real wire protocol.

The real client libraries (simple-salesforce, slack-sdk, httpx) talk to these unmodified; the
demo, the tests and the benchmarks use them instead of the vendors.
"""

from sandbox.faults import FaultPlan
from sandbox.hubspot import HubSpotEmulator
from sandbox.hubspot_email import HubSpotEmailEmulator
from sandbox.mailchimp import MailchimpEmulator
from sandbox.salesforce import SalesforceEmulator
from sandbox.sendgrid import SendGridEmulator
from sandbox.server import EmulatorServer
from sandbox.slack import SlackEmulator
from sandbox.synthetic import SyntheticOrg, generate_org
from sandbox.tls import SandboxCA
from sandbox.wire import LoggedRequest
from sandbox.zendesk import ZendeskEmulator

__all__ = [
    "EmulatorServer",
    "FaultPlan",
    "HubSpotEmailEmulator",
    "HubSpotEmulator",
    "LoggedRequest",
    "MailchimpEmulator",
    "SalesforceEmulator",
    "SandboxCA",
    "SendGridEmulator",
    "SlackEmulator",
    "SyntheticOrg",
    "ZendeskEmulator",
    "generate_org",
]
