"""``--map … --budget USD`` (issue 22): the estimate before sending, the stop once the answers' cost
reaches the budget (finished items kept), the resume with a new budget; against the protocol server."""

from __future__ import annotations

import pytest

from chat_shell import chat_cell, chat_shell
from ipyg4f.pricing import rates

PRICES = {"test-model": {"input": 2.0, "output": 8.0}}  # USD per million tokens: 500 in + 1000 out = $0.009


@pytest.fixture
def ip(tmp_path, monkeypatch, protocol_server):
    env = {"OPENAI_API_KEY": "sk-test-budget", "OPENAI_BASE_URL": f"{protocol_server.base_url}/v1"}
    with chat_shell(tmp_path, monkeypatch, "-p OpenAI -m test-model", env) as shell:
        shell.run_line_magic("config", f"ChatConfig.prices = {PRICES!r}")
        protocol_server.prompt_tokens, protocol_server.completion_tokens = 500, 1000
        protocol_server.echo = True
        shell.user_ns["items"] = [f"item {n}" for n in range(10)]
        yield shell
    rates.remember("OpenAI", "https://api.openai.com/v1", {})


def sent(server) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in server.requests if r.path == "/v1/chat/completions"]


def map_cell(ip, options: str):
    return chat_cell(ip, f"--map items -j 1 -o out {options}", "{item}")


def test_the_batch_stops_at_its_budget_and_a_new_budget_goes_on(ip, protocol_server, capsys):
    assert map_cell(ip, "--budget 0.02") is None
    out = capsys.readouterr().out
    assert "--map: 10 of 10 items to send, ≈" in out and "per million tokens out; budget $0.02" in out
    assert out.index("--map: 10 of 10") < out.index("3/10 answered")  # said before anything was sent
    assert sent(protocol_server) == ["item 0", "item 1", "item 2"]  # $0.009, $0.018, $0.027: stop
    assert "7 not run (stopped: the budget of $0.02 is spent ($0.03)" in out
    result = ip.user_ns["out"]
    assert list(result[:3]) == ["item 0", "item 1", "item 2"] and result[3:] == [None] * 7
    assert map_cell(ip, "--budget 0.04") is None  # resumed: the three answers come from the store
    out = capsys.readouterr().out
    assert "--map: 7 of 10 items to send (3 answered before)" in out
    assert sent(protocol_server)[3:] == ["item 3", "item 4", "item 5", "item 6", "item 7"]
    assert ip.user_ns["out"][:8] == [f"item {n}" for n in range(8)]
    assert "3 from the store, 5 sent" in out


def test_without_a_price_the_budget_counts_nothing_and_says_so(ip, protocol_server, capsys):
    ip.run_line_magic("config", "ChatConfig.prices = {}")
    assert map_cell(ip, "--budget 0.01") is None
    out = capsys.readouterr().out
    assert "no price known for this model, so nothing is counted against the budget" in out
    assert len(sent(protocol_server)) == 10


def test_the_estimate_counts_the_prompts(ip, protocol_server, capsys):
    ip.user_ns["items"] = ["x" * 4000] * 2 + ["y" * 4000]  # ~1000 tokens each; the repeated one is sent once
    assert map_cell(ip, "--budget 5 --max-tokens 100") is None
    out = capsys.readouterr().out
    assert "--map: 3 of 3 items to send, ≈3.0k tokens in ≈ $0.0060" in out  # 3 x 1004 tokens at $2/M
    assert "(at most $0.0024 at --max-tokens 100)" in out  # 3 x 100 tokens at $8/M


def test_chatconfig_budget_is_the_batch_default(ip, protocol_server, capsys):
    ip.run_line_magic("config", "ChatConfig.budget = 0.01")
    assert map_cell(ip, "") is None
    out = capsys.readouterr().out
    assert "budget $0.01" in out and sent(protocol_server) == ["item 0", "item 1"]
    ip.run_line_magic("config", "ChatConfig.budget = None")
