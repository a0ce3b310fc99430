"""``%%chat --compare`` / ``--race`` and ``%chat pick`` in process: a terminal IPython shell, the protocol
server's OpenAI endpoint (as ``Ollama``, which needs no key) with a latency per model."""

from __future__ import annotations

import json
import threading

import pytest
from IPython.core.error import UsageError

from ipyg4f.chat import get_chat
from ipyg4f.errors import ChatFailed
from ipyg4f.events import ProviderUsed
from ipyg4f.providers.fallback import Fallback
from ipyg4f.providers.setup import resolve
from protocol_server import collect

#: seconds before each model's answer starts (the server handles requests concurrently)
LATENCY = {"fast": 0.2, "mid": 0.6, "slow": 1.2}


@pytest.fixture
def srv(protocol_server):
    protocol_server.latency = lambda rec: LATENCY.get((rec.json or {}).get("model"), 0.0)
    protocol_server.echo = True  # each answer says which prompt it got
    return protocol_server


@pytest.fixture
def ip(tmp_path, monkeypatch, srv):
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    shell = TerminalInteractiveShell.instance()
    shell.run_line_magic("load_ext", "ipyg4f")
    shell.run_line_magic("config", f"ChatConfig.history_path = {str(tmp_path / 'h.sqlite3')!r}")
    shell.run_line_magic("config", "ChatConfig.provider_options = "
                         + repr({"Ollama": {"base_url": f"{srv.base_url}/v1"}}))
    shell.run_line_magic("chat", "use -p Ollama -m fast")
    yield shell
    shell.run_line_magic("unload_ext", "ipyg4f")


def chat_cell(ip, options: str, body: str):
    result = ip.run_cell(f"%%chat {options}\n{body}", store_history=True)
    return result.error_in_exec or result.error_before_exec


def stored(ip, thread="default"):
    chat = get_chat(ip)
    return chat.store.exchanges(chat.notebook, thread)


def test_compare_sends_to_every_spec_at_once_and_stores_every_answer(ip, srv, capsys):
    srv.fault, srv.fault_path = "stall", "/v1/chat/completions"  # every answer waits until all three requests are in: one after another would hang
    seen = []
    releaser = threading.Thread(target=lambda: (seen.append(srv.wait_stalled(3, 60)), srv.release_stall()),
                                daemon=True)
    releaser.start()
    assert chat_cell(ip, "--compare Ollama=fast,Ollama=mid,Ollama=slow -o got", "Say hi") is None
    releaser.join(60)
    assert seen == [True], "the three requests were not in flight at the same time"
    assert sorted(r.json["model"] for r in srv.requests if r.path == "/v1/chat/completions") == ["fast", "mid", "slow"]
    out = capsys.readouterr().out
    for n, model in enumerate(["fast", "mid", "slow"], 1):
        assert f"{n}. Ollama ({model})" in out
    assert out.count("first token") == 3  # a footer per column
    assert "%chat pick N" in out
    assert ip.user_ns["got"] == {f"Ollama ({m})": "Say hi" for m in ("fast", "mid", "slow")}
    [ex] = stored(ip)
    assert ex.answer == "" and ex.status == "ok"  # nothing picked yet
    assert [(v["model"], v["answer"], v["status"]) for v in ex.variant_list()] == [
        ("fast", "Say hi", "ok"), ("mid", "Say hi", "ok"), ("slow", "Say hi", "ok")]


def test_until_a_pick_the_thread_holds_the_prompt_alone_then_the_picked_answer(ip, srv, capsys):
    assert chat_cell(ip, "--compare Ollama=fast,Ollama=mid", "First question") is None
    assert chat_cell(ip, "", "Follow-up") is None
    sent = srv.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "user"] and sent[0]["content"] == "First question"
    ip.run_line_magic("chat", "pick 2")
    assert "continues with column 2: Ollama (mid)" in capsys.readouterr().out
    [compared, _] = stored(ip)
    assert (compared.answer, compared.model) == ("First question", "mid")
    assert [v.get("picked") for v in compared.variant_list()] == [False, True]
    assert chat_cell(ip, "", "Follow-up") is None
    sent = srv.requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent[:2]] == [("user", "First question"), ("assistant", "First question")]


