"""A prompt repeated within one ``--map`` run is sent once and its answer used for every copy, reported
as such ("sent once, used N times"), never as "from the store" (the protocol server echoes each prompt)."""

from __future__ import annotations

from fakes import ScriptedProvider
from ipyg4f.history import HistoryStore
from test_batch import run, sent, srv  # noqa: F401  (the server fixture)
from test_commands import chat_cell, ip  # noqa: F401  (the shell fixture)


def test_a_repeated_prompt_is_sent_once_and_used_for_every_copy(srv):
    srv.chunk_delay = 0.01  # answers take a moment: copies arrive while the first is on its way
    items = ["apple", "pear", "apple", "apple", "plum", "pear"]
    result = run(srv, items, "name {item}", concurrency=4)
    assert list(result) == [f"name {i}" for i in items]
    assert sorted(sent(srv)) == ["name apple", "name pear", "name plum"], "each prompt sent once"
    assert (result.sent, result.cached, result.reused, result.repeated) == (3, 0, 3, 2)
    summary = result.summary()
    assert "6/6 answered, 0 from the store, 3 sent, 2 repeated prompts sent once each, used 5 times in all" in summary
    assert "from the store" in summary and "3 from the store" not in summary


def test_one_worker_after_the_first_ended_still_says_used_again_not_from_the_store(srv, tmp_path):
    store = HistoryStore(tmp_path / "b.sqlite3")
    result = run(srv, ["a", "b", "a", "a"], store=store, concurrency=1)
    assert sent(srv) == ["a", "b"]
    summary = result.summary()
    assert "4/4 answered, 0 from the store, 2 sent, 1 repeated prompt sent once, used 3 times" in summary, summary

    srv.reset()
    srv.echo = True
    again = run(srv, ["a", "b", "a", "a"], store=store, concurrency=1)  # a re-run: all of it is in the store
    assert sent(srv) == [] and list(again) == ["a", "b", "a", "a"]
    assert "4/4 answered, 4 from the store, 0 sent" in again.summary() and "repeated" not in again.summary()


def test_a_failed_repeated_prompt_fails_every_copy_with_one_request(srv):
    srv.fault, srv.fault_match = "http500", "bad"
    result = run(srv, ["bad", "good", "bad"], retries=0, concurrency=2)
    assert sent(srv).count("bad") == 1
    assert result.errors.keys() == {0, 2} and result[1] == "good"
    assert result.errors[0] == result.errors[2]


def test_json_copies_are_not_the_same_object(srv):
    srv.echo = False
    srv.answer = '{"label": "pos"}'
    result = run(srv, ["x", "x"], json=True)
    assert result[0] == result[1] == {"label": "pos"} and result[0] is not result[1]
    assert len(srv.requests) == 1


def test_the_map_cell_reports_the_repeats(ip, capsys):
    ScriptedProvider.enqueue(["yes"])
    ScriptedProvider.enqueue(["no"])
    ip.user_ns["words"] = ["red", "blue", "red", "red"]
    assert chat_cell(ip, "--map words -o answers -j 1", "Is {item} warm?") is None
    out = capsys.readouterr().out
    assert "4/4 answered, 0 from the store, 2 sent, 1 repeated prompt sent once, used 3 times" in out, out
    assert list(ip.user_ns["answers"]) == ["yes", "no", "yes", "yes"]
    assert len(ScriptedProvider.requests) == 2
