"""HubSpot through hubspot-api-client: companies as a source, health fields written back."""

from .client import HubSpotClient, classify
from .companies import CompanyRecord, CompanySync, pull_companies
from .writer import HubSpotWriter, ensure_properties

__all__ = [
    "CompanyRecord",
    "CompanySync",
    "HubSpotClient",
    "HubSpotWriter",
    "classify",
    "ensure_properties",
    "pull_companies",
]
