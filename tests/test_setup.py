"""One provider setup, resolved once and used everywhere (issue 18 §1).

A real (terminal) IPython shell with the extension loaded; gpt4free's own
classes (``Custom``, ``Airforce``, ``DeepInfra``: g4f is pinned in the test
extra) pointed at the local protocol server, and xllamacpp's real llama.cpp
HTTP server (``tests/llama_server.py``).
"""

from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

from ipyg4f.chat import get_chat
from ipyg4f.errors import ChatFailed
from ipyg4f.providers.setup import CONFIG, DEFAULT, check_options, resolve
from protocol_server import closed_port_url
from llama_server import KEY
from llama_server import llama_server as start_llama_server

ENV = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LLAMACPP_BASE_URL", "LLAMACPP_API_KEY", "VLLM_BASE_URL",
       "VLLM_API_KEY", "OLLAMA_BASE_URL", "OLLAMA_API_KEY", "IPYG4F_PROVIDER")


@pytest.fixture(scope="module")
def llama_server():
    """xllamacpp's real llama.cpp HTTP server with the bundled model and an API key (:data:`KEY`)."""
    with start_llama_server() as server:
        yield server


@pytest.fixture
def ip(tmp_path, monkeypatch):
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    shell = TerminalInteractiveShell.instance()
    shell.config.pop("ChatConfig", None)  # %config of another test (the shell is shared) stays out
    shell.run_line_magic("load_ext", "ipyg4f")
    shell.run_line_magic("config", f"ChatConfig.history_path = {str(tmp_path / 'h.sqlite3')!r}")
    yield shell
    shell.run_line_magic("unload_ext", "ipyg4f")
    shell.config.pop("ChatConfig", None)


def chat_cell(ip, options: str, body: str = "hi"):
    """Run ``%%chat options`` with ``body``; the exception it raised, if any."""
    result = ip.run_cell(f"%%chat {options}\n{body}", store_history=True)
    return result.error_in_exec or result.error_before_exec


def options(ip, value: dict) -> None:
    ip.run_line_magic("config", f"ChatConfig.provider_options = {value!r}")


def table(out: str) -> dict[str, str]:
    """``%chat providers``' plain-text table: provider -> the rest of its row."""
    rows = {}
    for line in out.splitlines()[1:]:
        name, _, rest = line.partition("  ")
        rows[name.rstrip(" *")] = rest.strip()
    return rows


# --- the resolution itself ----------------------------------------------------------------

