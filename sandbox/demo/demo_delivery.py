"""The demo's delivery counts: tasks, emails and the requests delivery made to each vendor.

Counted from the emulators' request logs and records, the way the demo counts its Slack
messages: the tasks that exist by key (a Salesforce Collections upsert holds 200, a HubSpot
batch 100), the emails SendGrid accepted (a personalization each, up to 1,000 a request) and
``delivery_requests`` — every request delivery made to Slack, the CRM's task endpoints and
SendGrid's mail send.
"""

from __future__ import annotations

from collections import Counter

from sandbox import HubSpotEmulator, SalesforceEmulator, SlackEmulator
from sandbox.sendgrid import SendGridEmulator
from store import Store

DELIVERY_VENDORS = ("slack", "salesforce", "hubspot", "sendgrid")
SF_TASK_UPSERTS = r"/composite/sobjects/Task/Healthscore_Key__c$"
# the task back end's own queries: the tasks' owners, and tasks looked up by key
SF_TASK_QUERIES = ("SELECT Id, OwnerId FROM Account WHERE Id IN", "FROM Task WHERE Healthscore")
HS_TASK_CALLS = (
    ("POST", r"/crm/v3/objects/tasks/(batch/create|search)$"),
    ("POST", r"/crm/v4/associations/tasks/companies/batch/associate/default$"),
    ("PUT", r"/crm/v4/objects/tasks/"),
)


def delivery_counts(
    sf: SalesforceEmulator, hs: HubSpotEmulator, slack: SlackEmulator, sendgrid: SendGridEmulator
) -> dict[str, int]:
    """What delivery did at each vendor, from the emulators' logs and records: the tasks that
    exist by key, the emails SendGrid accepted (a personalization each; a request holds up to
    1,000) and the requests made to deliver them (Slack: every call; Salesforce and HubSpot:
    the task back end's writes, owner reads and look-ups; SendGrid: mail sends — the
    suppression lists are the sync's, read once a cycle)."""
    sf_queries = sum(
        1
        for r in sf.requests("GET", r"/query/?$")
        if any(q in str(r.query.get("q", "")) for q in SF_TASK_QUERIES)
    )
    mail_sends = sendgrid.requests("POST", r"/v3/mail/send$")
    return {
        "tasks": sum(1 for t in sf.records("Task") if t.get("Healthscore_Key__c"))
        + sum(1 for t in hs.records("tasks") if (t["properties"] or {}).get("healthscore_key")),
        "emails": sum(
            len((r.body or {}).get("personalizations") or []) for r in mail_sends if r.status == 202
        ),
        "slack_delivery": len(slack.requests()),
        "salesforce_delivery": len(sf.requests("PATCH", SF_TASK_UPSERTS)) + sf_queries,
        "hubspot_delivery": sum(len(hs.requests(m, path)) for m, path in HS_TASK_CALLS),
        "sendgrid_delivery": len(mail_sends),
    }


def tasks_once(store: Store, sf: SalesforceEmulator, hs: HubSpotEmulator) -> bool:
    """Each delivered task written once, by key, in the CRMs' upsert logs (Salesforce
    Collections upserts, HubSpot batch creates)."""
    sent = {a.key for a in store.actions(status="sent", kind="task")}
    written: Counter[str] = Counter()
    for r in sf.requests("PATCH", SF_TASK_UPSERTS):
        if r.status == 200:
            written.update(
                str(t.get("Healthscore_Key__c")) for t in (r.body or {}).get("records", [])
            )
    for r in hs.requests("POST", r"/objects/tasks/batch/create$"):
        if r.status in (201, 207):
            written.update(
                str((i.get("properties") or {}).get("healthscore_key"))
                for i in (r.body or {}).get("inputs", [])
            )
    return set(written) == sent and max(written.values(), default=1) == 1
