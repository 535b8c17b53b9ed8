"""The store: accounts, signal history, scores, cursors, action log and pending CRM writes."""

from .accounts import AccountRow
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
from .signals import SignalRow
from .store import Store

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
