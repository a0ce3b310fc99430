"""One SQLite file that several processes share: wait out their locks, repair one at a time, know who writes.

"database is locked" / "busy" means another connection (often another
process creating the same new file) holds a lock: it is waited for and
retried, never taken for a broken file.  :func:`owner` names this process so
that a row it is still writing can be told from one its dead writer left
(:func:`alive`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path

#: how long one statement waits for another process's lock (seconds)
BUSY_TIMEOUT = 10.0
#: how long opening a file keeps retrying while other processes hold it (seconds)
OPEN_PATIENCE = 60.0
#: SQLite's result codes for "another connection holds a lock"
_BUSY_CODES = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
#: a row written on another host counts as abandoned after this long without a save (seconds)
STALE_ELSEWHERE = 3600.0


def is_busy(exc: BaseException) -> bool:
    """Another connection holds a lock ("database is locked", "busy"): wait, it is not a broken file."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _BUSY_CODES
    return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc).lower() for w in ("locked", "busy"))


def retrying(action, patience: float | None = None):
    """``action()``, retried while another process holds the file (up to ``patience`` s, else OPEN_PATIENCE)."""
    deadline = time.monotonic() + (OPEN_PATIENCE if patience is None else patience)
    pause = 0.01
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)  # back off: the other process is creating or switching the file
        pause = min(pause * 2, 0.5)


class directory_lock:
    """An exclusive lock on a directory (POSIX ``flock``; elsewhere nothing): one repair at a time."""

    def __init__(self, folder: Path):
        self.folder, self.fd = folder, None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:
            return
        self.fd = os.open(self.folder, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock


def create_private(path: Path) -> None:
    """Create the directory (0700) and the database file (0600) before SQLite opens it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)


def move_aside(path: Path) -> Path:
    """Rename a database that cannot be read to ``<name>.corrupt-<time>`` (its WAL with it); the new name."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
    Path(f"{path}-shm").unlink(missing_ok=True)
    if Path(f"{path}-wal").exists():
        Path(f"{path}-wal").rename(f"{aside}-wal")
    path.rename(aside)
    return aside


# -- which process writes ---------------------------------------------------

_me: tuple[int, str] | None = None


def owner() -> str:
    """This process: ``host pid start``, the start time telling a reused pid apart."""
    global _me
    pid = os.getpid()
    if _me is None or _me[0] != pid:  # computed again in a forked child
        _me = (pid, f"{socket.gethostname()} {pid} {_started(pid)}")
    return _me[1]


def _started(pid: int) -> str:
    """When process ``pid`` started (Linux ``/proc``; elsewhere empty); ``"ended"`` for a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return ""
    if len(fields) < 20:
        return ""
    return "ended" if fields[0] in (b"Z", b"X") else fields[19].decode()  # killed, not yet reaped


def alive(who: str | None, updated: float | None) -> bool:
    """Whether the process ``who`` (an :func:`owner`), which wrote last at ``updated``, may still run."""
    host, _, rest = (who or "").partition(" ")
    pid, _, started = rest.partition(" ")
    if not pid.isdigit():
        return False
    if host != socket.gethostname():  # cannot ask another machine: trust recent saves only
        return time.time() - (updated or 0) < STALE_ELSEWHERE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        pass
    except OSError:
        return False
    now = _started(int(pid))
    return now != "ended" and (not started or now in (started, ""))


def connect(path: str, schema: str, table: str, added: tuple[str, ...]) -> sqlite3.Connection:
    """A connection (WAL, ``owner_alive()`` defined) with ``schema`` in place and the text columns
    ``added`` since the first version present in ``table``; "locked" while other processes create the
    same file is retried."""
    def attempt() -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
        try:
            db.create_function("owner_alive", 2, alive)
            if path != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # one process at a time creates or upgrades the tables
            for statement in filter(str.strip, schema.split(";")):
                db.execute(statement)
            columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for name in added:  # a file from an earlier version
                if name not in columns:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {name} TEXT NOT NULL DEFAULT ''")
            db.execute("COMMIT")
            return db
        except BaseException:
            db.close()
            raise

    return retrying(attempt)

