"""Batch prompting in process (ipyg4f.batch): the protocol server's OpenAI endpoint, echoing each prompt.

The server answers every request with its last message (``echo``), so each
answer says which item it belongs to, and its request log shows exactly what
was sent.  Faults hit only the requests that match (``fault_match``) or the
next N (``fault_times``).  Nothing here sleeps to synchronise.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from ipyg4f import http
from ipyg4f.batch import structured as batch_json
from ipyg4f.batch import amap, run_batch
from ipyg4f.batch import map as batch_map
from ipyg4f.batch import progress as batch_progress
from ipyg4f.batch.job import BatchJob
from ipyg4f.batch.progress import WidgetBar
from ipyg4f.chat import Chat
from ipyg4f.errors import ProviderConnectionError
from ipyg4f.history import HistoryStore
from ipyg4f.providers import AsyncGeneratorProvider, register, unregister
from ipyg4f.render.stream import Throttle

LABEL_SCHEMA = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["pos", "neg"]}}}


@pytest.fixture
def srv(protocol_server, monkeypatch, tmp_path):
    for var in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "IPYG4F_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))  # the default store: never the user's
    protocol_server.echo = True
    return protocol_server


def run(srv, data, template="{item}", *, store=None, **kw):
    kw.setdefault("backoff", 0.01)
    return run_batch(template, data, provider="OpenAI", options={"base_url": f"{srv.base_url}/v1"},
                     store=store if store is not None else HistoryStore(":memory:"), **kw)


def sent(srv):
    """The user message of every chat request the server received, in arrival order."""
    return [r.json["messages"][-1]["content"] for r in srv.requests if r.path == "/v1/chat/completions"]


def test_answers_align_with_the_input_under_random_latencies(srv):
    srv.latency = lambda rec: random.Random(rec.body).uniform(0.0, 0.04)
    items = [f"item {i}" for i in range(60)]
    result = run(srv, items, "say {item}", concurrency=8)
    assert list(result) == [f"say item {i}" for i in range(60)]
    assert (result.errors, result.pending, result.status, result.sent) == ({}, [], "ok", 60)
    assert sorted(sent(srv)) == sorted(f"say item {i}" for i in range(60))


def test_each_item_is_one_user_message_with_the_system_prompt_never_the_thread(srv, tmp_path):
    chat = Chat()
    chat.store.record(chat.notebook, "default", "cell-1", "an earlier question", "an earlier answer")
    result = run(srv, [{"name": "Ada", "year": 1815}], "{name} was born in {year}; {other}", chat=chat,
                 system="Be brief.", namespace={"other": "from the namespace"}, temperature=0.2, max_tokens=9)
    assert list(result) == ["Ada was born in 1815; from the namespace"]
    [request] = srv.requests
    assert request.json["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Ada was born in 1815; from the namespace"}]
    assert (request.json["temperature"], request.json["max_tokens"]) == (0.2, 9)


def test_a_429_waits_as_long_as_retry_after_says(srv, monkeypatch):
    srv.fault, srv.fault_times, srv.retry_after = "http429", 2, "0.4"
    waits = []  # what each retry decided to wait, in seconds (not how long it took)
    delay = BatchJob._delay

    def recorded(self, *args):
        waits.append(delay(self, *args))
        return waits[-1]

    monkeypatch.setattr(BatchJob, "_delay", recorded)
    result = run(srv, [f"q{i}" for i in range(6)], concurrency=3, retries=2)
    assert list(result) == [f"q{i}" for i in range(6)] and result.errors == {}
    assert len(sent(srv)) == 8  # two refused, each sent again
    assert waits == [0.4, 0.4]  # Retry-After, not the 10-20 ms backoff


def test_retry_after_is_read_from_seconds_and_dates():
    assert http.retry_after({"retry-after": "7"}) == 7.0
    assert 50 < http.retry_after({"retry-after": time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                               time.gmtime(time.time() + 60))}) <= 60
    assert http.retry_after({"retry-after": "soon"}) is None and http.retry_after({}) is None
    assert http.status_error(429, "{}", headers={"retry-after": "3"}).retry_after == 3.0
    assert http.status_error(503, "{}", headers={"retry-after": "2"}).retry_after == 2.0


def test_resets_mid_answer_are_retried_and_nothing_is_lost(srv):
    srv.fault, srv.fault_after, srv.fault_times = "reset", 1, 3
    result = run(srv, [f"a {i}" for i in range(10)], concurrency=4)
    assert list(result) == [f"a {i}" for i in range(10)] and result.errors == {}
    assert len(sent(srv)) == 13


def test_items_that_keep_failing_are_reported_and_the_others_kept(srv):
    srv.fault, srv.fault_match = "http500", "bad"
    store = HistoryStore(":memory:")
    items = ["good 0", "bad 1", "good 2", "bad 3", "good 4"]
    result = run(srv, items, store=store, retries=2, concurrency=2)
    assert list(result) == ["good 0", None, "good 2", None, "good 4"]
    assert sorted(result.errors) == [1, 3] and "HTTP 500" in result.errors[1] and "(3 tries)" in result.errors[1]
    assert sorted(sent(srv)) == sorted(["good 0", "good 2", "good 4"] + ["bad 1", "bad 3"] * 3)
    assert (store.batch_count("ok"), store.batch_count("error")) == (3, 2)


def test_a_failure_no_item_can_get_past_stops_the_batch(srv):
    srv.api_key = "the-right-key"
    result = run(srv, [f"x{i}" for i in range(50)], concurrency=2)
    assert result.status == "stopped" and "not authorised" in result.stop_reason
    assert len(sent(srv)) <= 2 and len(result.pending) >= 48  # not 50 requests with the same wrong key
    assert "not run (stopped: not authorised" in result.summary()


def test_interrupt_keeps_finished_items_and_a_restart_resumes(srv, tmp_path):
    srv.fault, srv.fault_match = "stall", "slow"
    items = [f"fast {i}" for i in range(10)] + [f"slow {i}" for i in range(20)]
    path = tmp_path / "batch.sqlite3"
    kill = {}

    ended = threading.Event()

    def interrupt_when_all_workers_stall():
        if srv.wait_stalled(4, timeout=60):  # 4 workers on slow items: every fast item has ended
            kill["sent"] = True
            os.kill(os.getpid(), signal.SIGINT)
        if not ended.wait(60):  # the interrupt did not stop it: let the batch end, so the test fails, not hangs
            srv.fault = None
            srv.release_stall()

    threading.Thread(target=interrupt_when_all_workers_stall, daemon=True).start()
    try:
        result = run(srv, items, store=HistoryStore(path), concurrency=4)  # stalled: only the interrupt ends it
    finally:
        ended.set()
    assert kill == {"sent": True}, "every worker reached a stalled item"
    assert result.status == "interrupted", "the interrupt stopped the stalled batch"
    assert srv.stalls == 4, "no slow item was sent after the interrupt"
    assert result[:10] == [f"fast {i}" for i in range(10)] and result.pending == list(range(10, 30))
    assert result.errors == {} and HistoryStore(path).batch_count("ok") == 10

    srv.reset()
    srv.echo = True
    again = run(srv, items, store=HistoryStore(path), concurrency=4)  # a new store object: a kernel restart
    assert list(again) == items and (again.cached, again.sent) == (10, 20)
    assert sorted(sent(srv)) == sorted(items[10:])


def test_a_rerun_sends_only_new_changed_or_failed_items(srv, tmp_path):
    store = HistoryStore(tmp_path / "b.sqlite3")
    srv.fault, srv.fault_match = "http500", "three"
    first = run(srv, ["one", "two", "three", "four"], store=store, retries=0)
    assert first.errors.keys() == {2}
    srv.reset()
    srv.echo = True
    second = run(srv, ["one", "TWO", "three", "four", "five"], store=store)
    assert list(second) == ["one", "TWO", "three", "four", "five"]
    assert sorted(sent(srv)) == ["TWO", "five", "three"] and second.cached == 2
    srv.reset()
    srv.echo = True
    third = run(srv, ["one", "TWO"], store=store, refresh=True)
    assert list(third) == ["one", "TWO"] and sorted(sent(srv)) == ["TWO", "one"]
    srv.reset()
    srv.echo = True
    run(srv, ["one"], store=store, system="another system prompt")  # part of the key: sent again
    assert sent(srv) == ["one"]


def test_json_items_are_parsed_and_checked_against_the_schema(srv):
    items = ['{"label": "pos"}', '```json\n{"label": "neg", "why": "sad"}\n```', "not json at all",
             '{"label": "maybe"}']
    result = run(srv, items, schema=LABEL_SCHEMA, retries=1)
    assert result[:2] == [{"label": "pos"}, {"label": "neg", "why": "sad"}] and result[2:] == [None, None]
    assert "not JSON" in result.errors[2] and "'maybe' is not one of" in result.errors[3]
    assert sorted(sent(srv)).count("not json at all") == 2  # an invalid answer is asked for again
    request = srv.requests[0].json
    assert request["response_format"] == {"type": "json_object"}
    assert "JSON schema" in request["messages"][0]["content"] and '"enum"' in request["messages"][0]["content"]


class Label:
    """A stand-in for a pydantic model class: model_validate, model_json_schema, model_dump."""

    def __init__(self, label):
        self.label = label

    @classmethod
    def model_validate(cls, data):
        if not isinstance(data, dict) or data.get("label") not in ("pos", "neg"):
            raise ValueError("1 validation error for Label\nlabel\n  Input should be 'pos' or 'neg'")
        return cls(data["label"])

    @classmethod
    def model_json_schema(cls):
        return LABEL_SCHEMA

    def model_dump(self):
        return {"label": self.label}


def test_a_pydantic_model_validates_items_and_is_their_value(srv):
    result = run(srv, ['{"label": "neg"}', '{"label": "other"}'], schema=Label, retries=0)
    assert isinstance(result[0], Label) and result[0].label == "neg" and result[1] is None
    assert "Input should be 'pos' or 'neg'" in result.errors[1]


@pytest.mark.parametrize("full", [True, False], ids=["jsonschema", "own-subset"])
def test_schema_checks_with_and_without_jsonschema(monkeypatch, full):
    if not full:
        monkeypatch.setattr(batch_json, "_jsonschema", lambda: None)
    schema = {"type": "object", "required": ["n", "tags"], "additionalProperties": False,
              "properties": {"n": {"type": "integer", "minimum": 0}, "tags": {"type": "array",
                                                                              "items": {"type": "string"}}}}
    assert batch_json.validate({"n": 3, "tags": ["a"]}, schema) == {"n": 3, "tags": ["a"]}
    for bad, says in [({"n": 3}, "'tags' is a required property"), ({"n": -1, "tags": []}, "minimum"),
                      ({"n": True, "tags": []}, "not of type 'integer'" if full else "not of type integer"),
                      ({"n": 1, "tags": [2]}, "$.tags[0]"), ({"n": 1, "tags": [], "x": 0}, "x")]:
        with pytest.raises(batch_json.InvalidAnswer, match=None) as caught:
            batch_json.validate(bad, schema)
        assert says in str(caught.value), (bad, str(caught.value))


def test_json_is_found_in_fences_and_prose():
    assert batch_json.parse('```json\n{"a": 1}\n```') == {"a": 1}
    assert batch_json.parse('Sure! Here it is: {"a": [1, 2]} Hope this helps.') == {"a": [1, 2]}
    with pytest.raises(batch_json.InvalidAnswer, match="not JSON"):
        batch_json.parse("no braces here")


def test_the_progress_callback_is_called_at_most_ten_times_a_second(srv, monkeypatch):
    """On a clock the test drives (each reading is 30 ms later), not the machine's: the throttle's own
    decisions, whatever the load.  A stalled item holds the batch until three calls have come."""
    clock = SimpleNamespace(now=0.0, readings=0)

    def tick():
        clock.now += 0.03
        clock.readings += 1
        return clock.now

    monkeypatch.setattr(batch_progress, "Throttle", lambda rate: Throttle(rate, clock=tick))
    srv.fault, srv.fault_match = "stall", "slow"
    calls = []
    three = threading.Event()

    def on_progress(*args):
        calls.append((clock.now, args))
        if len(calls) >= 3:
            three.set()

    def release_after_three_calls():
        three.wait(timeout=60)
        srv.release_stall()

    threading.Thread(target=release_after_three_calls, daemon=True).start()
    result = run(srv, [str(i) for i in range(119)] + ["slow"], concurrency=4, on_progress=on_progress)
    assert result.errors == {} and three.is_set()
    assert clock.readings > 2 * len(calls), "some polls were refused by the throttle"
    gaps = [b[0] - a[0] for a, b in zip(calls[:-2], calls[1:-1])]  # the final call comes whenever it ends
    assert gaps and all(gap >= 0.1 - 1e-9 for gap in gaps), gaps
    done, failed, total, rate, eta = calls[-1][1]
    assert (done, failed, total) == (120, 0, 120) and rate > 0
    assert any(args[0] < 120 and args[4] is not None for _, args in calls)  # a time left while it ran


def test_map_shows_a_text_line_then_a_summary_and_the_first_failures(srv, capsys):
    srv.fault, srv.fault_match = "http500", "bad"
    result = batch_map("{item}", ["fine", "bad one", "bad two"], provider="OpenAI", progress="text",
                       options={"base_url": f"{srv.base_url}/v1"}, store=HistoryStore(":memory:"),
                       retries=0, backoff=0.01)
    out = capsys.readouterr().out
    assert result == ["fine", None, None]
    assert "1/3 answered, 2 failed, 0 from the store, 3 sent" in out
    assert "item  reason" in out and "bad one" not in out and "\n1     HTTP 500" in out


def test_the_widget_bar_shows_done_failed_and_time_left(capsys):
    bar = WidgetBar(10)
    bar(4, 1, 10, 2.5, 2.0)
    assert (bar.bar.value, bar.bar.max, bar.bar.bar_style) == (5, 10, "warning")
    assert bar.label.value == "4/10 done · 1 failed · 2.5/s · 2 s left"


async def test_amap_awaits_without_blocking_the_callers_loop(srv):
    import asyncio

    srv.latency = 0.05
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    result = await amap("{item}!", ["a", "b", "c"], provider="OpenAI", options={"base_url": f"{srv.base_url}/v1"},
                        store=HistoryStore(":memory:"))
    task.cancel()
    assert list(result) == ["a!", "b!", "c!"] and ticks >= 3


def test_pandas_rows_fill_columns_and_results_align_to_the_index(srv):
    import pandas as pd
    df = pd.DataFrame({"title": ["Up", "Down", "Flat"], "stars": [5, 1, 3]}, index=["r1", "r2", "r3"])
    result = run(srv, df, "{row.title}/{stars}/{index}")
    assert list(result) == ["Up/5/r1", "Down/1/r2", "Flat/3/r3"]
    series = result.to_series("echo")
    assert list(series.index) == ["r1", "r2", "r3"] and series["r2"] == "Down/1/r2"
    srv.reset()
    srv.echo = True
    labels = run(srv, pd.Series(['{"label": "pos", "score": 1}', "oops"], index=[10, 20]), json=True, retries=0)
    frame = labels.to_frame(prefix="llm_")
    assert list(frame.index) == [10, 20] and frame.loc[10, "llm_label"] == "pos" and pd.isna(frame.loc[20, "llm_score"])
    assert labels.label(1) == 20 and list(labels.errors) == [1]


class Down(AsyncGeneratorProvider):
    calls = 0

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        cls.calls += 1
        raise ProviderConnectionError("down for maintenance", provider="Down")
        yield  # pragma: no cover


def test_fallback_applies_per_item(srv):
    from ipyg4f.chat import Chat

    chat = Chat()  # each provider inside Fallback as configured alone: OpenAI's base URL from provider_options
    chat.config.provider_options = {"OpenAI": {"base_url": f"{srv.base_url}/v1"}}
    register(Down, "Down")
    try:
        result = run_batch("{item}", ["p", "q", "r"], provider="Fallback", store=HistoryStore(":memory:"),
                           chat=chat, options={"providers": ["Down", "OpenAI"]})
    finally:
        unregister("Down")
    assert list(result) == ["p", "q", "r"] and Down.calls == 3


def test_a_string_is_not_a_batch(srv):
    with pytest.raises(TypeError, match="not over one string"):
        run(srv, "abc")


class OneAtATime(AsyncGeneratorProvider):
    """Answers one request at a time, like the local model: counts how many ever overlapped."""

    max_concurrency = 1
    running = 0
    most = 0

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        import asyncio

        cls.running += 1
        cls.most = max(cls.most, cls.running)
        try:
            await asyncio.sleep(0.001)  # the work of one answer (the overlap would show here)
            yield messages[-1]["content"].upper()
        finally:
            cls.running -= 1


def test_a_provider_that_answers_one_at_a_time_gets_one_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    register(OneAtATime)
    try:
        result = run_batch("{item}", ["a", "b", "c", "d", "e", "f"], provider="OneAtATime", concurrency=8,
                           timeout=1, store=HistoryStore(":memory:"))
    finally:
        unregister("OneAtATime")
    assert list(result) == ["A", "B", "C", "D", "E", "F"] and OneAtATime.most == 1


def test_the_batch_package_is_reachable_as_the_readme_writes_it():
    # ipyg4f.batch.start(...) right after "import ipyg4f", in a fresh process where nothing imported it yet
    code = "import ipyg4f, sys; assert 'ipyg4f.batch' not in sys.modules; print(ipyg4f.batch.start.__name__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "start"
