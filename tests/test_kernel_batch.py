"""``%%chat --map`` in a real ipykernel, driven like JupyterLab, against the protocol server.

The server echoes each request's last message (``echo``), so every answer says
which item it belongs to and its request log shows exactly what was sent.
Each test puts a tag of its own in its items, so the store the tests share
(one kernel, one data directory) never answers for another test.  Faults hit
only matching requests (``fault_match``) or the next N (``fault_times``);
nothing here sleeps to synchronise: the tests wait on the server's counters.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import uuid

import ipywidgets  # noqa: F401 - pinned (the kernel imports it): missing is a failure, not a skip
import pandas  # noqa: F401
import pytest
from kernel_harness import Kernel

pytestmark = pytest.mark.kernel

LABEL_SCHEMA = {"type": "object", "required": ["label"], "properties": {"label": {"enum": ["pos", "neg"]}}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ipyg4f-batch-data")


def prepare(k: Kernel) -> None:
    k.ok("%load_ext ipyg4f")
    k.ok("%chat use -p OpenAI")
    k.ok("import json\nimport pandas as pd")


@pytest.fixture(scope="module")
def kernel(_protocol_server_session, data_dir):
    k = Kernel(env={
        "OPENAI_BASE_URL": _protocol_server_session.base_url + "/v1",
        "OPENAI_API_KEY": "sk-test-batch",
        "IPYG4F_DATA_DIR": str(data_dir),
        "JPY_SESSION_NAME": str(data_dir / "batch.ipynb"),
        "IPYG4F_PROVIDER": "",
    })
    prepare(k)
    yield k
    k.shutdown()


@pytest.fixture
def server(protocol_server):
    """The session's protocol server (conftest), reset before and after each test, echoing."""
    protocol_server.echo = True
    return protocol_server


def tag() -> str:
    """Digits only: never a fault_match word ("bad", "slow", "three") by chance."""
    return f"t{uuid.uuid4().int % 10**10:010d}"


def sent(server) -> list[str]:
    """The user message of every chat request the server received, in arrival order."""
    return [r.json["messages"][-1]["content"] for r in server.requests if r.path == "/v1/chat/completions"]


def value(kernel: Kernel, expr: str):
    """A JSON-able expression evaluated in the kernel."""
    return json.loads(kernel.ok(f"print(json.dumps({expr}))").stream())


def stored(data_dir, prefix: str) -> dict[str, str]:
    """{prompt: status} of the items in the kernel's store whose prompt starts with ``prefix``."""
    with sqlite3.connect(data_dir / "history.sqlite3") as db:
        rows = db.execute("SELECT prompt, status FROM batch_result WHERE prompt LIKE ?", (prefix + "%",)).fetchall()
    return dict(rows)


def arrivals(server, most: float) -> list[tuple[int, float, str]]:
    """Random per-request latencies (up to ``most`` seconds, seeded by the body); the server notes
    ``(arrival number, latency, prompt)`` of each chat request in the list returned (filled as they come)."""
    seen: list[tuple[float, float, str]] = []
    lock = threading.Lock()

    def note(rec) -> float:
        latency = random.Random(rec.body).uniform(0.0, most)
        if rec.path == "/v1/chat/completions":
            with lock:
                seen.append((len(seen), latency, rec.json["messages"][-1]["content"]))
        return latency

    server.latency = note
    return seen


# --- order ------------------------------------------------------------------------------

def test_a_list_comes_back_in_the_input_order_under_random_latencies(kernel, server):
    """Random latencies, and the first item held until every other one has been sent: it is answered
    last, whatever the machine's speed."""
    arrivals(server, 0.06)
    t = tag()
    server.fault, server.fault_match = "stall", f'say {t} item 0"'
    kernel.ok(f"items = [f'{t} item {{i}}' for i in range(40)]")
    ex = kernel.send("%%chat --map items -o out -j 8\nsay {item}")
    assert server.wait_for_requests(40, timeout=120) and server.wait_stalled(1, timeout=60)
    server.release_stall()
    kernel.wait(ex, timeout=120)
    assert ex.status == "ok", ex.text()
    expected = [f"say {t} item {i}" for i in range(40)]
    assert value(kernel, "list(out)") == expected
    assert value(kernel, "[out.errors, out.pending, out.status, out.sent]") == [{}, [], "ok", 40]
    assert sorted(sent(server)) == sorted(expected)
    assert "40/40 answered, 0 from the store, 40 sent" in ex.stream()


