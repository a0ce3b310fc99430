"""Several processes share one history file: opening a NEW file at the same moment, closing it at exit.

"database is locked" while another process creates the file is not corruption:
no file is moved aside and no exchange is lost.  A process that ends closes its
store, so the main file alone holds every exchange (a backup of it is complete).
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from ipyg4f.history import HistoryStore

PROCESSES = 4
TESTS = Path(__file__).resolve().parent


def _open_record_round(base: str, me: int, rounds: int, barrier, warnings) -> None:
    """One worker: each round, all workers open the same fresh file at once and store one exchange."""
    from ipyg4f.history import open_store

    for n in range(rounds):
        path = Path(base) / f"round{n}" / "history.sqlite3"
        barrier.wait(timeout=100)  # everyone opens the new file at the same moment
        store = open_store(path, warn=lambda m: warnings.put(f"round {n}, worker {me}: {m}"))
        store.record("nb", "t", f"cell-{me}", f"question {me}", f"answer {me}")
        barrier.wait(timeout=100)  # nobody closes before everyone has written
        store.close()


def _chat_round(base: str, me: int, rounds: int, barrier, warnings) -> None:
    """One worker: a real IPython shell; each round loads ipyg4f on a fresh data directory and runs %%chat."""
    import os

    sys.path.insert(0, str(TESTS))
    from IPython.core.interactiveshell import InteractiveShell

    from fakes import ScriptedProvider
    from ipyg4f.providers import register

    register(ScriptedProvider, "Scripted")
    shell = InteractiveShell.instance()
    for n in range(rounds):
        os.environ["IPYG4F_DATA_DIR"] = str(Path(base) / f"round{n}")
        ScriptedProvider.enqueue([f"answer {me}"])
        said = io.StringIO()
        with contextlib.redirect_stderr(said):
            shell.run_cell("%load_ext ipyg4f")  # the store opens at the first use, right after the barrier
            barrier.wait(timeout=100)
            result = shell.run_cell(f"%%chat -p Scripted -c t\nquestion {me}")
        if "ipyg4f:" in said.getvalue():
            warnings.put(f"round {n}, worker {me}: {said.getvalue()}")
        if not result.success:
            warnings.put(f"round {n}, worker {me}: the cell failed: {result.error_in_exec!r}")
        barrier.wait(timeout=100)
        shell.run_cell("%unload_ext ipyg4f")


def _run_workers(target, base: Path, rounds: int) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier, warnings = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=target, args=(str(base), i, rounds, barrier, warnings)) for i in range(PROCESSES)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=100)
    assert [w.exitcode for w in workers] == [0] * PROCESSES
    said = []
    while not warnings.empty():
        said.append(warnings.get())
    return said


def _assert_nothing_lost(base: Path, rounds: int, thread: str = "t") -> None:
    for n in range(rounds):
        folder = base / f"round{n}"
        aside = sorted(p.name for p in folder.iterdir() if ".corrupt-" in p.name)
        assert aside == [], f"round {n}: a healthy file was moved aside: {aside}"
        db = sqlite3.connect(folder / "history.sqlite3")
        answers = sorted(a for (a,) in db.execute("SELECT answer FROM exchange WHERE thread=?", (thread,)))
        db.close()
        assert answers == [f"answer {i}" for i in range(PROCESSES)], f"round {n}: an exchange was lost"


def test_processes_opening_a_new_history_file_at_once_lose_nothing(tmp_path):
    rounds = 40
    warnings = _run_workers(_open_record_round, tmp_path, rounds)
    assert warnings == []
    _assert_nothing_lost(tmp_path, rounds)


def test_ipython_shells_starting_on_a_fresh_data_directory_at_once_lose_nothing(tmp_path):
    rounds = 16
    warnings = _run_workers(_chat_round, tmp_path, rounds)
    assert warnings == []
    _assert_nothing_lost(tmp_path, rounds)


def _record_in_forked_child(store: HistoryStore) -> None:
    store.record("nb", "t", "child", "q", "from the child")


def test_a_forked_worker_uses_a_connection_and_a_lock_of_its_own(tmp_path):
    store = HistoryStore(tmp_path / "history.sqlite3")
    store.record("nb", "t", "parent", "q", "from the parent")
    ctx = multiprocessing.get_context("fork")  # as multiprocessing workers calling ipyg4f.map on Linux
    with store._lock:  # another thread of the kernel is in the middle of a write when the worker forks
        child = ctx.Process(target=_record_in_forked_child, args=(store,))
        child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0, "the child waited forever for a lock its parent's thread held"
    store.record("nb", "t", "parent2", "q", "the parent goes on")
    assert [e.answer for e in store.exchanges("nb", "t")] == ["from the parent", "from the child", "the parent goes on"]
    assert store.check() == "ok"
    store.close()
