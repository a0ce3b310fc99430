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

Several processes (kernels, batch workers) may share the file: "locked" or
"busy" is waited out, never taken for corruption.  An answer is saved while it
streams (status ``streaming``, with the writing process as ``owner``); one left
``streaming`` by a process that no longer runs reads as ``interrupted``, marked
partial.  :meth:`HistoryStore.close` (at unload and at exit) checkpoints the WAL
into the main file, so that file alone holds every exchange.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path

from .exchange import _ADDED, _BATCH_COLUMNS, _COLUMNS, DIED, INTERRUPTED, OK, STREAMING, BatchRow, Exchange
from .sqlitefile import BUSY_TIMEOUT, alive, connect, create_private, directory_lock, is_busy, move_aside, owner, retrying

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
    context   TEXT NOT NULL DEFAULT '',
    owner     TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX IF NOT EXISTS exchange_cell
    ON exchange (notebook, thread, cell_id) WHERE archived = 0;
CREATE INDEX IF NOT EXISTS exchange_order ON exchange (notebook, thread, archived, seq);
"""

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


#: the open file stores, so that a forked child gives each a fresh lock (see HistoryStore._forked)
_stores: weakref.WeakSet = weakref.WeakSet()


class HistoryStore:
    """Thread-safe access to the history database (``":memory:"`` for tests)."""

    def __init__(self, path: str | os.PathLike = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            create_private(Path(self.path))
        self._lock = threading.Lock()
        self._conn = _connect(self.path)
        self._pid = os.getpid()
        self._closed = False
        if self.path != ":memory:":
            atexit.register(self.close)  # the WAL goes into the main file even if nobody unloads
            _stores.add(self)

    @property
    def _db(self) -> sqlite3.Connection:
        """This process's connection: a forked child (a ``multiprocessing`` worker) opens its own."""
        if self._pid != os.getpid() and not self._closed:
            self._conn, self._pid = _connect(self.path), os.getpid()
        return self._conn

    def _forked(self) -> None:
        """In a forked child: a lock another thread of the parent held stays held here; start afresh."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Checkpoint the WAL into the main file (truncating it) and close; the file alone then holds all."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._pid != os.getpid():
                return  # the parent's connection, inherited by fork: the parent closes it
            try:
                if self.path != ":memory:":
                    self._conn.execute("PRAGMA busy_timeout=1000")  # at exit, do not wait long for other kernels
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # another process reads or writes: it (or the last to close) checkpoints later
            finally:
                self._conn.close()
        atexit.unregister(self.close)

    # -- writes ------------------------------------------------------------
    def record(self, notebook: str, thread: str, cell_id: str, prompt: str, answer: str, *,
               provider: str = "", model: str = "", status: str = OK, error: str = "",
               reasoning: str = "", context: str = "", tool_messages: str = "", steps: str = "",
               usage: str = "", variants: str = "") -> Exchange:
        """Store a cell's exchange, replacing the one that cell stored before (or its answer so far).

        ``tool_messages``, ``steps``, ``usage`` and ``variants`` are JSON text (:class:`Exchange`)."""
        who = owner() if status == STREAMING else ""
        now = time.time()
        fields = (prompt, answer, provider, model, status, error, now, reasoning, context, tool_messages, steps,
                  usage, variants, who)
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT seq, created FROM exchange WHERE notebook=? AND thread=? AND cell_id=? AND archived=0",
                (notebook, thread, cell_id)).fetchone()
            if row:
                seq, created = row
                self._db.execute(
                    "UPDATE exchange SET prompt=?, answer=?, provider=?, model=?, status=?, error=?, updated=?,"
                    " reasoning=?, context=?, tool_messages=?, steps=?, usage=?, variants=?, owner=?"
                    " WHERE notebook=? AND thread=? AND cell_id=? AND archived=0",
                    (*fields, notebook, thread, cell_id))
            else:
                seq = self._db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1 FROM exchange WHERE notebook=? AND thread=?",
                    (notebook, thread)).fetchone()[0]
                created = now
                self._db.execute(
                    f"INSERT INTO exchange ({_COLUMNS}, owner) VALUES ({', '.join('?' * 19)})",
                    (notebook, thread, cell_id, seq, *fields[:6], now, *fields[6:]))
        return Exchange(notebook, thread, cell_id, seq, prompt, answer, provider, model, status, error,
                        created, now, reasoning, context, tool_messages, steps, usage, variants)

    def save_partial(self, notebook: str, thread: str, cell_id: str, prompt: str, answer: str, **fields: str) -> bool:
        """Store the answer so far, marked ``streaming`` (the final :meth:`record` replaces it).

        Waits at most a moment for another process's lock: False when it could not (the next save will)."""
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=200")
        try:
            self.record(notebook, thread, cell_id, prompt, answer, status=STREAMING, **fields)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            return False
        finally:
            with self._lock:
                if not self._closed:
                    self._db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT * 1000)}")
        return True

    def settle_dead(self) -> int:
        """Mark ``interrupted`` (partial) the answers left ``streaming`` by processes that no longer run."""
        with self._lock, self._db:
            if not self._db.execute("SELECT 1 FROM exchange WHERE status=? LIMIT 1", (STREAMING,)).fetchone():
                return 0  # the usual case: no write, no lock
            return self._db.execute(
                "UPDATE exchange SET status=?, error=?, owner='' WHERE status=? AND NOT owner_alive(owner, updated)",
                (INTERRUPTED, DIED, STREAMING)).rowcount

    def reset(self, notebook: str, thread: str) -> int:
        """Archive a thread's exchanges (kept on disk, no longer used); returns how many."""
        with self._lock, self._db:
            cur = self._db.execute(
                "UPDATE exchange SET archived=1 WHERE notebook=? AND thread=? AND archived=0", (notebook, thread))
            return cur.rowcount

    # -- reads -------------------------------------------------------------
    def _select(self, where: str, args: tuple, limit: int | None = None) -> list[Exchange]:
        """Rows as exchanges; one left ``streaming`` by a process that no longer runs reads as interrupted."""
        sql = f"SELECT {_COLUMNS}, owner FROM exchange WHERE archived=0 AND {where} ORDER BY seq"
        if limit is not None:
            sql = f"SELECT * FROM ({sql.replace('ORDER BY seq', 'ORDER BY seq DESC')} LIMIT {int(limit)}) ORDER BY seq"
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        out = []
        for row in rows:
            ex = Exchange(*row[:-1])
            if ex.status == STREAMING and not alive(row[-1], ex.updated):
                ex = replace(ex, status=INTERRUPTED, error=DIED)
            out.append(ex)
        return out

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
        """The thread's exchanges of other cells, in first-run order (the last ``limit``).

        An answer still streaming elsewhere has not ended: it is left out (one whose process died is in,
        marked partial)."""
        if limit == 0:
            return []
        return self._select("notebook=? AND thread=? AND cell_id<>? AND (answer<>'' OR status='ok')"
                            " AND NOT (status='streaming' AND owner_alive(owner, updated))",
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


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: [store._forked() for store in list(_stores)])


