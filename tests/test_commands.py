"""``%%chat`` and the ``%chat`` commands in process: a real (terminal) IPython shell, a scripted provider.

Fast (no kernel); the kernel tests check the same magics through ipykernel with cell ids.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from fakes import ScriptedProvider
from ipyg4f.chat import get_chat
from ipyg4f.errors import ChatFailed, StreamBrokenError
from ipyg4f.events import FinishReason
from ipyg4f.providers import AsyncGeneratorProvider, register, unregister
from ipyg4f.template import fill_template


class Plain(AsyncGeneratorProvider):
    """Honours no option but the proxy (like the seed providers)."""

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        yield "plain answer"


@pytest.fixture
def ip(tmp_path, monkeypatch):
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    shell = TerminalInteractiveShell.instance()
    ScriptedProvider.reset()
    register(ScriptedProvider, "Scripted")
    register(Plain)
    shell.run_line_magic("load_ext", "ipyg4f")
    shell.run_line_magic("config", f"ChatConfig.history_path = {str(tmp_path / 'h.sqlite3')!r}")
    shell.run_line_magic("chat", "use -p Scripted")
    yield shell
    shell.run_line_magic("unload_ext", "ipyg4f")
    unregister("Scripted")
    unregister("Plain")
    ScriptedProvider.reset()


def chat_cell(ip, options: str, body: str):
    """Run ``%%chat options`` with ``body``; the exception it raised, if any."""
    result = ip.run_cell(f"%%chat {options}\n{body}", store_history=True)
    return result.error_in_exec or result.error_before_exec


def test_a_cell_streams_the_answer_and_stores_the_exchange(ip, capsys):
    ScriptedProvider.enqueue(["Paris ", "is the capital.", FinishReason("stop")])
    ip.user_ns["country"] = "France"
    assert chat_cell(ip, "-o reply", "What is the capital of {country}?") is None
    assert "Paris is the capital." in capsys.readouterr().out
    assert ip.user_ns["reply"] == "Paris is the capital."
    assert ScriptedProvider.requests[-1]["messages"][-1]["content"] == "What is the capital of France?"
    chat = get_chat(ip)
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert (stored.provider, stored.answer, stored.status) == ("Scripted", "Paris is the capital.", "ok")


def test_an_option_the_provider_ignores_is_said(ip, capsys):
    assert chat_cell(ip, "-p Plain -t 0.3 --max-tokens 9", "hi") is None
    out = capsys.readouterr().out
    assert "plain answer" in out and "Plain ignores -t/--temperature, --max-tokens" in out
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, "-t 0.3 --max-tokens 9", "hi") is None  # Scripted honours both: no note
    assert "ignores" not in capsys.readouterr().out
    assert (ScriptedProvider.requests[-1]["temperature"], ScriptedProvider.requests[-1]["max_tokens"]) == (0.3, 9)


@pytest.mark.parametrize("options, words", [
    ("-p NoSuchProvider", "unknown provider 'NoSuchProvider'"),
    ("-f yaml", "invalid choice: 'yaml'"),
    ("--max-tokens 0", "--max-tokens must be at least 1"),
    ("--api-key-env IPYG4F_TEST_UNSET_KEY", "IPYG4F_TEST_UNSET_KEY: that environment variable is not set"),
])
def test_user_errors_are_usage_errors_and_change_nothing(ip, capsys, options, words):
    error = chat_cell(ip, options, "hello")
    assert isinstance(error, UsageError) and words in str(error)
    assert "Traceback" not in capsys.readouterr().out
    chat = get_chat(ip)
    assert chat.store.count(chat.notebook, "default") == 0 and ScriptedProvider.requests == []


def test_a_failure_is_short_and_keeps_the_partial_answer(ip, capsys):
    ScriptedProvider.enqueue(["half an ", StreamBrokenError("the connection broke", provider="Scripted")])
    error = chat_cell(ip, "", "tell me")
    assert isinstance(error, ChatFailed)
    assert error.lines[0] == "✖ Scripted: the connection broke"
    assert any("partial answer (8 characters) is kept" in line for line in error.lines)
    chat = get_chat(ip)
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert (stored.answer, stored.status, stored.error) == ("half an ", "error", "the connection broke")


def test_a_key_is_read_from_the_named_variable_and_never_shown(ip, capsys, monkeypatch):
    monkeypatch.setenv("MY_SERVICE_KEY", "sk-very-secret-123")
    ScriptedProvider.enqueue(["fine"])
    assert chat_cell(ip, "--api-key-env MY_SERVICE_KEY --base-url http://127.0.0.1:9/v1", "hi") is None
    assert ScriptedProvider.requests[-1]["api_key"] == "sk-very-secret-123"
    assert ScriptedProvider.requests[-1]["base_url"] == "http://127.0.0.1:9/v1"
    out = capsys.readouterr()
    assert "sk-very-secret" not in out.out + out.err
    assert "Scripted ignores --base-url, --api-key-env" in out.out  # it declares neither


def test_provider_options_give_per_provider_defaults(ip, monkeypatch):
    monkeypatch.setenv("SCRIPTED_KEY", "k-1")
    ip.run_line_magic("config", 'ChatConfig.provider_options = {"scripted": {"max_tokens": 5, '
                                '"api_key_env": "SCRIPTED_KEY"}}')
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, "", "hi") is None
    assert (ScriptedProvider.requests[-1]["max_tokens"], ScriptedProvider.requests[-1]["api_key"]) == (5, "k-1")
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, "--max-tokens 7", "hi") is None  # the cell wins
    assert ScriptedProvider.requests[-1]["max_tokens"] == 7


def test_line_commands(ip, capsys):
    ScriptedProvider.enqueue(["first answer"])
    chat_cell(ip, "", "first question")
    capsys.readouterr()
    ip.run_line_magic("chat", "history")
    assert "first question" in capsys.readouterr().out
    ip.run_line_magic("chat", "threads")
    assert "default" in capsys.readouterr().out
    ip.run_line_magic("chat", "providers")
    out = capsys.readouterr().out
    assert "Scripted *" in out and "Pizzagpt" in out
    ip.run_line_magic("chat", "models -p Scripted")
    assert "scripted-1" in capsys.readouterr().out
    ip.run_line_magic("chat", "reset")
    assert "1 exchanges archived" in capsys.readouterr().out
    with pytest.raises(UsageError, match="unknown %chat command 'nope'"):
        ip.run_line_magic("chat", "nope")


def test_chat_use_stores_a_name_that_resolves_later(ip, capsys):
    ip.run_line_magic("chat", "use -p g4f.Provider.Custom -m test-model")
    chat = get_chat(ip)
    assert (chat.config.provider, chat.config.model) == ("g4f:Custom", "test-model")
    cls, model = chat.resolve(None, None)
    assert (cls.name, model) == ("g4f:Custom", "test-model")


@pytest.mark.parametrize("template, expected", [
    ("{x} and {y.real}", "3 and 2.0"),
    ("{unknown} stays", "{unknown} stays"),
    ("{{braces}} {x}", "{braces} 3"),
    ("{items[1]}", "b"),
    ("{broken", "{broken"),
])
def test_fill_template(template, expected):
    assert fill_template(template, {"x": 3, "y": 2.0, "items": ["a", "b"]}) == expected


def test_thinking_is_shown_apart_stored_apart_and_not_sent_back(ip, capsys):
    from ipyg4f.events import Reasoning

    ScriptedProvider.enqueue([Reasoning("Paris, surely."), "Paris.", FinishReason("stop")])
    assert chat_cell(ip, "-o reply", "capital of France?") is None
    assert ip.user_ns["reply"] == "Paris."
    chat = get_chat(ip)
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert (stored.answer, stored.reasoning) == ("Paris.", "Paris, surely.")
    ScriptedProvider.enqueue(["next"])
    chat_cell(ip, "", "and of Italy?")
    sent = str(ScriptedProvider.requests[-1]["messages"])
    assert "Paris." in sent and "surely" not in sent


def test_debug_says_what_the_provider_sent_that_was_not_shown(ip, capsys):
    ScriptedProvider.enqueue(["shown", {"id": "chatcmpl-1"}, {"id": "chatcmpl-2"}])
    assert chat_cell(ip, "--debug", "hi") is None
    out = capsys.readouterr().out
    assert "shown" in out and "ignored: dict x2" in out and "chatcmpl" not in out
    ScriptedProvider.enqueue(["shown", {"id": "chatcmpl-3"}])
    assert chat_cell(ip, "", "hi") is None
    assert "ignored" not in capsys.readouterr().out  # only with --debug


class Shout(AsyncGeneratorProvider):
    """Answers with the prompt in capitals (JSON when asked for JSON): order-independent, for --map."""

    options = frozenset({"temperature", "max_tokens"})
    calls: list[str] = []

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        prompt = messages[-1]["content"]
        cls.calls.append(prompt)
        if "JSON" in (messages[0]["content"] if messages[0]["role"] == "system" else ""):
            yield '```json\n{"shout": "%s", "size": %d}\n```' % (prompt.upper(), len(prompt))
        else:
            yield prompt.upper()


@pytest.fixture
def shout():
    register(Shout)
    Shout.calls = []
    yield Shout
    unregister("Shout")


def test_map_runs_the_body_once_per_item_in_order(ip, shout, capsys):
    ip.user_ns["words"] = ["alpha", "beta", "gamma", "delta"]
    assert chat_cell(ip, "-p Shout --map words -o shouted -j 3", "say {item}") is None
    assert list(ip.user_ns["shouted"]) == ["SAY ALPHA", "SAY BETA", "SAY GAMMA", "SAY DELTA"]
    assert "4/4 answered" in capsys.readouterr().out
    # a re-run sends only what is new: the rest comes from the store
    ip.user_ns["words"] = ["alpha", "beta", "gamma", "delta", "epsilon"]
    Shout.calls = []
    assert chat_cell(ip, "-p Shout --map words -o shouted", "say {item}") is None
    assert Shout.calls == ["say epsilon"] and ip.user_ns["shouted"][-1] == "SAY EPSILON"


def test_map_into_a_dataframe_column_and_json_fields(ip, shout):
    import pandas as pd
    ip.user_ns["df"] = pd.DataFrame({"name": ["ann", "bob"], "city": ["Oslo", "Lima"]}, index=[10, 20])
    assert chat_cell(ip, '-p Shout --map df --into df["greeting"]', "hi {name} from {row.city}") is None
    df = ip.user_ns["df"]
    assert list(df["greeting"]) == ["HI ANN FROM OSLO", "HI BOB FROM LIMA"] and list(df.index) == [10, 20]
    assert chat_cell(ip, '-p Shout --map df --into df["j"] --json', "{name}") is None
    assert list(ip.user_ns["df"]["j.shout"]) == ["ANN", "BOB"] and list(ip.user_ns["df"]["j.size"]) == [3, 3]


@pytest.mark.parametrize("options, words", [
    ("--map nothing_here", "'nothing_here' is not defined"),
    ("--map words --into words", "write it as a column"),
    ("--map words -j 0", "-j must be at least 1"),
    ("--json", "go with --map"),
    ("--map text", "a string is not a list of items"),
])
def test_map_user_errors_are_usage_errors(ip, shout, options, words):
    ip.user_ns.update(words=["a"], text="abc")
    error = chat_cell(ip, f"-p Shout {options}", "{item}")
    assert isinstance(error, UsageError) and words in str(error), error
    assert Shout.calls == []


def test_quoted_option_values_lose_their_quotes(ip):
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, '-s "Be brief." -c "my thread"', "hi") is None
    assert ScriptedProvider.requests[-1]["messages"][0] == {"role": "system", "content": "Be brief."}
    chat = get_chat(ip)
    assert chat.store.threads(chat.notebook) == ["my thread"]


def test_the_panel_in_a_terminal_says_where_it_works(ip):
    with pytest.raises(UsageError, match="the panel is a widget: open it in JupyterLab"):
        ip.run_line_magic("chat", "panel")


def test_providers_says_set_up_without_network_and_checks_reachability_when_asked(ip, capsys, monkeypatch):
    import socket
    import threading

    received: list[bytes] = []  # what the server thread saw, checked by the test thread

    def answer_once(sock):
        conn, _ = sock.accept()
        with conn:
            received.append(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: a connect is refused
    monkeypatch.setenv("LLAMACPP_BASE_URL", f"http://127.0.0.1:{listening.getsockname()[1]}/v1")
    monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{closed.getsockname()[1]}/v1")
    try:
        ip.run_line_magic("chat", "providers")
        table = capsys.readouterr().out
        assert "reachable" not in table, "no probe unless asked"
        rows = {line.split()[0]: line for line in table.splitlines() if line.strip()}
        assert " yes " in rows["LlamaCppServer"] and " yes " in rows["VLLM"], "set up: an address is configured"

        server = threading.Thread(target=answer_once, args=(listening,), daemon=True)
        server.start()
        ip.run_line_magic("chat", "providers --check -p LlamaCppServer")
        assert "yes (HTTP 404" in capsys.readouterr().out, "any HTTP answer means the server is there"
        server.join(timeout=30)
        assert not server.is_alive() and len(received) == 1
        assert received[0].startswith(b"GET /v1 "), f"the first connection is the check's: {received[0][:40]!r}"
        ip.run_line_magic("chat", "providers --check -p VLLM")
        assert "refused: nothing listens there" in capsys.readouterr().out
        ip.run_line_magic("chat", "providers --check -p Scripted")
        assert "in process" in capsys.readouterr().out, "a provider without an address runs in process"
    finally:
        listening.close()
        closed.close()
    # bounded in time: a server that accepts the connection and never answers is reported, not waited for
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
    ip.run_line_magic("config", "ChatConfig.timeout = 1.0")
    try:
        ip.run_line_magic("chat", "providers --check -p VLLM")  # returns (pytest's timeout guards a hang)
        assert "no answer in 1 s" in capsys.readouterr().out
    finally:
        silent.close()
        ip.run_line_magic("config", "ChatConfig.timeout = 120.0")  # the live setting too, for later tests
