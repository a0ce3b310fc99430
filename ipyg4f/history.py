"""Cell-scoped conversation history, persisted in SQLite.

Each exchange (prompt + answer) belongs to one cell of one notebook thread:
``(notebook, thread, cell_id)`` is unique, so re-running a cell REPLACES its
exchange, keeping the position it got when the cell was first run.  The
context sent with a cell is the thread's exchanges of *other* cells, in that
first-run order.  Where no cell id exists (terminal IPython), each execution
gets a fresh id and is its own exchange.

The database lives in the per-user data directory with mode 0600; every write
is one SQLite transaction (WAL journal), so a crash or kernel restart loses no
completed exchange and never leaves a half-written file.  A reset archives a
thread's exchanges instead of deleting them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .messages import Messages

SCHEMA = """
CREATE TABLE IF NOT EXISTS exchange (
    id        INTEGER PRIMARY KEY,
    notebook  TEXT NOT NULL,
    thread    TEXT NOT NULL,
    cell_id   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    prompt    TEXT NOT NULL,
    answer    TEXT NOT NULL DEFAULT '',
    provider  TEXT NOT NULL DEFAULT '',
    model     TEXT NOT NULL DEFAULT '',
    status    TEXT NOT NULL DEFAULT 'ok',
    error     TEXT NOT NULL DEFAULT '',
    created   REAL NOT NULL,
    updated   REAL NOT NULL,
    archived  INTEGER NOT NULL DEFAULT 0,
    reasoning TEXT NOT NULL DEFAULT '',
    context   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS exchange_cell
    ON exchange (notebook, thread, cell_id) WHERE archived = 0;
CREATE INDEX IF NOT EXISTS exchange_order ON exchange (notebook, thread, archived, seq);
"""

#: statuses of an exchange
OK, INTERRUPTED, ERROR = "ok", "interrupted", "error"

#: one row per item a batch (``ipyg4f.map``) has sent: the key is a hash of everything that
#: decides the answer (filled prompt, provider, model, system prompt, parameters)
BATCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_result (
    key       TEXT PRIMARY KEY,
    prompt    TEXT NOT NULL,
    answer    TEXT NOT NULL DEFAULT '',
    provider  TEXT NOT NULL DEFAULT '',
    model     TEXT NOT NULL DEFAULT '',
    status    TEXT NOT NULL DEFAULT 'ok',
    error     TEXT NOT NULL DEFAULT '',
    elapsed   REAL NOT NULL DEFAULT 0,
    updated   REAL NOT NULL
);
"""


@dataclass(frozen=True)
class BatchRow:
    """One stored batch item: ``status`` is ``ok`` or ``error`` (``error`` says why)."""

    key: str
    prompt: str
    answer: str
    provider: str = ""
    model: str = ""
    status: str = OK
    error: str = ""
    elapsed: float = 0.0
    updated: float = 0.0


_BATCH_COLUMNS = "key, prompt, answer, provider, model, status, error, elapsed, updated"


@dataclass(frozen=True)
class Exchange:
    notebook: str
    thread: str
    cell_id: str
    seq: int
    prompt: str
    answer: str
    provider: str = ""
    model: str = ""
    status: str = OK
    error: str = ""
    created: float = 0.0
    updated: float = 0.0
    reasoning: str = ""  #: the model's thinking: shown, kept, never sent back as context
    context: str = ""  #: the attachments' block sent before the prompt (--with, --error; images named only)

    def as_messages(self) -> Messages:
        content = f"{self.context}\n\n{self.prompt}" if self.context else self.prompt
        out: Messages = [{"role": "user", "content": content}]
        if self.answer:
            out.append({"role": "assistant", "content": self.answer})
        return out


_COLUMNS = ("notebook, thread, cell_id, seq, prompt, answer, provider, model, status, error, created, updated, "
            "reasoning, context")


class HistoryStore:
    """Thread-safe access to the history database (``":memory:"`` for tests)."""

    def __init__(self, path: str | os.PathLike = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            _create_private(Path(self.path))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA + BATCH_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(exchange)")}
        if "reasoning" not in columns:  # a history file from before thinking was kept
            self._db.execute("ALTER TABLE exchange ADD COLUMN reasoning TEXT NOT NULL DEFAULT ''")
        if "context" not in columns:  # a history file from before attachments were kept
            self._db.execute("ALTER TABLE exchange ADD COLUMN context TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes ------------------------------------------------------------
    def record(self, notebook: str, thread: str, cell_id: str, prompt: str, answer: str, *,
               provider: str = "", model: str = "", status: str = OK, error: str = "",
               reasoning: str = "", context: str = "") -> Exchange:
        """Store a cell's exchange, replacing the one that cell stored before."""
        now = time.time()
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT seq, created FROM exchange WHERE notebook=? AND thread=? AND cell_id=? AND archived=0",
                (notebook, thread, cell_id)).fetchone()
            if row:
                seq, created = row
                self._db.execute(
                    "UPDATE exchange SET prompt=?, answer=?, provider=?, model=?, status=?, error=?, updated=?,"
                    " reasoning=?, context=? WHERE notebook=? AND thread=? AND cell_id=? AND archived=0",
                    (prompt, answer, provider, model, status, error, now, reasoning, context, notebook, thread,
                     cell_id))
            else:
                seq = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM exchange WHERE notebook=? AND thread=?",
                    (notebook, thread)).fetchone()[0]
                created = now
                self._db.execute(
                    f"INSERT INTO exchange ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (notebook, thread, cell_id, seq, prompt, answer, provider, model, status, error, now, now,
                     reasoning, context))
        return Exchange(notebook, thread, cell_id, seq, prompt, answer, provider, model, status, error,
                        created, now, reasoning, context)

    def reset(self, notebook: str, thread: str) -> int:
        """Archive a thread's exchanges (kept on disk, no longer used); returns how many."""
        with self._lock, self._db:
            cur = self._db.execute(
                "UPDATE exchange SET archived=1 WHERE notebook=? AND thread=? AND archived=0", (notebook, thread))
            return cur.rowcount

    # -- reads -------------------------------------------------------------
    def _select(self, where: str, args: tuple, limit: int | None = None) -> list[Exchange]:
        sql = f"SELECT {_COLUMNS} FROM exchange WHERE archived=0 AND {where} ORDER BY seq"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY seq', 'ORDER BY seq DESC')} LIMIT {int(limit)}) ORDER BY seq"
        with self._lock:
            return [Exchange(*row) for row in self._db.execute(sql, args)]

    def exchanges(self, notebook: str, thread: str, last: int | None = None) -> list[Exchange]:
        """The thread's exchanges in first-run order (only the ``last`` ones if given)."""
        return self._select("notebook=? AND thread=?", (notebook, thread), last)

    def count(self, notebook: str, thread: str) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM exchange WHERE archived=0 AND notebook=? AND thread=?",
                                    (notebook, thread)).fetchone()[0]

    def get(self, notebook: str, thread: str, cell_id: str) -> Exchange | None:
        found = self._select("notebook=? AND thread=? AND cell_id=?", (notebook, thread, cell_id))
        return found[0] if found else None

    def context(self, notebook: str, thread: str, cell_id: str, limit: int | None = None) -> list[Exchange]:
        """The thread's exchanges of other cells, in first-run order (the last ``limit``)."""
        if limit == 0:
            return []
        return self._select("notebook=? AND thread=? AND cell_id<>? AND (answer<>'' OR status='ok')",
                            (notebook, thread, cell_id), limit)

    def threads(self, notebook: str) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT thread FROM exchange WHERE notebook=? AND archived=0 GROUP BY thread ORDER BY MIN(created)",
                (notebook,))
            return [r[0] for r in rows]

    def check(self, quick: bool = False) -> str:
        """``"ok"``, or what SQLite found wrong (``quick``: skip the index cross-checks)."""
        with self._lock:
            return self._db.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check").fetchone()[0]

    # -- batch results (ipyg4f.map) ------------------------------------------
    def batch_get(self, key: str) -> BatchRow | None:
        """The stored result of one batch item, if any."""
        with self._lock:
            row = self._db.execute(f"SELECT {_BATCH_COLUMNS} FROM batch_result WHERE key=?", (key,)).fetchone()
        return BatchRow(*row) if row else None

    def batch_put(self, row: BatchRow) -> None:
        """Store (or replace) one batch item's result, in its own transaction."""
        with self._lock, self._db:
            self._db.execute(f"INSERT OR REPLACE INTO batch_result ({_BATCH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                             (row.key, row.prompt, row.answer, row.provider, row.model, row.status,
                              row.error, row.elapsed, row.updated or time.time()))

    def batch_count(self, status: str | None = None) -> int:
        """How many batch items are stored (with that status)."""
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        with self._lock:
            return self._db.execute(f"SELECT COUNT(*) FROM batch_result {where}", args).fetchone()[0]


def open_store(path: Path, warn=None) -> HistoryStore:
    """The store at ``path``; never fails for a bad file.

    An unreadable or corrupt file is moved aside (``<name>.corrupt-<time>``, kept
    for the user) and a new one started; where no file can be written at all,
    history lives in memory for this session.  ``warn(message)`` is told either way.
    """
    warn = warn or (lambda message: None)
    try:
        store = HistoryStore(path)
        if store.check(quick=True) == "ok":
            return store
        store.close()
        problem = "failed its integrity check"
    except sqlite3.DatabaseError as exc:
        problem = f"is not a readable history database ({exc})"
    except OSError as exc:
        warn(f"cannot write the history file {path} ({exc.strerror or exc}); "
             "history is kept in memory for this session only")
        return HistoryStore(":memory:")
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        path.rename(aside)
        store = HistoryStore(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        warn(f"the history file {path} {problem} and could not be replaced ({exc}); "
             "history is kept in memory for this session only")
        return HistoryStore(":memory:")
    warn(f"the history file {path} {problem}; it was moved to {aside.name} and a new one started")
    return store


def _create_private(path: Path) -> None:
    """Create the directory (0700) and the database file (0600) before SQLite opens it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)