def test_precedence_is_cell_then_provider_options_then_environment_then_class_default(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    s = resolve("LlamaCppServer")
    assert (s.base_url, s.base_url_from, s.key_env, s.key) == ("http://127.0.0.1:8080/v1", DEFAULT,
                                                                "LLAMACPP_API_KEY", None)
    monkeypatch.setenv("LLAMACPP_BASE_URL", "http://env.test:1/v1")
    monkeypatch.setenv("LLAMACPP_API_KEY", "key-from-env")
    monkeypatch.setenv("OTHER_KEY", "key-from-other")
    s = resolve("LlamaCppServer")
    assert (s.base_url, s.base_url_from, s.key) == ("http://env.test:1/v1", "$LLAMACPP_BASE_URL", "key-from-env")
    configured = {"llamacppserver": {"base_url": "http://config.test:2/v1", "api_key_env": "OTHER_KEY",
                                     "max_tokens": 5, "temperature": 0.1}}
    s = resolve("LlamaCppServer", provider_options=configured, defaults={"temperature": 0.9})
    assert (s.base_url, s.base_url_from, s.key_env, s.key_from, s.key) == (
        "http://config.test:2/v1", CONFIG, "OTHER_KEY", CONFIG, "key-from-other")
    assert s.options == {"temperature": 0.1, "max_tokens": 5}  # provider_options beat the shell's default
    s = resolve("LlamaCppServer", provider_options=configured,
                cell={"base_url": "http://cell.test:3/v1/", "api_key_env": "LLAMACPP_API_KEY", "temperature": 0.7})
    assert (s.base_url, s.base_url_from, s.key_env, s.key) == ("http://cell.test:3/v1", "cell",
                                                                "LLAMACPP_API_KEY", "key-from-env")
    assert s.options == {"temperature": 0.7, "max_tokens": 5}  # the cell wins, the rest stays
    assert "key-from" not in repr(s)  # the key itself is never shown


@pytest.mark.parametrize("spelling", ["Custom", "custom", "g4f:Custom", "g4f.Provider.Custom", "G4F:custom"])
def test_provider_options_under_any_spelling_p_accepts(spelling):
    s = resolve("g4f:Custom", provider_options={spelling: {"base_url": "http://127.0.0.1:9/v1", "model": "m1"}})
    assert (s.name, s.base_url, s.base_url_from, s.model) == ("g4f:Custom", "http://127.0.0.1:9/v1", CONFIG, "m1")


def test_a_lowercase_g4f_name_works_in_a_fresh_process():
    """gpt4free's loader does not list every class it loads (Custom): a spelling must not depend on what
    happened to be loaded before."""
    import subprocess
    import sys

    code = ("from ipyg4f.providers.setup import resolve, check_options\n"
            "print(resolve('custom').name)\n"
            "print(check_options({'Custm': {}})[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    name, problem = out.stdout.splitlines()
    assert name == "g4f:Custom" and "(did you mean 'Custom'?)" in problem


def test_unknown_keys_of_provider_options_are_named_with_the_known_spellings():
    problems = check_options({"OpenAl": {"base_url": "x"}, "OpenAI": {"base_uri": "x"}, "Custom": {"model": "m"}})
    assert len(problems) == 2
    assert "'OpenAl' names no provider (did you mean 'OpenAI'?)" in problems[0]
    assert "g4f:Custom" in problems[0]  # how to spell one
    assert "unknown option 'base_uri' (did you mean 'base_url'?)" in problems[1]


# --- every entry point uses it ------------------------------------------------------------

def test_a_g4f_provider_takes_its_provider_options_spelled_as_p_takes_it(ip, protocol_server, capsys):
    options(ip, {"Custom": {"base_url": f"{protocol_server.base_url}/v1", "model": "served-model"}})
    assert chat_cell(ip, "-p g4f:Custom") is None
    assert "Hello world" in capsys.readouterr().out
    assert protocol_server.requests[-1].json["model"] == "served-model"


def test_a_provider_inside_fallback_behaves_as_it_does_alone(ip, protocol_server, capsys):
    options(ip, {"g4f.Provider.Custom": {"base_url": f"{protocol_server.base_url}/v1", "model": "served-model",
                                         "max_tokens": 7}})
    assert chat_cell(ip, "-p g4f:Custom -t 0.2") is None
    alone = protocol_server.requests[-1]
    ip.run_line_magic("config", "ChatConfig.fallback = ['g4f:Custom']")
    assert chat_cell(ip, "-p Fallback -t 0.2") is None
    inside = protocol_server.requests[-1]
    assert "Hello world" in capsys.readouterr().out
    assert inside.path == alone.path == "/v1/chat/completions"
    sent = ("model", "max_tokens", "temperature")
    assert [inside.json.get(k) for k in sent] == [alone.json.get(k) for k in sent] == ["served-model", 7, 0.2]


def test_a_batch_uses_the_same_setup(ip, protocol_server):
    from ipyg4f.batch import run_batch
    from ipyg4f.history import HistoryStore

    options(ip, {"Custom": {"base_url": f"{protocol_server.base_url}/v1", "model": "served-model"}})
    protocol_server.echo = True
    result = run_batch("{item}", ["one", "two"], provider="g4f:Custom", chat=get_chat(ip),
                       store=HistoryStore(":memory:"))
    assert list(result) == ["one", "two"]
    assert {r.json["model"] for r in protocol_server.requests} == {"served-model"}


def test_per_provider_cell_options_with_fallback_are_a_usage_error(ip):
    for flags in ("-m gpt-4o", "--base-url http://127.0.0.1:9/v1"):
        error = chat_cell(ip, f"-p Fallback {flags}")
        assert isinstance(error, UsageError) and "ChatConfig.provider_options" in str(error)
        assert flags.split()[0] in str(error)


@pytest.mark.local_model
def test_models_are_listed_where_the_options_point_with_their_key(ip, llama_server, protocol_server,
                                                                  monkeypatch, capsys):
    monkeypatch.setenv("LLAMACPP_BASE_URL", f"{protocol_server.base_url}/v1")  # another server
    monkeypatch.setenv("MY_LLAMA_KEY", KEY)
    ip.run_line_magic("chat", f"models -p LlamaCppServer --base-url {llama_server.url} --api-key-env MY_LLAMA_KEY")
    assert llama_server.model in capsys.readouterr().out
    # OpenAI's class pointed elsewhere asks there, never api.openai.com (no network here: it would fail)
    ip.run_line_magic("chat", f"models -p OpenAI --base-url {llama_server.url} --api-key-env MY_LLAMA_KEY")
    assert llama_server.model in capsys.readouterr().out
    assert "/v1/models" not in protocol_server.paths()


@pytest.mark.local_model
def test_a_401_names_the_variable_the_key_came_from(ip, llama_server, monkeypatch):
    monkeypatch.setenv("LLAMACPP_API_KEY", KEY)  # the right key, in the variable NOT chosen
    monkeypatch.setenv("WRONG_KEY", "not-the-key")
    error = chat_cell(ip, f"-p LlamaCppServer --base-url {llama_server.url} --api-key-env WRONG_KEY")
    assert isinstance(error, ChatFailed)
    text = "\n".join(error.lines)
    assert "401" in text and "set WRONG_KEY" in text and "LLAMACPP_API_KEY" not in text
    with pytest.raises(ChatFailed) as info:
        ip.run_line_magic("chat", f"models -p LlamaCppServer --base-url {llama_server.url} --api-key-env WRONG_KEY")
    assert "set WRONG_KEY" in "\n".join(info.value.lines)


def test_the_check_probes_where_provider_options_point(ip, protocol_server, capsys):
    options(ip, {"VLLM": {"base_url": f"{protocol_server.base_url}/v1"},
                 "LlamaCppServer": {"base_url": f"{closed_port_url()}/v1"}})
    ip.run_line_magic("chat", "providers --check")
    rows = table(capsys.readouterr().out)
    assert re.match(r"yes\s+yes \(HTTP \d+", rows["VLLM"]), rows["VLLM"]
    assert re.match(r"yes\s+refused", rows["LlamaCppServer"]), rows["LlamaCppServer"]
    ip.run_line_magic("chat", "providers --check -p VLLM")
    assert re.match(r"yes\s+yes \(HTTP \d+", table(capsys.readouterr().out)["VLLM"])
    options(ip, {"Custom": {"base_url": f"{protocol_server.base_url}/v1"}})  # a gpt4free class is listed too
    ip.run_line_magic("chat", "providers --check")
    assert re.match(r"yes\s+yes \(HTTP \d+", table(capsys.readouterr().out)["g4f:Custom"])


def test_providers_table_and_panel_dropdown_agree_on_set_up(ip, monkeypatch, capsys):
    from ipyg4f.panel import ChatPanel

    monkeypatch.setenv("VLLM_BASE_URL", closed_port_url() + "/v1")  # keyless, configured, nothing listening
    options(ip, {"Custom": {"base_url": closed_port_url() + "/v1"}})  # a gpt4free class, listed by both
    ip.run_line_magic("chat", "providers")
    rows = table(capsys.readouterr().out)
    panel = ChatPanel(chat=get_chat(ip))
    try:
        labels = {value: label for label, value in panel.provider.options}
    finally:
        panel.close()
    for name in ("Ollama", "VLLM", "LlamaCppServer", "OpenAI", "Pizzagpt", "Acytoo", "g4f:Custom"):
        set_up = rows[name].startswith("yes")
        assert set_up == ("not set up" not in labels[name] and "not working" not in labels[name]), (name, labels[name])
    assert rows["VLLM"].startswith("yes") and rows["OpenAI"].startswith("not set up")


def test_use_warns_at_once_when_the_key_is_missing(ip, capsys, monkeypatch):
    ip.run_line_magic("chat", "use -p OpenAI")
    out = capsys.readouterr()
    assert "default: OpenAI" in out.out and "set OPENAI_API_KEY" in out.err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-present")
    ip.run_line_magic("chat", "use -p OpenAI")
    assert "OPENAI_API_KEY" not in capsys.readouterr().err


@pytest.mark.parametrize("name", ["g4f:Airforce", "g4f:DeepInfra"])
def test_no_false_ignores_note_for_g4f_classes_that_pass_kwargs_on(ip, protocol_server, capsys, monkeypatch, name):
    monkeypatch.setenv("G4F_TEST_KEY", "test-key")  # DeepInfra without a key would start a browser
    assert chat_cell(ip, f"-p {name} -m test-model --base-url {protocol_server.base_url}/v1 --max-tokens 3 -t 0.4 "
                         "--api-key-env G4F_TEST_KEY") is None
    out = capsys.readouterr().out
    assert "Hello world" in out and "ignores" not in out
    body = protocol_server.requests[-1].json
    assert (body["max_tokens"], body["temperature"]) == (3, 0.4)  # they were honoured, as the note would deny


def test_a_problem_of_provider_options_is_said_once(ip, protocol_server, capsys):
    options(ip, {"OpenAI": {"base_url": f"{protocol_server.base_url}/v1", "base_uri": "x"}})
    for _ in range(2):
        assert chat_cell(ip, "-p OpenAI") is None
    err = capsys.readouterr().err
    assert err.count("unknown option 'base_uri' (did you mean 'base_url'?)") == 1