def test_rerunning_the_compared_cell_replaces_every_answer(ip, srv, monkeypatch):
    monkeypatch.setattr(get_chat(ip), "new_cell_id", lambda: "cell-1")  # the same cell, run twice
    assert chat_cell(ip, "--compare Ollama=fast,Ollama=mid", "one") is None
    ip.run_line_magic("chat", "pick 1")
    assert chat_cell(ip, "--compare Ollama=mid,Ollama=slow,Ollama=fast", "two") is None
    [ex] = stored(ip)
    assert ex.answer == "" and [v["model"] for v in ex.variant_list()] == ["mid", "slow", "fast"]
    assert [v["answer"] for v in ex.variant_list()] == ["two"] * 3


@pytest.mark.parametrize("options, words", [
    ("--compare Ollama=fast,NoSuchProvider", "unknown provider 'NoSuchProvider'"),
    ("--race Ollama=fast,NoSuchProvider", "unknown provider 'NoSuchProvider'"),
    ("--compare ,", "needs at least one PROVIDER"),
    ("--compare Ollama=fast,Local=/no/such/model.gguf", "no GGUF model file at /no/such/model.gguf"),
    ("--race Ollama=fast,Local=no-such-model", "Local has no model 'no-such-model'"),
    ("--compare Ollama --with x", "does not take --with"),
    ("--compare Ollama --race Ollama", "do not go together"),
])
def test_user_errors_are_usage_errors_before_anything_is_sent(ip, srv, options, words):
    ip.user_ns["x"] = 1
    with pytest.raises(UsageError, match=words):
        ip.run_cell_magic("chat", options, "hi")
    assert srv.requests == [] and stored(ip) == []


def test_pick_errors(ip, srv):
    with pytest.raises(UsageError, match="no --compare cell"):
        ip.run_line_magic("chat", "pick 1")
    assert chat_cell(ip, "--compare Ollama=fast,Ollama=mid", "q") is None
    with pytest.raises(UsageError, match="has 2 columns, not 3"):
        ip.run_line_magic("chat", "pick 3")
    with pytest.raises(UsageError, match="needs a column number"):
        ip.run_line_magic("chat", "pick x")


def test_one_failing_column_does_not_stop_the_others(ip, srv, capsys):
    srv.fault, srv.fault_path, srv.fault_match = "http500", "/v1/chat/completions", '"model": "mid"'
    assert chat_cell(ip, "--compare Ollama=fast,Ollama=mid", "q") is None
    out = capsys.readouterr().out
    assert "Ollama failed: HTTP 500" in out
    [ex] = stored(ip)
    assert [v["status"] for v in ex.variant_list()] == ["ok", "error"]
    with pytest.raises(UsageError, match="has no answer"):
        ip.run_line_magic("chat", "pick 2")


def test_an_interrupt_stops_every_column_and_keeps_the_partial_answers(ip, srv, monkeypatch):
    srv.echo, srv.answer, srv.fault, srv.fault_after = False, "one two three four", "stall", 2
    srv.fault_path, srv.latency = "/v1/chat/completions", 0.0
    chat = get_chat(ip)
    saved = threading.Event()
    save_partial = chat.store.save_partial

    def watched(*args, **kwargs):  # the test interrupts once both columns' text is saved (while streaming)
        done = save_partial(*args, **kwargs)
        variants = json.loads(kwargs["variants"])
        if all(v["answer"] for v in variants):
            saved.set()
        return done

    monkeypatch.setattr(chat.store, "save_partial", watched)
    interrupt = threading.Thread(target=lambda: saved.wait(60) and _interrupt_main(), daemon=True)
    interrupt.start()
    error = chat_cell(ip, "--compare Ollama=fast,Ollama=mid", "q")
    assert isinstance(error, ChatFailed) and "stopped by interrupt" in str(error)
    assert srv.wait_dropped(2, 60)  # both connections closed
    [ex] = stored(ip)
    assert ex.status == "ok" and ex.answer == ""  # the partial save replaced by the final record
    variants = ex.variant_list()
    assert [v["status"] for v in variants] == ["interrupted"] * 2
    assert all(v["answer"].startswith("one ") and "one two three four".startswith(v["answer"]) for v in variants)
    ip.run_line_magic("chat", "pick 1")
    assert stored(ip)[0].status == "interrupted"  # picked: a partial answer, sent back marked as such


