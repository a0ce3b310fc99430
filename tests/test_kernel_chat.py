"""%%chat in a real ipykernel, driven like JupyterLab (cell ids in execute requests),
against the local protocol server."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from kernel_harness import Kernel
from protocol_server import ProtocolServer

pytestmark = pytest.mark.kernel

SECRET = "sk-test-SECRET-4f9c2a7d"
PROXY_PASSWORD = "pr0xy-PASSWORD-77"


@pytest.fixture(scope="module")
def server():
    srv = ProtocolServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ipyg4f-data")


@pytest.fixture(scope="module")
def kernel(server, data_dir):
    k = Kernel(env={
        "OPENAI_BASE_URL": server.base_url + "/v1",
        "OPENAI_API_KEY": SECRET,
        "IPYG4F_DATA_DIR": str(data_dir),
        "JPY_SESSION_NAME": str(data_dir / "notebook.ipynb"),
    })
    k.ok("%load_ext ipyg4f")
    k.ok("%chat use -p OpenAI")
    yield k
    k.shutdown()


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    yield


def thread() -> str:
    """A thread of its own for each test, so tests do not see each other's exchanges."""
    return f"t{uuid.uuid4().hex[:8]}"


def sent_messages(server) -> list[dict]:
    chats = [r for r in server.requests if r.path.endswith("/chat/completions")]
    return chats[-1].json["messages"]


def test_answer_streams_into_one_display_and_ends_as_markdown(kernel, server):
    server.chunks = [f"word{i} " for i in range(40)]
    server.chunk_delay = 0.02
    ex = kernel.run(f"%%chat -c {thread()}\nSay forty words")
    assert ex.status == "ok", ex.text()
    displays = ex.displays
    assert displays[0]["msg_type"] == "display_data"
    assert "waiting" in displays[0]["content"]["data"]["text/plain"]
    partials = [m["content"]["data"]["text/html"] for m in ex.displays[1:-1]]
    assert len(set(partials)) >= 3, "incremental updates before the end"
    assert all("ipyg4f-cursor" in p for p in partials if "word0" in p)
    outputs = ex.outputs
    assert [o["output_type"] for o in outputs] == ["display_data"], "the cell keeps one output: the answer"
    final = ex.final()
    assert outputs[0]["data"] == final["data"]
    answer = "".join(server.chunks)
    assert final["data"]["text/plain"] == answer
    assert "text/markdown" not in final["data"], "the answer is not sent a third time"
    assert "<p>word0 word1" in final["data"]["text/html"]
    meta = final["metadata"]["ipyg4f"]
    assert meta["provider"] == "OpenAI" and meta["model"] == "gpt-4o-mini" and meta["status"] == "ok"


MARKED_THROTTLE = """
import json
import ipyg4f.render.stream as _stream
_Throttle = _stream.Throttle
_marks = []
class _Marked(_Throttle):
    def mark(self, size=0, length=0):
        super().mark(size, length)
        _marks.append((self.last, self.gap))
_stream.Throttle = _Marked
"""


def test_update_rate_is_bounded_for_a_fast_stream(kernel, server):
    """At most 20 updates a second: the throttle's own decisions (when it let an update through, on its
    own clock) and one display update per decision; no duration measured by the test."""
    kernel.ok(MARKED_THROTTLE)
    try:
        server.chunks = ["x"] * 5000
        ex = kernel.run(f"%%chat -c {thread()}\nfast")
        marks = json.loads(kernel.ok("print(json.dumps(_marks))").stream())
    finally:
        kernel.ok("_stream.Throttle = _Throttle")
    assert ex.status == "ok", ex.text()
    assert ex.final()["data"]["text/plain"] == "x" * 5000
    assert all(b[0] - a[0] >= max(1 / 20, a[1]) for a, b in zip(marks, marks[1:])), marks
    assert 1 <= len(ex.updates) <= len(marks) + 1 < 5000, (len(ex.updates), len(marks))  # + the final one


