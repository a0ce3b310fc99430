"""The context window against xllamacpp's real llama.cpp HTTP server (issue 22): asked at ``/props``
(with the server's key), shown in the footer without a price, and a thread longer than the server's
context cut before it is sent, where the server itself would refuse it (HTTP 400)."""

from __future__ import annotations

import pytest

from ipyg4f.chat import get_chat
from ipyg4f.pricing import window
from chat_shell import chat_cell, chat_shell
from llama_server import KEY
from llama_server import llama_server as start_llama_server

pytestmark = pytest.mark.local_model

N_CTX = 512


@pytest.fixture(scope="module")
def llama_server():
    with start_llama_server(n_ctx=N_CTX, api_key=KEY) as server:
        yield server


@pytest.fixture
def ip(tmp_path, monkeypatch, llama_server):
    env = {"LLAMACPP_BASE_URL": llama_server.url, "LLAMACPP_API_KEY": KEY}
    with chat_shell(tmp_path, monkeypatch, "-p LlamaCppServer", env) as shell:
        yield shell


def cell(ip, body: str):
    return chat_cell(ip, "--max-tokens 4", body)


def test_the_window_of_a_llamacpp_server_is_in_the_footer_with_no_price(ip, llama_server, capsys):
    assert cell(ip, "Say hello.") is None
    assert window.wait_served(llama_server.url, 60), "the server was never asked for its window"
    assert window.served_window(llama_server.url) == N_CTX  # /props, which wants the key
    capsys.readouterr()
    assert cell(ip, "Say hello again.") is None
    out = capsys.readouterr().out
    assert "/512 · " not in out and "context " in out and out.rstrip().endswith("/512")
    assert "$" not in out


def test_a_thread_longer_than_the_servers_context_loses_its_oldest_exchanges(ip, llama_server, capsys):
    chat = get_chat(ip)
    filler = "hello world " * 70  # 840 characters: ~210 tokens estimated, fewer for llama.cpp's tokenizer
    for n in range(6):  # ~1300 tokens in all: llama.cpp would answer HTTP 400 exceed_context_size_error
        chat.store.record(chat.notebook, "default", f"cell-{n}", f"question {n}: {filler}", filler,
                          provider="LlamaCppServer", model="default")
    assert cell(ip, "Say hi.") is None
    out = capsys.readouterr().out
    assert "oldest exchanges did not fit in the model's context (512 tokens) and were left out" in out


def test_local_shows_the_context_it_loaded_the_model_with_and_never_a_price(ip, capsys):
    import re

    from ipyg4f.pricing.meter import compact
    from ipyg4f.providers.local import engine

    ip.run_line_magic("config", "ChatConfig.prices = {'gemma-3-270m': {'input': 100.0, 'output': 100.0}}")
    result = ip.run_cell("%%chat -p Local -m gemma-3-270m --max-tokens 4\nSay hello.")
    assert (result.error_in_exec or result.error_before_exec) is None
    out = capsys.readouterr().out
    loaded = engine.loaded()
    assert loaded is not None and re.search(rf"· context \d+/{re.escape(compact(loaded.n_ctx))}$", out.rstrip())
    assert "$" not in out  # the user's price names the model; Local runs in this process and costs nothing