def test_a_partial_save_of_a_kernel_that_died_picks_as_interrupted(ip, srv):
    chat = get_chat(ip)
    variants = json.dumps([{"provider": "Ollama", "model": "x", "answer": "half", "status": "streaming"}])
    chat.store.save_partial(chat.notebook, "default", "dead-cell", "q", "", provider="compare", variants=variants)
    ip.run_line_magic("chat", "pick 1")
    [ex] = stored(ip)
    assert (ex.answer, ex.status) == ("half", "interrupted")


def _interrupt_main() -> None:
    import _thread

    _thread.interrupt_main()


# -- race ----------------------------------------------------------------------------------

async def test_race_the_first_text_wins_and_the_losers_connections_close(srv):
    srv.echo = False
    entries = [resolve("Ollama", model=m, cell={"base_url": f"{srv.base_url}/v1"}) for m in ("slow", "fast", "mid")]
    items = await collect(Fallback.create_async_generator("", [{"role": "user", "content": "hi"}],
                                                          providers=entries, mode="race"))
    assert items[0] == ProviderUsed("Ollama", "fast", ("Ollama: cancelled", "Ollama: cancelled"))
    assert "".join(i for i in items if isinstance(i, str)) == "Hello world"
    assert srv.wait_dropped(2, 60)
    assert sorted(r.json["model"] for r in srv.dropped) == ["mid", "slow"]


def test_race_cell_says_who_won_and_who_was_cancelled(ip, srv, capsys):
    srv.fault, srv.fault_path, srv.fault_match = "http500", "/v1/chat/completions", '"model": "down"'
    assert chat_cell(ip, "--race Ollama=slow,Ollama=fast,Ollama=down -o won", "Race me") is None
    out = capsys.readouterr().out
    assert "Ollama (fast) won the race (Ollama: cancelled, Ollama: HTTP 500)" in out
    assert ip.user_ns["won"] == "Race me"
    [ex] = stored(ip)
    assert (ex.provider, ex.model, ex.answer) == ("Ollama", "fast", "Race me")


def test_fallback_mode_race_races_the_fallback_list(ip, srv, capsys):
    ip.run_line_magic("config", "ChatConfig.fallback_mode = 'race'")
    ip.run_line_magic("config", "ChatConfig.provider_options = " + repr({
        "Ollama": {"base_url": f"{srv.base_url}/v1", "model": "slow"},
        "VLLM": {"base_url": f"{srv.base_url}/v1", "model": "fast"}}))
    ip.run_line_magic("config", "ChatConfig.fallback = ['Ollama', 'VLLM']")
    assert chat_cell(ip, "-p Fallback", "hi") is None
    assert "VLLM (fast) won the race (Ollama: cancelled)" in capsys.readouterr().out
    assert srv.wait_dropped(1, 60) and srv.dropped[0].json["model"] == "slow"


def test_race_when_every_one_fails_lists_each_failure(ip, srv):
    srv.fault, srv.fault_path = "http500", "/v1/chat/completions"
    error = chat_cell(ip, "--race Ollama=fast,Ollama=mid", "q")
    assert isinstance(error, ChatFailed) and str(error).count("HTTP 500") == 2, str(error)


