"""Salesforce: Accounts in (incremental on SystemModstamp), health fields out (Collections)."""

from connectors.salesforce.accounts import (
    AccountRecord,
    SyncState,
    build_soql,
    check_fields,
    pull_accounts,
)
from connectors.salesforce.client import SalesforceClient, classify
from connectors.salesforce.writer import SalesforceWriter

__all__ = [
    "AccountRecord",
    "SalesforceClient",
    "SalesforceWriter",
    "SyncState",
    "build_soql",
    "check_fields",
    "classify",
    "pull_accounts",
]
