"""Cost and context (issue 22): prices from usage chunks in footers and history, the window from a
server's /props, 80 % warnings, threads cut to the window, ChatConfig.budget; in process, against
the local protocol server (a real terminal IPython shell, the real OpenAI-compatible provider)."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

from chat_shell import chat_cell, chat_shell
from ipyg4f.answer import Answer
from ipyg4f.chat import get_chat
from ipyg4f.events import Usage
from ipyg4f.pricing import rates, window
from ipyg4f.pricing.meter import compact, measure, money
from ipyg4f.render.outcome import footer

PRICES = {"test-model": {"input": 2.0, "output": 8.0}}  # USD per million tokens


@pytest.fixture
def ip(tmp_path, monkeypatch, protocol_server):
    url = f"{protocol_server.base_url}/v1"
    env = {"OPENAI_API_KEY": "sk-test-pricing", "OPENAI_BASE_URL": url, "LLAMACPP_BASE_URL": url}
    with chat_shell(tmp_path, monkeypatch, "-p OpenAI -m test-model", env) as shell:
        shell.run_line_magic("config", f"ChatConfig.prices = {PRICES!r}")
        yield shell
    rates.remember("OpenAI", "https://api.openai.com/v1", {})


def sent(server) -> list[dict]:
    """The chat requests' bodies (the server is also asked for /props)."""
    return [r.json for r in server.requests if r.path == "/v1/chat/completions"]


def stored(ip, thread: str = "default"):
    chat = get_chat(ip)
    return chat.store.exchanges(chat.notebook, thread)


def test_usage_chunks_give_the_price_in_the_footer_and_in_history(ip, protocol_server, capsys):
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 1500, 500
    assert chat_cell(ip, "", "What is 2 + 2?") is None
    out = capsys.readouterr().out
    cost = (1500 * 2.0 + 500 * 8.0) / 1e6  # 0.007
    assert "1500 in / 500 out tokens" in out and money(cost) == "$0.0070" and "$0.0070" in out
    [ex] = stored(ip)
    usage = json.loads(ex.usage)
    assert usage["input"] == 1500 and usage["output"] == 500 and usage["cost"] == pytest.approx(cost)
    assert sent(protocol_server)[-1]["stream_options"] == {"include_usage": True}


def test_a_model_without_a_price_shows_none(ip, protocol_server, capsys):
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 10, 5
    assert chat_cell(ip, "-m gpt-4o-mini", "hi") is None  # a paid model's name, but a server on this machine
    out = capsys.readouterr().out
    assert "10 in / 5 out tokens" in out and "$" not in out
    assert "cost" not in json.loads(stored(ip)[0].usage)


def test_the_window_comes_from_props_and_the_footer_warns_at_80_percent(ip, protocol_server, capsys):
    protocol_server.props_n_ctx = 4096
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 1000, 200
    url = f"{protocol_server.base_url}/v1"
    ip.run_line_magic("chat", "use -p LlamaCppServer -m test-model")
    assert chat_cell(ip, "", "first") is None
    assert window.wait_served(url, 30), "the window was never asked for"
    assert any(r.path == "/props" for r in protocol_server.requests)
    capsys.readouterr()
    assert chat_cell(ip, "", "second") is None
    out = capsys.readouterr().out
    assert "context 1.2k/4.1k" in out and "filling up" not in out
    assert json.loads(stored(ip)[-1].usage)["window"] == 4096
    protocol_server.prompt_tokens = 3300  # 3500 of 4096: 85 %
    assert chat_cell(ip, "", "third") is None
    out = capsys.readouterr().out
    assert "context 3.5k/4.1k (85 %: the thread is filling up; %chat reset or --new" in out
    assert sum(r.path == "/props" for r in protocol_server.requests) == 1  # asked once per base URL


def test_an_openai_compatible_server_of_another_kind_is_never_asked(ip, protocol_server, capsys):
    protocol_server.props_n_ctx = 4096
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 1000, 200
    for n in range(2):
        assert chat_cell(ip, "", f"question {n}") is None  # -p OpenAI, its base URL on this machine
    assert [r.path for r in protocol_server.requests] == ["/v1/chat/completions"] * 2
    assert "context" not in capsys.readouterr().out


def test_a_thread_that_no_longer_fits_loses_its_oldest_exchanges_with_a_note(ip, protocol_server, capsys):
    ip.run_line_magic("config", "ChatConfig.prices = {'test-model': {'window': 600}}")
    protocol_server.answer = "word " * 200  # ~250 tokens an exchange, estimated
    for n in range(3):
        assert chat_cell(ip, "", f"question {n} " + "x" * 400) is None
    capsys.readouterr()
    assert chat_cell(ip, "--max-tokens 50", "last question") is None
    out = capsys.readouterr().out
    users = [m["content"] for m in sent(protocol_server)[-1]["messages"] if m["role"] == "user"]
    assert users[-1] == "last question" and not any(u.startswith("question 0") for u in users)
    assert len(users) < 4
    assert "oldest exchange" in out and "did not fit in the model's context (600 tokens)" in out


def test_the_budget_refuses_a_prompt_over_it_and_caps_the_answer(ip, protocol_server, capsys):
    ip.run_line_magic("config", "ChatConfig.prices = {'test-model': {'input': 1000.0, 'output': 1000.0}}")
    ip.run_line_magic("config", "ChatConfig.budget = 0.01")  # 10 tokens' worth
    error = chat_cell(ip, "", "y" * 400)  # ~100 tokens: $0.10
    assert isinstance(error, UsageError) and "over the budget of $0.01" in str(error)
    assert not sent(protocol_server), "nothing may be sent over the budget"
    assert chat_cell(ip, "", "hi") is None  # ~5 tokens in: the rest buys ~5 tokens out
    cap = sent(protocol_server)[-1]["max_tokens"]
    assert 1 <= cap < 10
    assert f"at most {cap} tokens" in capsys.readouterr().out
    ip.run_line_magic("config", "ChatConfig.budget = None")
    assert chat_cell(ip, "", "hi") is None
    assert "max_tokens" not in sent(protocol_server)[-1]


