"""HubSpot through hubspot-api-client: companies as a source, health fields written back."""

from connectors.hubspot.client import HubSpotClient, classify
from connectors.hubspot.companies import CompanyRecord, CompanySync, pull_companies
from connectors.hubspot.writer import HubSpotWriter, ensure_properties

__all__ = [
    "CompanyRecord",
    "CompanySync",
    "HubSpotClient",
    "HubSpotWriter",
    "classify",
    "ensure_properties",
    "pull_companies",
]
