"""The feedback log: one SQLite row per thumbs up/down, safe when several people answer at once.

SQLite serialises writers with its own file lock (WAL mode lets readers go on meanwhile); each record is one
short transaction, and a writer that finds the database busy waits up to `timeout` seconds instead of failing.
SQLite's own busy wait does not cover every case: switching a new file to WAL, or opening one while another
connection recovers or checkpoints its log, can answer "database is locked" at once. Those are retried here,
with a short back-off, until the same `timeout`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from assistant.errors import AssistantError

FEEDBACK_FILE = "feedback.sqlite3"
_T = TypeVar("_T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    session TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (0, 1)),
    comment TEXT NOT NULL DEFAULT '',
    mode TEXT NOT NULL DEFAULT '',
    abstained INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    id: int
    created: str
    session: str
    question: str
    answer: str
    citations: list[dict[str, Any]]
    rating: int  # 1 = thumbs up, 0 = thumbs down
    comment: str
    mode: str
    abstained: bool


class FeedbackLog:
    """Append-only feedback store at `path` (created on first use)."""

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AssistantError(
                f"Cannot open the feedback log {self.path} ({exc}); check the folder is writable."
            ) from exc
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":  # persistent: set once per file
                conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    def _retrying(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `work` on a fresh connection, again after a busy answer SQLite did not wait out itself."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            conn: sqlite3.Connection | None = None
            try:
                conn = self._connect()
                return work(conn)
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + delay > deadline:
                    raise AssistantError(
                        f"Cannot use the feedback log {self.path} ({exc}); check the folder is writable, "
                        "then try again."
                    ) from exc
            except sqlite3.Error as exc:
                raise AssistantError(f"Cannot use the feedback log {self.path} ({exc}); try again.") from exc
            finally:
                if conn is not None:
                    conn.close()
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def record(
        self,
        *,
        session: str,
        question: str,
        answer: str,
        citations: Sequence[dict[str, Any]],
        rating: int,
        comment: str = "",
        mode: str = "",
        abstained: bool = False,
    ) -> int:
        """Append one entry; return its id."""
        if rating not in (0, 1):
            raise ValueError(f"rating must be 0 (down) or 1 (up); got {rating!r}")
        row = (
            time.strftime("%Y-%m-%dT%H:%M:%S%z"), session, question, answer,
            json.dumps(list(citations), ensure_ascii=False), rating, comment.strip(), mode, int(abstained),
        )  # fmt: skip

        def insert(conn: sqlite3.Connection) -> int:
            with conn:  # one transaction; sqlite waits for the lock up to `timeout`
                cursor = conn.execute(
                    "INSERT INTO feedback (created, session, question, answer, citations, rating, comment, mode, "
                    "abstained) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            return int(cursor.lastrowid or 0)

        return self._retrying(insert)

    def entries(self) -> list[FeedbackEntry]:
        if not self.path.exists():
            return []
        rows = self._retrying(
            lambda conn: conn.execute(
                "SELECT id, created, session, question, answer, citations, rating, comment, mode, abstained "
                "FROM feedback ORDER BY id"
            ).fetchall()
        )
        return [
            FeedbackEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7], r[8], bool(r[9])) for r in rows
        ]
