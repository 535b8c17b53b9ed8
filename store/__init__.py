"""The store: accounts, signal history, scores, cursors, action log and pending CRM writes."""

from .models import (
    Account,
    ActionLog,
    CrmFieldState,
    PendingWrite,
    Score,
    ScoreRun,
    SignalHistory,
    SignalLatest,
    SyncCursor,
)
from .store import AccountRow, SignalRow, Store

__all__ = [
    "Account",
    "AccountRow",
    "ActionLog",
    "CrmFieldState",
    "PendingWrite",
    "Score",
    "ScoreRun",
    "SignalHistory",
    "SignalLatest",
    "SignalRow",
    "Store",
    "SyncCursor",
]