def answer(provider: str, model: str, tokens_in: int, tokens_out: int) -> Answer:
    a = Answer(provider, model)
    a.feed("ok")
    a.feed(Usage(tokens_in, tokens_out))
    a.end("ok")
    return a


def test_the_price_database_prices_a_paid_api_and_nothing_else():
    rates.remember("OpenAI", "https://api.openai.com/v1", {})
    meter = measure(answer("OpenAI", "gpt-4o-mini", 1000, 500))
    assert meter.cost == pytest.approx((1000 * 0.15 + 500 * 0.6) / 1e6)  # genai-prices' snapshot
    assert meter.window == 128_000 and "context 1.5k/128k" in footer(answer("OpenAI", "gpt-4o-mini", 1000, 500))
    rates.remember("OpenAI", "http://127.0.0.1:9/v1", {})  # the same name served here: free
    assert measure(answer("OpenAI", "gpt-4o-mini", 1000, 500)).cost is None
    rates.remember("OpenAI", "https://api.openai.com/v1", {"gpt-4o-mini": {"input": 1.0, "output": 1.0}})
    assert measure(answer("OpenAI", "gpt-4o-mini", 1000, 500)).cost == pytest.approx(1500 / 1e6)  # the user's first
    for free in ("Pizzagpt", "Local"):  # a free site, the model in this process: never a price
        assert measure(answer(free, "gpt-4o-mini", 1000, 500)).cost is None
        assert "$" not in footer(answer(free, "gpt-4o-mini", 1000, 500))
    rates.remember("OpenAI", "https://api.openai.com/v1", {})


def test_a_g4f_class_shows_no_price():
    """gpt4free's free providers answer to paid models' names: the user's price (by model) is not theirs."""
    rates.remember("g4f:Custom", None, {"gpt-4o-mini": {"input": 1.0, "output": 1.0}})
    assert measure(answer("g4f:Custom", "gpt-4o-mini", 1000, 500)).cost is None
    assert measure(answer("OpenAI", "gpt-4o-mini", 1000, 500)).cost == pytest.approx(1500 / 1e6)  # ours: priced
    rates.remember("OpenAI", None, {})


def test_compact_and_money():
    assert [compact(n) for n in (999, 1234, 4096, 131072, 2_000_000)] == ["999", "1.2k", "4.1k", "131k", "2.0M"]
    assert [money(x) for x in (0.0, 0.00001, 0.0012, 0.31, 12.4)] == ["$0", "<$0.0001", "$0.0012", "$0.31", "$12.40"]


def test_a_summed_usage_is_priced_whole():
    rates.remember("OpenAI", "https://api.openai.com/v1", {"m": {"input": 1.0, "output": 2.0}})
    a = answer("OpenAI", "m", 100, 10)
    a.usage = Usage(100 + 300, 10 + 20)  # an agent's two requests, summed
    assert measure(a).cost == pytest.approx((400 * 1.0 + 30 * 2.0) / 1e6)
    rates.remember("OpenAI", "https://api.openai.com/v1", {})


def test_a_fallback_candidate_is_priced_where_it_was_sent(ip, protocol_server, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL")
    rates.remember("OpenAI", "https://api.openai.com/v1", {})  # an earlier cell used the real API
    url = f"{protocol_server.base_url}/v1"
    ip.run_line_magic("config", f"ChatConfig.provider_options = {{'OpenAI': {{'base_url': {url!r}, 'model': 'gpt-4o-mini'}}}}")
    ip.run_line_magic("config", "ChatConfig.fallback = ['OpenAI']")
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 1000, 500
    assert chat_cell(ip, "-p Fallback", "hi") is None  # a paid model's name, served here
    out = capsys.readouterr().out
    assert "OpenAI (gpt-4o-mini)" in out and "1000 in / 500 out tokens" in out and "$" not in out
    assert rates.endpoint_of("OpenAI") == url


def test_a_summed_usage_that_carries_the_last_requests_context_shows_that():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Summed(Usage):  # what an agent may send: the sum, and the last request's prompt + answer
        context_tokens: int | None = None

    a = answer("OpenAI", "m", 0, 0)
    a.usage = Summed(400, 30, context_tokens=320)
    assert measure(a).context == 320
    a.usage = Usage(400, 30)
    assert measure(a).context == 430


def test_budget_on_a_cell_and_new_is_not_spent_on_a_refused_prompt(ip, protocol_server, capsys):
    ip.run_line_magic("config", "ChatConfig.prices = {'test-model': {'input': 1000.0, 'output': 1000.0}}")
    assert chat_cell(ip, "-c kept", "hi") is None  # an exchange in the thread
    chat = get_chat(ip)
    error = chat_cell(ip, "-c kept --new --budget 0.01", "y" * 400)  # the cell's own budget: over it
    assert isinstance(error, UsageError) and "over the budget of $0.01" in str(error)
    assert chat.store.count(chat.notebook, "kept") == 1, "a refused cell does not archive the thread (--new)"
    assert chat_cell(ip, "-c kept --new --budget 0.01", "hi") is None  # the thread afresh: within the budget
    assert 1 <= sent(protocol_server)[-1]["max_tokens"] < 10
