"""The store's engine and transactions: what every part of ``Store`` is built on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from .engine import make_engine, migrate


class StoreBase:
    """An engine on ``url`` (its schema created on open) and the sessions every part of
    ``Store`` reads and writes through."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._local_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        if self._local_lock is None:
            with self._sessions.begin() as session:
                yield session
            return
        # SQLite takes one writer at a time and makes the others retry with growing sleeps
        # (tens of ms each): this process's threads (a sync's sources at once) queue here
        with self._local_lock, self._sessions.begin() as session:
            yield session
