"""The history file of a real kernel: complete on its own once the kernel has ended or unloaded ipyg4f,
and holding the part of an answer that had streamed when the kernel was killed (SIGKILL)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from ipyg4f.history import DIED, HistoryStore
from kernel_harness import Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def server(protocol_server):
    """The session's protocol server (conftest), reset before and after each test."""
    return protocol_server


def start_kernel(server, data_dir: Path) -> Kernel:
    k = Kernel(env={"OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": "sk-test",
                    "IPYG4F_DATA_DIR": str(data_dir), "JPY_SESSION_NAME": str(data_dir / "notebook.ipynb")})
    k.ok("%load_ext ipyg4f")
    k.ok("%chat use -p OpenAI")
    return k


def answers_in_a_copy_of_the_main_file_alone(data_dir: Path, elsewhere: Path) -> list[tuple[str, str]]:
    """Back up ``history.sqlite3`` alone (no -wal, no -shm) and read the exchanges from the copy."""
    elsewhere.mkdir()
    shutil.copy(data_dir / "history.sqlite3", elsewhere / "history.sqlite3")
    db = sqlite3.connect(elsewhere / "history.sqlite3")
    try:
        return db.execute("SELECT prompt, answer FROM exchange ORDER BY seq").fetchall()
    finally:
        db.close()


def wal_is_empty(data_dir: Path) -> bool:
    wal = data_dir / "history.sqlite3-wal"
    return not wal.exists() or wal.stat().st_size == 0


def wait_until(condition, timeout: float = 60.0):
    """Poll ``condition()`` until it returns something true (the state another process reaches)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise TimeoutError(f"not reached within {timeout} s")


def sigkill(k: Kernel) -> None:
    """Kill the kernel process at once (no atexit, no final record); it is left unreaped (a zombie), as
    until the server that started it notices."""
    pid = k.km.provisioner.pid
    os.kill(pid, signal.SIGKILL)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped


def reap(k: Kernel) -> None:
    k.kc.stop_channels()
    wait_until(lambda: not k.km.is_alive())
    k.km.cleanup_resources()


def row(path: Path, cell_id: str):
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT status, answer FROM exchange WHERE cell_id=?", (cell_id,)).fetchone()
    finally:
        db.close()


def test_after_unload_and_after_exit_the_main_file_alone_holds_every_exchange(server, tmp_path):
    data_dir = tmp_path / "data"
    k = start_kernel(server, data_dir)
    try:
        for i in range(5):
            server.answer = f"answer {i} " + "padding " * 200  # enough to grow a WAL well past its header
            k.ok(f"%%chat\nquestion {i}")
        k.ok("%unload_ext ipyg4f")
        assert wal_is_empty(data_dir)
        copied = answers_in_a_copy_of_the_main_file_alone(data_dir, tmp_path / "backup1")
        assert [(q, a.split(" padding")[0]) for q, a in copied] == [(f"question {i}", f"answer {i}") for i in range(5)]
        k.ok("%load_ext ipyg4f")
        for i in range(5, 7):
            server.answer = f"answer {i}"
            k.ok(f"%%chat -p OpenAI\nquestion {i}")
    finally:
        k.km.shutdown_kernel(now=False)  # as Jupyter does when the notebook is closed: the kernel exits
        k.kc.stop_channels()
    assert wal_is_empty(data_dir)
    copied = answers_in_a_copy_of_the_main_file_alone(data_dir, tmp_path / "backup2")
    assert [q for q, _ in copied] == [f"question {i}" for i in range(7)]
    assert copied[-1][1] == "answer 6"


def test_a_kernel_killed_mid_answer_keeps_what_had_streamed_marked_partial(server, tmp_path):
    data_dir = tmp_path / "data"
    history = data_dir / "history.sqlite3"
    k = start_kernel(server, data_dir)
    try:
        server.answer = "the earlier answer"
        k.ok("%%chat\nfirst question", cell_id="cell-A")
        server.chunks = ["part0 ", "part1 ", "part2 "]
        server.fault, server.fault_after = "stall", 3  # three pieces, then nothing: the kernel is killed meanwhile
        k.send("%%chat\nsecond question", cell_id="cell-B")
        assert server.wait_stalled(timeout=60)
        assert wait_until(lambda: row(history, "cell-B") == ("streaming", "part0 part1 part2 "))
    finally:
        sigkill(k)
        server.release_stall()
    try:
        store = HistoryStore(history)
        first, second = store.exchanges(str(data_dir / "notebook.ipynb"), "default")
        assert (first.cell_id, first.status, first.answer) == ("cell-A", "ok", "the earlier answer")
        assert (second.cell_id, second.status, second.answer) == ("cell-B", "interrupted", "part0 part1 part2 ")
        assert second.error == DIED and second.partial
        store.close()
    finally:
        reap(k)


def test_a_rerun_killed_before_its_first_word_keeps_the_cells_earlier_answer(server, tmp_path):
    data_dir = tmp_path / "data"
    history = data_dir / "history.sqlite3"
    k = start_kernel(server, data_dir)
    try:
        server.answer = "the earlier answer"
        k.ok("%%chat\nthe question", cell_id="cell-A")
        server.fault, server.fault_after = "stall", 0  # the re-run gets nothing at all
        k.send("%%chat\nthe question", cell_id="cell-A")
        assert server.wait_stalled(timeout=60)
    finally:
        sigkill(k)
        server.release_stall()
        reap(k)
    assert row(history, "cell-A") == ("ok", "the earlier answer")
