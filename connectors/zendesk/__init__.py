"""Zendesk Support through httpx: ticket export, organizations and CSAT as support signals."""

from .client import StartTimeTooRecent, ZendeskClient, classify
from .lists import ListState, pull_organizations, pull_ratings
from .signals import METRICS, aggregate
from .tickets import ExportState, export_start, pull_tickets, ticket_record

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