def test_variants_are_json_with_a_footer_each(ip, srv):
    assert chat_cell(ip, "--compare Ollama=fast,Ollama=mid", "q") is None
    [ex] = stored(ip)
    raw = json.loads(ex.variants)
    assert all("first token" in v["footer"] and v["provider"] == "Ollama" for v in raw)
    assert all(v["usage"]["input"] and v["usage"]["output"] for v in raw), raw  # tokens per column
    ip.run_line_magic("chat", "pick 2")
    assert stored(ip)[0].usage_dict() == raw[1]["usage"]  # the picked column's usage is the exchange's


class Thinker:
    """Thinks (an event held until it wins), then answers."""

    name = "Thinker"
    enforces_timeout = False

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        from ipyg4f.events import Reasoning

        yield Reasoning("hmm")
        yield "the answer"
        yield " goes on"


async def test_race_the_winners_held_events_come_first_and_its_text_whole(srv):
    srv.fault, srv.fault_path = "stall", "/v1/chat/completions"  # the other one never answers
    other = resolve("Ollama", model="fast", cell={"base_url": f"{srv.base_url}/v1"})
    from ipyg4f.events import Reasoning
    from ipyg4f.providers import register, unregister

    register(Thinker, "Thinker")
    try:
        items = await collect(Fallback.create_async_generator("", [{"role": "user", "content": "hi"}],
                                                              providers=[other, "Thinker"], mode="race"))
    finally:
        unregister("Thinker")
    assert items == [ProviderUsed("Thinker", "", ("Ollama: cancelled",)), Reasoning("hmm"), "the answer", " goes on"]


# -- --map with --compare ------------------------------------------------------------------

def test_map_with_compare_fills_a_column_per_spec_and_resumes_from_the_store(ip, srv, capsys):
    import pandas as pd

    ip.user_ns["df"] = pd.DataFrame({"word": ["red", "green", "blue"]}, index=[10, 20, 30])
    options = '--map df --compare Ollama=x,Ollama=y --into df[["a","b"]] -o got'
    assert chat_cell(ip, options, "Say {word}") is None
    df = ip.user_ns["df"]
    assert list(df["a"]) == list(df["b"]) == ["Say red", "Say green", "Say blue"]
    assert list(df.index) == [10, 20, 30]
    assert sorted(r.json["model"] for r in srv.requests if r.path == "/v1/chat/completions") == ["x"] * 3 + ["y"] * 3
    assert set(ip.user_ns["got"]) == {"Ollama=x", "Ollama=y"}
    sent = len(srv.requests)
    assert chat_cell(ip, '--map df --compare Ollama=x,Ollama=y --into df["label"]', "Say {word}") is None
    assert len([r for r in srv.requests[sent:] if r.path == "/v1/chat/completions"]) == 0  # from the store
    assert list(ip.user_ns["df"]["label.Ollama=y"]) == ["Say red", "Say green", "Say blue"]
    assert capsys.readouterr().out.count("3/3 answered, 3 from the store") == 2


@pytest.mark.parametrize("options, words", [
    ('--map df --compare Ollama=x,Nope --into df["a"]', "unknown provider 'Nope'"),
    ('--map df --compare Ollama=x,Ollama=y --into df[["a"]]', "one column per --compare SPEC"),
])
def test_map_with_compare_user_errors_send_nothing(ip, srv, options, words):
    ip.user_ns["df"] = [1, 2]
    with pytest.raises(UsageError, match=words.replace("[", r"\[")):
        ip.run_cell_magic("chat", options, "{item}")
    assert [r for r in srv.requests if r.path == "/v1/chat/completions"] == []