def test_rerun_replaces_the_cells_exchange(kernel, server):
    t = thread()
    server.answer = "first answer"
    kernel.ok(f"%%chat -c {t}\nquestion one", cell_id="cell-A")
    server.answer = "second answer"
    kernel.ok(f"%%chat -c {t}\nquestion one, again", cell_id="cell-A")
    server.answer = "answer B"
    kernel.ok(f"%%chat -c {t}\nquestion two", cell_id="cell-B")
    # context of cell B holds cell A's exchange once, in its latest form
    assert sent_messages(server) == [
        {"role": "user", "content": "question one, again"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "question two"},
    ]
    # re-running A sends B as context, not A itself
    kernel.ok(f"%%chat -c {t}\nquestion one", cell_id="cell-A")
    assert sent_messages(server) == [
        {"role": "user", "content": "question two"},
        {"role": "assistant", "content": "answer B"},
        {"role": "user", "content": "question one"},
    ]
    history = kernel.ok(f"%chat history -c {t}").text()
    assert history.count("question one") == 1 and "question two" in history


def test_threads_stay_apart_and_new_starts_afresh(kernel, server):
    a, b = thread(), thread()
    server.answer = "alpha"
    kernel.ok(f"%%chat -c {a}\nin thread a")
    kernel.ok(f"%%chat -c {b}\nin thread b")
    assert sent_messages(server) == [{"role": "user", "content": "in thread b"}]
    kernel.ok(f"%%chat -c {a}\nagain in a")
    assert [m["content"] for m in sent_messages(server)] == ["in thread a", "alpha", "again in a"]
    kernel.ok(f"%%chat -c {a} --new\nfresh start")
    assert sent_messages(server) == [{"role": "user", "content": "fresh start"}]


def test_run_all_executes_every_queued_cell_in_order(kernel, server):
    server.chunk_delay = 0.01
    t = thread()
    executions = [kernel.send(f"%%chat -c {t}\nqueued {i}", cell_id=f"q{i}-{t}") for i in range(6)]
    executions.append(kernel.send("print('after the chats')", cell_id=f"plain-{t}"))
    for ex in executions:
        kernel.wait(ex)
        assert ex.status == "ok", ex.text()
    prompts = [r.json["messages"][-1]["content"] for r in server.requests if r.path.endswith("/completions")]
    assert prompts == [f"queued {i}" for i in range(6)]
    assert "after the chats" in executions[-1].stream()


def test_interrupt_keeps_partial_answer_and_the_next_cell_works(kernel, server):
    server.chunks = [f"part{i} " for i in range(200)]
    server.fault, server.fault_after = "stall", 3  # held after part2 until the end of the test
    t = thread()
    ex = kernel.send(f"%%chat -c {t}\nlong answer please", cell_id=f"int-{t}")
    kernel.wait_for(ex, lambda m: m["msg_type"] in ("display_data", "update_display_data")
                    and "part2" in m["content"]["data"].get("text/html", ""), timeout=120)
    kernel.interrupt()
    kernel.wait(ex, timeout=120)  # nothing releases the stall: only the interrupt can end the cell
    assert ex.status == "error"
    assert ex.error["ename"] == "ChatFailed"
    assert len(ex.error["traceback"]) <= 2, "a short message, not a traceback wall"
    final = ex.final()
    assert final["metadata"]["ipyg4f"]["status"] == "interrupted"
    partial = final["data"]["text/plain"]
    assert partial.startswith("part0 part1 part2") and "interrupt" in partial
    assert "part3" not in partial and server.stalls == 1, "stopped while the stream was held"
    history = kernel.ok(f"%chat history -c {t}").text()
    assert "interrupted" in history and "part0" in history
    assert "2" in kernel.ok("print(1 + 1)").stream()


def test_failure_mid_stream_keeps_the_partial_answer(kernel, server):
    server.chunks = [f"bit{i} " for i in range(10)]
    server.fault = "reset"
    server.fault_after = 4
    t = thread()
    ex = kernel.run(f"%%chat -c {t}\nwill break")
    assert ex.status == "error"
    assert ex.error["ename"] == "ChatFailed"
    message = "\n".join(ex.error["traceback"])
    assert "OpenAI" in message and "Traceback" not in message
    final = ex.final()
    assert final["metadata"]["ipyg4f"]["status"] == "error"
    # a TCP reset may discard what the client had not read yet: the kept part is a prefix, at least bit0
    partial = final["data"]["text/plain"].split("\n[")[0]
    assert partial.startswith("bit0 ") and "".join(server.chunks).startswith(partial), partial
    assert "bit0" in kernel.ok(f"%chat history -c {t}").text()
    assert kernel.ok("print('alive')").stream() == "alive\n"


