"""Rules over score state and history that produce action intents.

An intent's key names its rule, account and *episode* (the run in which the account entered
the condition), so the same episode can never produce a second intent, whatever retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Intent:
    key: str
    rule: str
    kind: str
    account_id: str
    target: str | None
    payload: dict[str, Any]


def entered_red_intents(run_id: int, current: dict[str, dict[str, Any]],
                        previous_grades: dict[str, str], channel: str | None) -> list[Intent]:
    """An alert for each account that is red now and was not red in its previous score.

    ``current`` maps account id → alert payload (with ``grade``). An account scored for the
    first time counts as entering its grade.
    """
    return [
        Intent(key=f"entered_red:{account_id}:run{run_id}", rule="entered_red", kind="slack",
               account_id=account_id, target=channel, payload=payload)
        for account_id, payload in current.items()
        if payload["grade"] == "red" and previous_grades.get(account_id) != "red"
    ]