def test_into_a_dataframe_column_aligns_with_a_non_default_index(kernel, server):
    server.latency = lambda rec: random.Random(rec.body).uniform(0.0, 0.06)
    t = tag()
    index = [17, 3, 42, 8, 0, 99, 5, 23, 61, 12, 77, 30]
    kernel.ok(f"df = pd.DataFrame({{'text': [f'{t} review {{i}}' for i in {index}]}}, index={index})\n"
              "df = df.sort_values('text', ascending=False)")  # neither position- nor label-ordered
    kernel.ok('%%chat --map df --into df["echo"] -o answers -j 6\n{text} at {index}')
    rows = value(kernel, "[[int(i), t, e] for i, t, e in zip(df.index, df['text'], df['echo'])]")
    assert len(rows) == len(index)
    assert all(echo == f"{text} at {i}" for i, text, echo in rows), rows
    assert all(text == f"{t} review {i}" for i, text, _ in rows), "the column went to other rows"
    assert value(kernel, "[[int(i), a] for i, a in answers.items()]") == [[i, e] for i, _, e in rows]


# --- failures ---------------------------------------------------------------------------

RECORD_DELAYS = """
from ipyg4f.batch.job import BatchJob as _BatchJob
_delay, _delays = _BatchJob._delay, []
def _recorded(self, *args):
    _delays.append(_delay(self, *args))
    return _delays[-1]
_BatchJob._delay = _recorded
"""


def test_a_429_mid_batch_waits_for_retry_after_and_nothing_is_lost(kernel, server):
    """Item 12 is refused three times with Retry-After: 1, whenever it comes: it is sent again each time
    after the wait Retry-After asks for (the batch's own decision, recorded in the kernel)."""
    seen = arrivals(server, 0.06)
    t = tag()
    server.fault, server.fault_match, server.fault_times, server.retry_after = "http429", f'{t} q12"', 3, "1"
    kernel.ok(f"items = [f'{t} q{{i}}' for i in range(30)]")
    kernel.ok(RECORD_DELAYS)
    try:
        ex = kernel.run("%%chat --map items -o out -j 4 --retries 3\n{item}", timeout=120)
        delays = value(kernel, "_delays")
    finally:
        kernel.ok("_BatchJob._delay = _delay")
    assert ex.status == "ok", ex.text()
    assert value(kernel, "[list(out), out.errors]") == [[f"{t} q{i}" for i in range(30)], {}]
    sends: dict[str, int] = {}
    for _, _, prompt in seen:
        sends[prompt] = sends.get(prompt, 0) + 1
    assert len(seen) == 33 and sends.pop(f"{t} q12") == 4 and set(sends.values()) == {1}, sends
    assert delays == [1.0, 1.0, 1.0], "each refused item waited as long as Retry-After said"
    assert "30/30 answered, 0 from the store, 30 sent" in ex.stream() and "reason" not in ex.stream()