def test_user_errors_are_usage_errors_without_traceback(kernel):
    for code, words in [
        ("%%chat --format bogus\nhi", "invalid choice"),
        ("%%chat -p NoSuchProvider\nhi", "known providers"),
        ("%%chat -p Pizzagpt -m no-such-model\nhi", "valid models"),
        ("%%chat\n   ", "empty"),
        ("%chat frobnicate", "use one of"),
    ]:
        ex = kernel.run(code)
        assert ex.status == "error"
        assert ex.reply["content"]["ename"] == "UsageError", (code, ex.reply["content"])
        assert words in ex.text(), (code, ex.text())
        assert "Traceback" not in ex.text()


def test_prompt_template_fills_names_from_the_namespace(kernel, server):
    kernel.ok("topic = 'tides'\ncount = 3")
    kernel.ok(f"%%chat -c {thread()}\nGive {{count}} facts on {{topic}}, {{unknown}}, {{{{literal}}}}, {{In[1]}}")
    sent = sent_messages(server)[-1]["content"]
    assert sent.startswith("Give 3 facts on tides, {unknown}, {literal}, ")
    assert "%load_ext ipyg4f" in sent  # In[1]
    kernel.ok(f"%%chat -c {thread()} --raw\nliteral {{topic}}")
    assert sent_messages(server)[-1]["content"] == "literal {topic}"


def test_out_variable_and_text_format(kernel, server):
    server.answer = "stored *answer*"
    ex = kernel.ok(f"%%chat -c {thread()} -o result -f text\nstore it")
    assert "text/markdown" not in ex.final()["data"]
    assert kernel.ok("print(repr(result))").stream() == "'stored *answer*'\n"


def test_html_in_answers_is_sanitised(kernel, server):
    server.answer = 'hi <img src=x onerror="alert(1)"> <script>alert(2)</script> [x](javascript:alert(3))'
    html = kernel.ok(f"%%chat -c {thread()}\nxss").final()["data"]["text/html"]
    assert "<img" not in html and "<script" not in html and 'href="javascript' not in html


def test_kernel_restart_keeps_history(server, data_dir, tmp_path):
    env = {"OPENAI_BASE_URL": server.base_url + "/v1", "IPYG4F_DATA_DIR": str(tmp_path),
           "JPY_SESSION_NAME": str(tmp_path / "restart.ipynb")}
    k = Kernel(env=env)
    try:
        k.ok("%load_ext ipyg4f")
        server.answer = "remembered answer"
        k.ok("%%chat -p OpenAI\nremember me", cell_id="r1")
        k.restart()
        k.ok("%load_ext ipyg4f")
        text = k.ok("%chat history").text()
        assert "remember me" in text and "remembered answer" in text
        server.answer = "next"
        k.ok("%%chat -p OpenAI\nand now?", cell_id="r2")
        assert [m["content"] for m in sent_messages(server)] == ["remember me", "remembered answer", "and now?"]
    finally:
        k.shutdown()
    db = tmp_path / "history.sqlite3"
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_secrets_never_appear(kernel, server, data_dir):
    kernel.ok(f"my_proxy = 'http://user:{PROXY_PASSWORD}@127.0.0.1:9'")
    outputs = []
    server.fault = "http401"
    outputs.append(kernel.run(f"%%chat -c {thread()}\nwith key").text())
    outputs.append(kernel.run(f"%%chat -c {thread()} --proxy $my_proxy\nvia proxy").text())
    server.fault = None
    outputs.append(kernel.ok(f"%%chat -c {thread()}\nplain").text())
    outputs.append(kernel.ok("%chat history").text())
    auth = [r.headers.get("authorization") for r in server.requests if r.path.endswith("/completions")]
    assert f"Bearer {SECRET}" in auth, "the key was really sent"
    joined = "\n".join(outputs)
    assert "not authorised" in joined
    assert SECRET not in joined and PROXY_PASSWORD not in joined
    for f in Path(data_dir).iterdir():
        blob = f.read_bytes()
        assert SECRET.encode() not in blob and PROXY_PASSWORD.encode() not in blob, f


def test_unload_removes_the_magics_and_the_hook(kernel):
    kernel.ok("%unload_ext ipyg4f")
    try:
        ex = kernel.run("%%chat\nhi")
        assert ex.status == "error" and ex.reply["content"]["ename"] == "UsageError"
        n = kernel.ok("print(len(get_ipython().events.callbacks['pre_run_cell']))").stream()
        kernel.ok("%load_ext ipyg4f")
        m = kernel.ok("print(len(get_ipython().events.callbacks['pre_run_cell']))").stream()
        assert int(m) == int(n) + 1
    finally:
        kernel.ok("%load_ext ipyg4f")
        kernel.ok("%chat use -p OpenAI")


