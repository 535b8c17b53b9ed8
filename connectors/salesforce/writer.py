"""Write health fields to Accounts through sObject Collections (200 records a request)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.config import WriteBackFields
from connectors.salesforce.settings import COLLECTION_LIMIT


class SalesforceWriter:
    """The Salesforce side of the CRM write-back contract (``healthscore.pipeline.writeback``)."""

    crm = "salesforce"

    def __init__(
        self, client: SalesforceClient, fields: WriteBackFields, batch_size: int = COLLECTION_LIMIT
    ) -> None:
        self.client = client
        self.fields = fields.model_dump()
        self.batch_size = min(batch_size, COLLECTION_LIMIT)

    def write(self, batch: list[tuple[str, Mapping[str, Any]]]) -> dict[str, str | None]:
        """One request; per account ``None`` when written, else the vendor's error text."""
        records = [
            {
                "attributes": {"type": "Account"},
                "id": account_id,
                **{self.fields[role]: value for role, value in values.items()},
            }
            for account_id, values in batch
        ]
        results = self.client.update_collection(records)
        outcome: dict[str, str | None] = {}
        for (account_id, _values), result in zip(batch, results, strict=True):
            if result.get("success"):
                outcome[account_id] = None
            else:
                errors = result.get("errors") or [{}]
                outcome[account_id] = "; ".join(
                    f"{e.get('statusCode', 'UNKNOWN')}: {e.get('message', '')}" for e in errors
                )
        return outcome