def test_items_that_keep_failing_are_reported_and_the_others_kept(kernel, server, data_dir):
    server.latency = lambda rec: random.Random(rec.body).uniform(0.0, 0.03)
    server.fault, server.fault_match = "http500", "bad"
    t = tag()
    bad = {5, 17, 23}
    kernel.ok(f"items = [f'{t} ' + ('bad' if i in {sorted(bad)} else 'good') + f' {{i}}' for i in range(30)]")
    ex = kernel.ok("%%chat --map items -o out -j 4 --retries 2\n{item}")
    out = value(kernel, "list(out)")
    assert [i for i, v in enumerate(out) if v is None] == sorted(bad)
    assert all(out[i] == f"{t} good {i}" for i in range(30) if i not in bad)
    errors = value(kernel, "out.errors")
    assert sorted(map(int, errors)) == sorted(bad)
    assert all("HTTP 500" in reason and "(3 tries)" in reason for reason in errors.values()), errors
    counts = {p: sent(server).count(p) for p in set(sent(server))}
    assert all(n == (3 if " bad " in p else 1) for p, n in counts.items()) and len(counts) == 30
    text = ex.stream()
    assert "27/30 answered, 3 failed, 0 from the store, 30 sent" in text
    assert "item  reason" in text
    for i in sorted(bad):
        assert f"\n{i:<4}  HTTP 500: The server had an error" in text, text
    states = stored(data_dir, t)
    assert sum(s == "ok" for s in states.values()) == 27 and sum(s == "error" for s in states.values()) == 3


def test_connections_reset_mid_answer_are_retried(kernel, server):
    server.fault, server.fault_after, server.fault_times = "reset", 1, 4
    t = tag()
    kernel.ok(f"items = [f'{t} r{{i}}' for i in range(12)]")
    ex = kernel.ok("%%chat --map items -o out -j 3\n{item}")
    assert value(kernel, "[list(out), out.errors]") == [[f"{t} r{i}" for i in range(12)], {}]
    assert len(sent(server)) == 16
    assert "12/12 answered" in ex.stream()


def test_failure_reasons_of_pandas_input_are_in_var_attrs_errors(kernel, server):
    server.fault, server.fault_match = "http500", "bad"
    t = tag()
    kernel.ok(f"s = pd.Series(['{t} fine', '{t} bad'], index=['a', 'b'])")
    kernel.ok("%%chat --map s -o labelled --retries 0\n{item}")
    assert "HTTP 500" in value(kernel, "labelled.attrs['errors']['b']")  # by index label
    assert value(kernel, "list(labelled.attrs['errors'])") == ['b']


# --- interrupt, re-run, restart ---------------------------------------------------------

def stall_slow_items(server) -> None:
    server.fault, server.fault_match = "stall", "slow"


def test_interrupt_keeps_finished_items_and_a_rerun_sends_only_the_rest(kernel, server, data_dir):
    stall_slow_items(server)
    t = tag()
    items = [f"{t} fast {i}" for i in range(10)] + [f"{t} slow {i}" for i in range(20)]
    kernel.ok(f"items = {items!r}")
    ex = kernel.send("%%chat --map items -o out -j 4\n{item}")
    assert server.wait_stalled(4, timeout=60)  # every worker waits on a slow item: each fast one has ended
    kernel.interrupt()
    kernel.wait(ex, timeout=60)  # nothing releases the stalled items: only the interrupt can end the cell
    assert server.stalls == 4, "no slow item was sent after the interrupt"
    assert ex.status == "ok", ex.text()
    assert "10/30 answered, 20 not run (interrupted)" in ex.stream()
    assert value(kernel, "[list(out), out.status, out.pending]") == [
        items[:10] + [None] * 20, "interrupted", list(range(10, 30))]
    assert stored(data_dir, t) == {item: "ok" for item in items[:10]}

    server.reset()
    server.echo = True
    rerun = kernel.ok("%%chat --map items -o out -j 4\n{item}")
    assert sorted(sent(server)) == sorted(items[10:]), "only the items that had not ended are sent"
    assert value(kernel, "list(out)") == items
    assert "30/30 answered, 10 from the store, 20 sent" in rerun.stream()


def test_a_rerun_sends_only_new_changed_or_failed_items(kernel, server):
    server.fault, server.fault_match = "http500", "three"
    t = tag()
    kernel.ok(f"items = ['{t} one', '{t} two', '{t} three', '{t} four']")
    kernel.ok("%%chat --map items -o out --retries 0\n{item}")
    assert value(kernel, "sorted(out.errors)") == [2]
    server.reset()
    server.echo = True
    kernel.ok(f"items = ['{t} one', '{t} TWO', '{t} three', '{t} four', '{t} five']")
    ex = kernel.ok("%%chat --map items -o out --retries 0\n{item}")
    assert sorted(sent(server)) == sorted([f"{t} TWO", f"{t} three", f"{t} five"])
    assert value(kernel, "list(out)") == [f"{t} {w}" for w in ("one", "TWO", "three", "four", "five")]
    assert "5/5 answered, 2 from the store, 3 sent" in ex.stream()
    server.reset()
    server.echo = True
    kernel.ok("%%chat --map items -o out --refresh\n{item}")
    assert len(sent(server)) == 5, "--refresh sends every item"