def test_code_format_offers_the_code_once_per_cell(kernel, server):
    server.answer = "Here you go:\n\n```python\nprint('from the model')\n```\n"
    t = thread()
    first = kernel.ok(f"%%chat -c {t} -f code\nwrite code", cell_id=f"code-{t}")
    payloads = first.reply["content"]["payload"]
    assert [p["source"] for p in payloads] == ["set_next_input"]
    assert payloads[0]["text"] == "print('from the model')" and payloads[0]["replace"] is False
    assert first.final()["data"]["text/markdown"] == "```python\nprint('from the model')\n```"
    again = kernel.ok(f"%%chat -c {t} -f code\nwrite code", cell_id=f"code-{t}")
    assert again.reply["content"]["payload"] == [], "a re-run does not stack another suggested cell"


def test_config_sets_defaults_and_help_is_the_docstring(kernel, server):
    server.answer = "configured"
    kernel.ok("%config ChatConfig.provider = 'Pizzagpt'")
    try:
        kernel.ok("from ipyg4f.providers import get_provider\n"
                  f"get_provider('Pizzagpt').url = {server.base_url!r}")
        ex = kernel.ok(f"%%chat -c {thread()}\nwho answers?")
        assert ex.final()["metadata"]["ipyg4f"]["provider"] == "Pizzagpt"
        assert server.requests[-1].path == "/api/chatx-completion"
    finally:
        kernel.ok("%chat use -p OpenAI")
    pages = kernel.ok("%%chat?").reply["content"]["payload"]
    help_text = "".join(p["data"]["text/plain"] for p in pages if p["source"] == "page")
    assert "Chat with a language model" in help_text and "--provider" in help_text


def test_line_commands_list_providers_models_and_reset(kernel, server):
    providers = kernel.ok("%chat providers").text()
    for name in ("Local", "OpenAI", "Pizzagpt", "ChatGptt", "AI365VIP", "Acytoo", "Fallback"):
        assert name in providers
    assert "OpenAI *" in providers, "the default is marked"
    server.models = ["alpha-model", "beta-model"]
    models = kernel.ok("%chat models -p OpenAI").text()
    assert "alpha-model" in models and "beta-model" in models
    assert server.requests[-1].path == "/v1/models"
    assert "gpt-3.5-turbo-16k" in kernel.ok("%chat models -p AI365VIP").text()
    t = thread()
    kernel.ok(f"%%chat -c {t}\nto be archived")
    threads = kernel.ok("%chat threads").text()
    assert any(line.split() == [t, "1"] for line in threads.splitlines()), threads
    assert "1 exchanges archived" in kernel.ok(f"%chat reset -c {t}").text()
    assert "no exchanges yet" in kernel.ok(f"%chat history -c {t}").text()
    ex = kernel.run("%chat use")
    assert ex.reply["content"]["ename"] == "UsageError"


def test_a_user_error_with_new_archives_nothing(kernel, server):
    t = thread()
    kernel.ok(f"%%chat -c {t}\nkeep me")
    ex = kernel.run(f"%%chat -c {t} --new -p NoSuchProvider\nhi")
    assert ex.reply["content"]["ename"] == "UsageError"
    assert "keep me" in kernel.ok(f"%chat history -c {t}").text()


def test_an_unwritable_history_keeps_the_answer_on_screen(kernel, server):
    server.answer = "shown even so"
    kernel.ok("from ipyg4f.chat import get_chat\n_chat = get_chat()\n_saved = _chat.store.record\n"
              "def _broken(*a, **k):\n    raise OSError('disk full')\n_chat.store.record = _broken")
    try:
        ex = kernel.ok(f"%%chat -c {thread()}\nsave me")
    finally:
        kernel.ok("_chat.store.record = _saved")
    final = ex.final()["data"]
    assert final["text/plain"].startswith("shown even so") and "not saved to history: OSError: disk full" in final["text/plain"]


