"""Zendesk Support through httpx: ticket export, organizations and CSAT as support signals."""

from connectors.zendesk.client import StartTimeTooRecent, ZendeskClient, classify
from connectors.zendesk.lists import ListState, pull_organizations, pull_ratings
from connectors.zendesk.signals import METRICS, aggregate
from connectors.zendesk.tickets import ExportState, export_start, pull_tickets, ticket_record

__all__ = [
    "METRICS",
    "ExportState",
    "ListState",
    "StartTimeTooRecent",
    "ZendeskClient",
    "aggregate",
    "classify",
    "export_start",
    "pull_organizations",
    "pull_ratings",
    "pull_tickets",
    "ticket_record",
]