def open_store(path: Path, warn=None) -> HistoryStore:
    """The store at ``path``; never fails for a bad file, never takes a busy one for a bad one.

    Another process holding the file (creating it, writing) is waited for.  A
    file SQLite cannot read, or that fails its quick check, is moved aside
    (``<name>.corrupt-<time>``, kept for the user) and a new one started; that
    is decided holding a lock on the directory, after opening once more, so two
    processes never both replace it.  Where no file can be written at all,
    history lives in memory for this session.  ``warn(message)`` is told either way.
    """
    warn = warn or (lambda message: None)
    try:
        try:
            return _open_checked(path)
        except _Unreadable:
            pass
        with directory_lock(path.parent):
            try:
                return _open_checked(path)  # another process may have replaced it meanwhile
            except _Unreadable as bad:
                return _replace(path, str(bad), warn)
    except sqlite3.OperationalError as exc:  # still locked after OPEN_PATIENCE: busy, not broken
        warn(f"the history file {path} is held by another process ({exc}); "
             "history is kept in memory for this session only")
    except OSError as exc:
        warn(f"cannot write the history file {path} ({exc.strerror or exc}); "
             "history is kept in memory for this session only")
    return HistoryStore(":memory:")


class _Unreadable(Exception):
    """The file is not a history database SQLite can read (what is wrong is the message)."""


def _open_checked(path: Path) -> HistoryStore:
    """Open and quick-check; raises :class:`_Unreadable` for a bad file, ``OperationalError`` if it stays busy."""
    try:
        store = HistoryStore(path)
    except sqlite3.DatabaseError as exc:
        if is_busy(exc):
            raise
        raise _Unreadable(f"is not a readable history database ({exc})") from None
    try:
        problem = retrying(lambda: store.check(quick=True))
        if problem == "ok":
            retrying(store.settle_dead)
            return store
    except sqlite3.DatabaseError as exc:
        store.close()
        if is_busy(exc):
            raise
        raise _Unreadable(f"is not a readable history database ({exc})") from None
    store.close()
    raise _Unreadable("failed its integrity check")


def _replace(path: Path, problem: str, warn) -> HistoryStore:
    """Move a bad file aside and start a new one."""
    try:
        aside = move_aside(path)
        store = HistoryStore(path)
    except (OSError, sqlite3.DatabaseError) as exc:
        warn(f"the history file {path} {problem} and could not be replaced ({exc}); "
             "history is kept in memory for this session only")
        return HistoryStore(":memory:")
    warn(f"the history file {path} {problem}; it was moved to {aside.name} and a new one started")
    return store


def _connect(path: str) -> sqlite3.Connection:
    return connect(path, SCHEMA + BATCH_SCHEMA, "exchange", _ADDED)