def test_a_corrupt_history_file_is_a_warning_not_a_failure(server, tmp_path):
    (tmp_path / "history.sqlite3").write_bytes(b"garbage, not a database" * 50)
    k = Kernel(env={"OPENAI_BASE_URL": server.base_url + "/v1", "IPYG4F_DATA_DIR": str(tmp_path)})
    try:
        k.ok("%load_ext ipyg4f")
        server.answer = "still answering"
        ex = k.ok("%%chat -p OpenAI\nhello")
        assert ex.final()["data"]["text/plain"].startswith("still answering")
        assert "moved to history.sqlite3.corrupt-" in ex.stream("stderr")
        kept = [o for o in ex.outputs if "moved to history.sqlite3.corrupt-" in str(o.get("data") or o.get("text"))]
        assert kept, "the cell is cleared at the end of the answer: the warning is said again in it"
        assert "hello" in k.ok("%chat history").text()
    finally:
        k.shutdown()


def test_fallback_reports_who_answered_after_a_provider_fails(kernel, server):
    from protocol_server import closed_port_url

    server.answer = "the second one answered"
    kernel.ok("from ipyg4f.providers import get_provider\n"
              f"get_provider('Pizzagpt').url = {closed_port_url()!r}\n"
              "%config ChatConfig.fallback = ['Pizzagpt', 'OpenAI']")
    try:
        t = thread()
        ex = kernel.ok(f"%%chat -p Fallback -c {t}\nanyone?")
        final = ex.final()
        assert final["data"]["text/plain"] == "the second one answered"
        assert final["metadata"]["ipyg4f"]["provider"] == "OpenAI"
        assert "OpenAI" in kernel.ok(f"%chat history -c {t}").text().splitlines()[-1]
        kernel.ok("get_provider('OpenAI').base_url = 'http://127.0.0.1:9/v1'")
        failed = kernel.run(f"%%chat -p Fallback -c {thread()}\nanyone?")
        message = "\n".join(failed.error["traceback"])
        assert "all providers failed" in message and "Pizzagpt: cannot connect" in message and "OpenAI:" in message
    finally:
        kernel.ok("get_provider('OpenAI').base_url = None\n%config ChatConfig.fallback = []")


def test_the_panel_keeps_streaming_while_a_long_cell_runs(kernel, server, monkeypatch):
    """Send, and keep the kernel busy in the same cell (a loop, the workload, that waits until 30 words
    have come): the panel's answer reaches the front end during that cell, as custom messages of its
    view widget (settled HTML appended once, the live tail replaced).  The server holds the answer after
    30 words until the busy cell has ended, so the end comes after it whatever the machine's speed."""
    import re

    seen: list[tuple[int, dict]] = []  # every iopub message, whatever its parent, in arrival order
    pump = kernel.pump_iopub

    def recording(timeout: float) -> dict | None:
        msg = pump(timeout)
        if msg is not None:
            seen.append((len(seen), msg))
        return msg

    monkeypatch.setattr(kernel, "pump_iopub", recording)
    server.chunks = [f"word{i} " + ("\n\n" if i % 10 == 9 else "") for i in range(40)]
    server.chunk_delay = 0.05  # pacing: several partial answers (the panel draws at most 10 times a second)
    server.fault, server.fault_after = "stall", 30
    t = thread()
    setup = kernel.ok("import re, time\nfrom ipyg4f.panel import ChatPanel\n"
                      f"_panel = ChatPanel()\n_panel.thread.value = {t!r}\n"
                      "_panel.view.prompt = 'forty words, slowly'\nprint(_panel.view.model_id)")
    view_id = setup.stream().strip()
    sleeper = kernel.run("_panel.submit()\n_deadline = time.monotonic() + 120\n"
                         "while len(re.findall(r'word\\d+', _panel.exchanges[-1].answer.text)) < 30:\n"
                         "    assert time.monotonic() < _deadline, 'the answer did not reach 30 words'\n"
                         "    time.sleep(0.01)\n", timeout=180)
    assert sleeper.status == "ok", sleeper.text()
    assert server.wait_stalled(1, timeout=60)
    server.release_stall()
    done = kernel.ok("assert _panel.wait(120)\n_answer = _panel.exchanges[-1].answer\n"
                     "print(_answer.status, repr(_answer.text))", timeout=180)
    answer = "".join(server.chunks)
    assert done.stream().strip() == f"ok {answer!r}"

    def state(m: dict, ex) -> str | None:
        if m["msg_type"] == "status" and m["parent_header"].get("msg_id") == ex.msg_id:
            return m["content"]["execution_state"]
        return None

    busy = next(i for i, (_, m) in enumerate(seen) if state(m, sleeper) == "busy")
    idle = next(i for i, (_, m) in enumerate(seen) if state(m, sleeper) == "idle")
    ops = [(i, at, m["content"]["data"]["content"]) for i, (at, m) in enumerate(seen)
           if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == view_id
           and m["content"]["data"].get("method") == "custom"]
    shown, during = "", []  # what a view shows of the answer: the settled pieces, then the tail
    settled = ""
    for i, at, op in ops:
        if op["op"] == "append":
            settled += op["html"]
        elif op["op"] == "tail":
            shown = settled + op["html"]
            if busy < i < idle:
                during.append((at, shown))
    words = [len(re.findall(r"word\d+", value)) for _, value in during]
    assert len(set(words)) >= 5, words  # several partial answers while the sleep cell was busy
    assert words == sorted(words) and words[-1] <= 30, words  # growing, not yet complete
    assert any(op["op"] == "append" for _, _, op in ops)  # settled paragraphs were sent once
    # and the exchange ended complete, after the sleep cell
    i, _, final = ops[-1]
    body = final["turn"]["body"] + final["turn"]["after"]
    assert final["op"] == "final" and i > idle and final["turn"]["status"] == "ok"
    assert len(re.findall(r"word\d+", body)) == 40 and "tokens" in body  # the footer
    tails = [op["html"] for _, _, op in ops if op["op"] == "tail"]
    assert max(len(re.findall(r"word\d+", tail)) for tail in tails) <= 10  # never more than the open paragraph
    kernel.ok("_panel.close()")