# --- structured output ------------------------------------------------------------------

def test_json_and_schema_items_valid_and_invalid(kernel, server):
    t = tag()
    items = [json.dumps({"label": "pos", "t": t}), "```json\n" + json.dumps({"label": "neg", "t": t}) + "\n```",
             f"not json at all {t}", json.dumps({"label": "maybe", "t": t})]
    kernel.ok(f"schema = {LABEL_SCHEMA!r}\nitems = {items!r}")
    ex = kernel.ok("%%chat --map items -o out --schema schema --retries 1\n{item}")
    assert value(kernel, "list(out)") == [{"label": "pos", "t": t}, {"label": "neg", "t": t}, None, None]
    errors = value(kernel, "out.errors")
    assert "not JSON" in errors["2"] and "'maybe' is not one of ['pos', 'neg']" in errors["3"], errors
    assert sent(server).count(f"not json at all {t}") == 2, "an invalid answer is asked for again"
    assert len(sent(server)) == 6
    request = server.requests[0].json
    assert request["response_format"] == {"type": "json_object"}
    assert "JSON schema" in request["messages"][0]["content"] and '"enum"' in request["messages"][0]["content"]
    assert "2/4 answered, 2 failed" in ex.stream() and "not JSON" in ex.stream()

    server.reset()
    server.echo = True
    bodies = [json.dumps({"label": "pos", "score": 3, "t": t}), f"oops {t}"]
    kernel.ok(f"df = pd.DataFrame({{'body': {bodies!r}}}, index=['x', 'y'])")
    kernel.ok('%%chat --map df --into df["j"] --json --retries 0\n{body}')
    assert value(kernel, "sorted(df.columns)") == ["body", "j.label", "j.score", "j.t"]
    assert value(kernel, "[df.loc['x', 'j.label'], int(df.loc['x', 'j.score']), bool(pd.isna(df.loc['y', 'j.label']))]") \
        == ["pos", 3, True]
    system = server.requests[0].json["messages"][0]
    assert system["role"] == "system" and "one JSON object" in system["content"] and "schema" not in system["content"]


def test_a_pydantic_style_class_validates_items(kernel, server):
    t = tag()
    kernel.ok("class Label:\n"
              "    def __init__(self, label): self.label = label\n"
              "    @classmethod\n"
              "    def model_validate(cls, data):\n"
              "        if not isinstance(data, dict) or data.get('label') not in ('pos', 'neg'):\n"
              "            raise ValueError(\"1 validation error for Label\\nlabel\\n  Input should be 'pos' or 'neg'\")\n"
              "        return cls(data['label'])\n"
              "    @classmethod\n"
              f"    def model_json_schema(cls): return {LABEL_SCHEMA!r}\n"
              f"items = {[json.dumps({'label': 'neg', 't': t}), json.dumps({'label': 'other', 't': t})]!r}")
    kernel.ok("%%chat --map items -o out --schema Label --retries 0\n{item}")
    assert value(kernel, "[type(out[0]).__name__, out[0].label, out[1]]") == ["Label", "neg", None]
    assert "Input should be 'pos' or 'neg'" in value(kernel, "out.errors[1]")


# --- progress ---------------------------------------------------------------------------

FAKE_CLOCK = """
import ipyg4f.batch.progress as _progress
from ipyg4f.render.stream import Throttle as _Throttle
_clock = {'now': 0.0, 'readings': 0, 'marks': []}
def _tick():
    _clock['now'] += 0.03
    _clock['readings'] += 1
    return _clock['now']
class _Marked(_Throttle):
    def mark(self, *args, **kwargs):
        super().mark(*args, **kwargs)
        _clock['marks'].append(self.last)
_progress.Throttle = lambda rate: _Marked(rate, clock=_tick)
"""


