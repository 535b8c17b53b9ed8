"""The ``Store`` facade: every read and write the pipeline makes, one method each, gathered
from one module per job."""

from __future__ import annotations

from .accounts import AccountsMixin
from .action_log import ActionLogMixin
from .attribute_history import AttributeHistoryMixin
from .cursors import CursorsMixin
from .identity import IdentityMixin
from .product_usage import UsageMixin
from .scores import ScoresMixin
from .signals import SignalsMixin
from .source_records import SourceRecordsMixin
from .writeback import WritebackMixin


class Store(
    AccountsMixin,
    IdentityMixin,
    SignalsMixin,
    UsageMixin,
    AttributeHistoryMixin,
    SourceRecordsMixin,
    CursorsMixin,
    ScoresMixin,
    ActionLogMixin,
    WritebackMixin,
):
    """SQLite by default, PostgreSQL when the URL says so; the schema is created on open."""