def test_gpt4free_custom_provider_in_a_cell(kernel, server):
    """The real g4f package's Custom provider, named three ways, pointed at the local server."""
    server.chunks = ["Hello ", "from ", "gpt4free"]
    server.reasoning = ["Thinking ", "first."]
    t = thread()
    base = f"{server.base_url}/v1"
    ex = kernel.run(f"%%chat -p Custom --base-url {base} -m test-model -c {t} -o g4f_answer\nsay hello")
    assert ex.status == "ok", ex.text()
    final = ex.final()
    assert final["data"]["text/plain"] == "Hello from gpt4free"  # no JSON of the events
    html = final["data"]["text/html"]
    assert 'class="ipyg4f-thinking"' in html and "Thinking first." in html and "ipyg4f-footer" in html
    assert final["metadata"]["ipyg4f"]["provider"] == "g4f:Custom"  # its name here; g4f's report names the model
    assert kernel.ok("print(repr(g4f_answer))").stream().strip() == "'Hello from gpt4free'"
    kernel.ok("%chat use -p g4f.Provider.Custom -m test-model")
    server.chunks = ["again"]
    again = kernel.run(f"%%chat --base-url {base} -c {t}\nonce more")
    assert again.status == "ok" and again.final()["data"]["text/plain"] == "again", again.text()
    assert "Thinking first." not in str(sent_messages(server))  # thinking is never sent back
    kernel.ok("%chat use -p OpenAI")  # back to what the other tests expect


def test_a_long_answer_never_shows_more_outputs_than_jupyterlab_renders(kernel, server):
    """JupyterLab and Notebook 7 render at most 50 outputs of a cell (the rest hide behind "Show more
    outputs"): a long answer's settled pieces are merged before that, and it ends as one output."""
    server.chunks = [f"Paragraph {i}: " + "words and more words " * 15 + "\n\n" for i in range(240)]
    server.chunk_delay = 0.01
    kernel.ok("%config ChatConfig.updates_per_second = 50")
    try:
        ex = kernel.run(f"%%chat -c {thread()}\nA long answer, please")
    finally:
        kernel.ok("%config ChatConfig.updates_per_second = 10")
    assert ex.status == "ok", ex.text()
    assert len(ex.of_type("clear_output")) >= 2, "the pieces were merged at least once before the end"
    assert 10 < ex.most_outputs <= 40, ex.most_outputs
    outputs = ex.outputs
    assert len(outputs) == 1 and outputs[0]["data"]["text/plain"] == "".join(server.chunks)
    shown = [ex.outputs_after(n) for n in range(len(ex.messages) // 2, len(ex.messages) - 2)]
    assert all("Paragraph" in "".join(o["data"].get("text/html", "") for o in out) for out in shown if out)