def test_one_progress_bar_updated_at_most_ten_times_a_second(kernel, server):
    """The throttle runs on a clock the test drives (each reading 30 ms later), not the machine's; a
    stalled item holds the batch until the label has been updated three times."""
    kernel.ok(FAKE_CLOCK)
    try:
        server.fault, server.fault_match = "stall", "slow"
        t = tag()
        kernel.ok(f"items = [f'{t} p{{i}}' for i in range(119)] + ['{t} slow']")
        ex = kernel.send("%%chat --map items -o out -j 4\n{item}")
        opened: dict[str, str] = {}

        def third_label_update(m) -> bool:
            if m["msg_type"] == "comm_open":
                opened[m["content"]["comm_id"]] = m["content"]["data"]["state"]["_model_name"]
            labels_seen = [m for m in ex.of_type("comm_msg") if opened.get(m["content"]["comm_id"]) == "HTMLModel"
                           and m["content"]["data"].get("method") == "update"]
            return len(labels_seen) >= 3

        kernel.wait_for(ex, third_label_update, timeout=120)
        server.release_stall()
        kernel.wait(ex, timeout=120)
        assert ex.status == "ok", ex.text()
        readings, marks = value(kernel, "[_clock['readings'], _clock['marks']]")
    finally:
        kernel.ok("_progress.Throttle = _Throttle")
    opened = {m["content"]["comm_id"]: m["content"]["data"]["state"]["_model_name"]
              for m in ex.of_type("comm_open")}
    bars = [c for c, name in opened.items() if name == "IntProgressModel"]
    labels = [c for c, name in opened.items() if name == "HTMLModel"]
    assert len(bars) == 1 and len(labels) == 1, opened
    updates = [m for m in ex.of_type("comm_msg") if m["content"]["comm_id"] in (*bars, *labels)
               and m["content"]["data"].get("method") == "update"]
    label_updates = [m for m in updates if m["content"]["comm_id"] == labels[0]]
    bar_values = [m["content"]["data"]["state"]["value"] for m in updates
                  if m["content"]["comm_id"] == bars[0] and "value" in m["content"]["data"]["state"]]
    gaps = [b - a for a, b in zip(marks[:-2], marks[1:-1])]  # the final update comes whenever it ends
    assert gaps and all(gap >= 0.1 - 1e-9 for gap in gaps), gaps
    assert readings > 2 * len(marks), "some polls were refused by the throttle"
    assert 3 <= len(label_updates) <= len(marks) and len(bar_values) <= len(marks), (len(label_updates), marks)
    assert bar_values == sorted(bar_values) and bar_values[-1] == 120
    assert label_updates[-1]["content"]["data"]["state"]["value"].startswith("120/120 done")
    assert "120/120 answered" in ex.stream()


# --- restart (last: it restarts the module's kernel) ------------------------------------

def test_after_a_kernel_restart_mid_batch_the_same_cell_resumes_from_the_store(kernel, server, data_dir):
    stall_slow_items(server)
    t = tag()
    items = [f"{t} fast {i}" for i in range(8)] + [f"{t} slow {i}" for i in range(12)]
    cell = "%%chat --map items -o out -j 4\n{item}"
    kernel.ok(f"items = {items!r}")
    kernel.send(cell)
    assert server.wait_stalled(4, timeout=20)
    kernel.restart()  # the kernel dies mid-batch
    assert stored(data_dir, t) == {item: "ok" for item in items[:8]}

    server.reset()
    server.echo = True
    prepare(kernel)
    kernel.ok(f"items = {items!r}")
    ex = kernel.ok(cell)
    assert sorted(sent(server)) == sorted(items[8:]), "only the items the dead kernel had not finished"
    assert value(kernel, "list(out)") == items
    assert "20/20 answered, 8 from the store, 12 sent" in ex.stream()
