"""The sources.accounts_file section: accounts from a CSV file when there is no CRM."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

from pydantic import Field

from healthscore.core.durations import Duration
from healthscore.core.model import StrictModel as _Strict
from healthscore.core.text import utf8_problem


class AccountsFile(_Strict):
    """Accounts from a CSV file instead of a CRM (see healthscore/accounts_file.py).

    One row per account; every column but the id and name is kept as an account attribute
    (or only ``attributes`` when given). A relative path is relative to the YAML file.
    """

    path: Path
    id_column: str = "account_id"
    name_column: str = "name"
    start_column: str | None = Field(
        "start_date",
        description="the customer's start date (a snapshot before it leaves the account out)",
    )
    attributes: list[str] | None = Field(
        None, description="columns kept as attributes (default: every other column)"
    )
    sync_every: Duration = Field(
        timedelta(hours=1), description="how often beat re-imports the file"
    )

    def attribute_names(self) -> set[str] | None:
        """The attributes accounts will carry (None: not known until the file is read)."""
        if self.attributes is not None:
            return set(self.attributes) | ({self.start_column} if self.start_column else set())
        if not self.path.is_file():
            return None
        with self.path.open("rb") as handle:
            head = handle.read(1 << 16)
        if utf8_problem([head], whole=False):
            return None  # not known until imported, where the file is refused with the reason
        text = head.decode("utf-8-sig", errors="replace")
        header = next(csv.reader(io.StringIO(text, newline="")), [])
        return {c.strip() for c in header} - {self.id_column, self.name_column}
