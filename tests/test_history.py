"""The history store on its own: cell-scoped replace, order, context, reset,
private file, and what happens with a bad file."""

from __future__ import annotations

import os

from ipyg4f.history import SCHEMA, HistoryStore, open_store


def test_rerun_replaces_and_keeps_first_run_order(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.record("nb", "t", "A", "q1", "a1")
    store.record("nb", "t", "B", "q2", "a2")
    store.record("nb", "t", "A", "q1 again", "a1 again")
    assert [(e.cell_id, e.prompt) for e in store.exchanges("nb", "t")] == [("A", "q1 again"), ("B", "q2")]
    assert [e.cell_id for e in store.context("nb", "t", "B")] == ["A"]
    assert [e.cell_id for e in store.context("nb", "t", "C", limit=1)] == ["B"]
    assert store.context("nb", "t", "C", limit=0) == []
    assert store.reset("nb", "t") == 2 and store.exchanges("nb", "t") == []
    store.record("nb", "t", "A", "fresh", "start")
    assert [e.prompt for e in store.exchanges("nb", "t")] == ["fresh"]
    assert oct(os.stat(tmp_path / "h.sqlite3").st_mode & 0o777) == "0o600"
    store.close()


def test_failed_exchanges_without_text_are_not_context(tmp_path):
    store = HistoryStore(":memory:")
    store.record("nb", "t", "A", "broke", "", status="error", error="HTTP 500")
    store.record("nb", "t", "B", "cut", "half an", status="interrupted")
    assert [e.cell_id for e in store.context("nb", "t", "C")] == ["B"]


def test_a_corrupt_file_is_moved_aside_and_a_new_one_started(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"this is not SQLite at all" * 100)
    warnings = []
    store = open_store(path, warn=warnings.append)
    store.record("nb", "t", "A", "q", "a")
    assert [e.prompt for e in store.exchanges("nb", "t")] == ["q"]
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("history.sqlite3.corrupt-")]
    assert len(kept) == 1 and kept[0].read_bytes().startswith(b"this is not SQLite")
    assert len(warnings) == 1 and "moved to history.sqlite3.corrupt-" in warnings[0]
    store.close()


def test_an_unwritable_place_keeps_history_in_memory(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the data directory should be")
    warnings = []
    store = open_store(blocker / "history.sqlite3", warn=warnings.append)
    store.record("nb", "t", "A", "q", "a")
    assert store.path == ":memory:" and len(store.exchanges("nb", "t")) == 1
    assert "in memory for this session only" in warnings[0]


def test_thinking_is_kept_apart_and_never_sent_back_as_context():
    store = HistoryStore(":memory:")
    store.record("nb", "t", "c1", "question", "the answer", reasoning="long thoughts")
    [ex] = store.exchanges("nb", "t")
    assert (ex.answer, ex.reasoning) == ("the answer", "long thoughts")
    [context] = store.context("nb", "t", "c2")
    assert "long thoughts" not in str(context.as_messages())


def test_a_history_file_from_before_thinking_was_kept_still_opens(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.replace(",\n    reasoning TEXT NOT NULL DEFAULT ''", ""))
    db.execute("INSERT INTO exchange (notebook, thread, cell_id, seq, prompt, answer, created, updated)"
               " VALUES ('nb', 't', 'c1', 1, 'q', 'a', 0, 0)")
    db.commit()
    db.close()
    store = HistoryStore(path)
    assert [(e.answer, e.reasoning) for e in store.exchanges("nb", "t")] == [("a", "")]
    store.record("nb", "t", "c2", "q2", "a2", reasoning="r2")
    assert store.get("nb", "t", "c2").reasoning == "r2"
    store.close()


def test_a_file_another_process_holds_is_waited_for_never_moved_aside(tmp_path, monkeypatch):
    import sqlite3

    from ipyg4f import history, sqlitefile

    path = tmp_path / "history.sqlite3"
    first = HistoryStore(path)
    first.record("nb", "t", "A", "kept", "safe")
    first.close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # as another kernel in the middle of creating or switching the file
    monkeypatch.setattr(sqlitefile, "OPEN_PATIENCE", 0.5)
    monkeypatch.setattr(history, "BUSY_TIMEOUT", 0.1)
    warnings = []
    store = open_store(path, warn=warnings.append)
    assert store.path == ":memory:"
    assert len(warnings) == 1 and "held by another process" in warnings[0] and "moved" not in warnings[0]
    assert [p.name for p in tmp_path.iterdir() if ".corrupt-" in p.name] == []
    holder.execute("COMMIT")
    holder.close()
    again = open_store(path, warn=warnings.append)
    assert [e.prompt for e in again.exchanges("nb", "t")] == ["kept"] and len(warnings) == 1
    again.close()


def _saved_by_a_process_that_died(path, cell_id: str, text: str) -> None:
    """A real process saves a streaming answer and ends without its final record (as a killed kernel)."""
    import subprocess
    import sys

    code = ("import sys; from ipyg4f.history import HistoryStore; s = HistoryStore(sys.argv[1]);"
            f"s.save_partial('nb', 't', {cell_id!r}, 'question', {text!r}); import os; os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)


def test_an_answer_saved_while_streaming_is_marked_until_its_final_record(tmp_path):
    store = HistoryStore(tmp_path / "h.sqlite3")
    store.record("nb", "t", "A", "before", "an earlier answer")
    assert store.save_partial("nb", "t", "B", "question", "half of", model="m1")
    [_, live] = store.exchanges("nb", "t")
    assert (live.status, live.answer, live.model) == ("streaming", "half of", "m1")
    assert [e.cell_id for e in store.context("nb", "t", "C")] == ["A"], "an answer still streaming is not context"
    store.record("nb", "t", "B", "question", "half of it, then the end")  # the final write replaces it, in place
    assert [(e.cell_id, e.status, e.answer) for e in store.exchanges("nb", "t")] == [
        ("A", "ok", "an earlier answer"), ("B", "ok", "half of it, then the end")]
    store.close()


def test_an_answer_left_streaming_by_a_dead_process_reads_interrupted_and_partial(tmp_path):
    from ipyg4f.history import DIED

    path = tmp_path / "h.sqlite3"
    _saved_by_a_process_that_died(path, "B", "the first half")
    store = HistoryStore(path)
    [ex] = store.exchanges("nb", "t")
    assert (ex.status, ex.answer, ex.error, ex.partial) == ("interrupted", "the first half", DIED, True)
    [context] = store.context("nb", "t", "C")
    assert context.as_messages()[-1]["content"] == "the first half\n\n[incomplete answer: interrupted]"
    store.close()
    again = open_store(path)  # opening settles it in the file too (a backup reads the same)
    again.close()
    import sqlite3

    db = sqlite3.connect(path)
    assert db.execute("SELECT status, error, owner FROM exchange").fetchall() == [("interrupted", DIED, "")]
    db.close()


def test_a_complete_answer_is_sent_back_unmarked():
    store = HistoryStore(":memory:")
    store.record("nb", "t", "A", "q", "the whole answer")
    assert store.context("nb", "t", "B")[0].as_messages()[-1]["content"] == "the whole answer"