async def test_each_column_times_its_first_token_on_arrival_not_when_drawn(srv):
    """The cell's thread takes a column's items when the throttle lets it (up to a second later while
    another column streams a long answer): the first token is timed where it arrived."""
    import time

    from ipyg4f.compare import Columns, Multiplex
    from ipyg4f.runner import Answer, ChatRequest

    cell = {"base_url": f"{srv.base_url}/v1"}
    requests = [ChatRequest(s.provider, s.model, [{"role": "user", "content": "q"}], kwargs=s.kwargs())
                for s in (resolve("Ollama", model=m, cell=cell) for m in ("x", "y"))]
    columns = Columns([Answer("Ollama", "x"), Answer("Ollama", "y")])
    items = await collect(Multiplex(requests).create_async_generator("", []))
    taken = time.monotonic()  # the cell's thread takes the items only now
    for item in items:
        columns.feed(item)
    for answer in columns.answers:
        assert answer.text == "q" and answer.status == "ok"
        assert answer.started < answer.first_token < taken and answer.ended < taken


def test_new_starts_the_thread_afresh_for_compare_and_race(ip, srv):
    assert chat_cell(ip, "", "old question") is None
    assert chat_cell(ip, "--compare Ollama=x,Ollama=y --new", "fresh") is None
    assert [m["content"] for m in srv.requests[-1].json["messages"]] == ["fresh"]
    assert chat_cell(ip, "--race Ollama=x --new", "again") is None
    assert [m["content"] for m in srv.requests[-1].json["messages"]] == ["again"]
    assert [ex.prompt for ex in stored(ip)] == ["again"]


def test_race_a_winner_that_breaks_after_its_first_text_keeps_it_and_fails(ip, srv):
    srv.echo, srv.answer = False, "one two three four"
    srv.fault, srv.fault_path, srv.fault_match, srv.fault_after = "reset", "/v1/chat/completions", '"model": "x"', 3
    error = chat_cell(ip, "--race Ollama=x,Ollama=slow", "q")
    assert isinstance(error, ChatFailed) and "partial answer" in str(error), str(error)
    assert srv.wait_dropped(1, 60) and srv.dropped[0].json["model"] == "slow"  # the loser was cancelled
    [ex] = stored(ip)
    assert (ex.status, ex.model) == ("error", "x") and "one two three four".startswith(ex.answer) and ex.answer


class SilentServer:
    """Accepts connections, reads the request, never answers; notes when the client closes each one."""

    def __init__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.accepted, self.closed = threading.Event(), threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        with self.sock:
            conn, _ = self.sock.accept()
        self.accepted.set()
        conn.settimeout(120)
        try:
            while conn.recv(65536):  # the request, then nothing until the client closes
                pass
            self.closed.set()
        except OSError:
            pass
        finally:
            conn.close()


def test_race_g4f_custom_on_a_silent_server_loses_and_its_connection_is_closed(ip, srv, capsys):
    silent = SilentServer()
    ip.run_line_magic("config", "ChatConfig.provider_options = " + repr({
        "Ollama": {"base_url": f"{srv.base_url}/v1"}, "g4f:Custom": {"base_url": silent.url}}))
    srv.echo, srv.fault, srv.fault_path = False, "stall", "/v1/chat/completions"  # the live one answers once
    release = threading.Thread(target=lambda: (silent.accepted.wait(60), srv.wait_stalled(1, 60),  # both are
                                               srv.release_stall()), daemon=True)  # in flight
    release.start()
    assert chat_cell(ip, "--race g4f:Custom=any,Ollama=live -o won", "hi") is None
    assert ip.user_ns["won"] == "Hello world"
    assert silent.accepted.is_set() and silent.closed.wait(60), "the silent server's connection was closed"
    assert "Ollama (live) won the race (g4f:Custom: cancelled)" in capsys.readouterr().out


def test_chat_cost_counts_each_compared_column(ip, srv, capsys):
    srv.prompt_tokens, srv.completion_tokens = 10, 4
    assert chat_cell(ip, "--compare Ollama=x,Ollama=y", "q") is None
    capsys.readouterr()
    ip.run_line_magic("chat", "cost")
    table = capsys.readouterr().out
    for model in ("x", "y"):
        assert any(model in line and "10" in line and "4" in line for line in table.splitlines()), table
