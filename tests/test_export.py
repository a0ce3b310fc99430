"""``%chat export`` / ``%chat import`` (issue 22): Markdown for reading, OpenAI messages that come back
as the same thread; in a real (terminal) IPython shell."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

from chat_shell import chat_shell
from fakes import ScriptedProvider
from ipyg4f.chat import get_chat
from ipyg4f.events import Reasoning, Usage
from ipyg4f.export import exchanges_from

TOOL_MESSAGES = [
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "run_python", "arguments": '{"code": "1 + 1"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "2"},
]
STEPS = [{"request": 1, "call_id": "call_1", "tool": "run_python", "kind": "python", "arguments": '{"code": "1 + 1"}',
          "approved": True, "asked": True, "seconds": 0.01, "result": "2", "error": False}]
USAGE = {"input": 1500, "output": 500, "cost": 0.007, "context": 2000, "window": 4096}
FIELDS = ("prompt", "answer", "provider", "model", "status", "error", "reasoning", "context", "variants")


@pytest.fixture
def ip(tmp_path, monkeypatch, scripted):
    monkeypatch.chdir(tmp_path)
    with chat_shell(tmp_path, monkeypatch, "-p Scripted") as shell:
        yield shell


def a_thread(ip, name: str = "work") -> list:
    """Three exchanges: one asked in a cell (thinking, usage), one of the agent (tool steps), one interrupted."""
    chat = get_chat(ip)
    ScriptedProvider.enqueue([Reasoning("Two and two… "), "It is **4**.\n\n```python\nprint(2 + 2)\n```",
                              Usage(12, 9)])
    result = ip.run_cell(f"%%chat -c {name}\nWhat is 2 + 2?")
    assert result.error_in_exec is None
    chat.store.record(chat.notebook, name, "cell-agent", "Compute 1 + 1", "1 + 1 is 2.", provider="OpenAI",
                      model="gpt-4o-mini", context="df: a DataFrame (3 rows)", tool_messages=json.dumps(TOOL_MESSAGES),
                      steps=json.dumps(STEPS), usage=json.dumps(USAGE), reasoning="use the tool")
    chat.store.record(chat.notebook, name, "cell-cut", "Tell a long story", "Once upon a", provider="OpenAI",
                      model="gpt-4o-mini", status="interrupted")
    chat.store.record(chat.notebook, name, "cell-cmp", "Compare these", "", provider="Compare", model="x",
                      variants=json.dumps([{"provider": "OpenAI", "model": "m", "answer": "one"},
                                           {"provider": "Local", "model": "q", "answer": "two"}]))
    return chat.store.exchanges(chat.notebook, name)


def test_json_round_trip_gives_the_thread_back(ip, tmp_path, capsys, monkeypatch):
    original = a_thread(ip)
    assert original[0].reasoning == "Two and two… " and json.loads(original[0].usage)["output"] == 9
    ip.run_line_magic("chat", "export -c work thread.json")  # options before the path, as argparse allows
    assert "4 exchanges written to thread.json" in capsys.readouterr().out
    data = json.loads((tmp_path / "thread.json").read_text())
    roles = [m["role"] for m in data["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "tool", "assistant", "user", "assistant", "user"]
    assert data["messages"][3]["tool_calls"][0]["function"]["name"] == "run_python"  # OpenAI's own format
    assert data["messages"][2]["content"] == "df: a DataFrame (3 rows)\n\nCompute 1 + 1"  # as it was sent
    assert data["messages"][-2]["content"].endswith("[incomplete answer: interrupted]")
    ip.run_line_magic("chat", "import thread.json -c copy")
    assert "4 exchanges imported from thread.json" in capsys.readouterr().out
    chat = get_chat(ip)
    copy = chat.store.exchanges(chat.notebook, "copy")
    for before, after in zip(original, copy, strict=True):
        assert {f: getattr(after, f) for f in FIELDS} == {f: getattr(before, f) for f in FIELDS}
        assert (after.tool_exchange(), after.step_list(), after.usage_dict()) == \
               (before.tool_exchange(), before.step_list(), before.usage_dict())
    # the imported thread is context again, tool turns included for a provider that takes tools
    ScriptedProvider.enqueue(["next"])
    monkeypatch.setattr(ScriptedProvider, "supports_tools", True)
    assert ip.run_cell("%%chat -c copy\nAnd then?").error_in_exec is None
    sent = ScriptedProvider.requests[-1]["messages"]
    assert [m["role"] for m in sent[:6]] == ["user", "assistant", "user", "assistant", "tool", "assistant"]


def test_markdown_has_prompts_answers_and_collapsed_thinking_steps_and_footers(ip, tmp_path):
    a_thread(ip)
    ip.run_line_magic("chat", "export thread.md -c work")
    text = (tmp_path / "thread.md").read_text()
    assert "# Thread `work`" in text and "## 1. You\n\nWhat is 2 + 2?" in text
    assert "It is **4**." in text and "```python\nprint(2 + 2)\n```" in text
    assert "<details><summary>thinking</summary>\n\nTwo and two…" in text
    assert "<details><summary>tool steps (1)</summary>" in text and "1. `run_python` ran (asked), 0.01 s" in text
    assert '```json\n{"code": "1 + 1"}\n```' in text
    assert "<details><summary>context sent with the prompt</summary>" in text
    assert "OpenAI (gpt-4o-mini) · 1500 in / 500 out tokens · $0.0070 · context 2.0k/4.1k" in text
    assert "Scripted" in text and "12 in / 9 out tokens" in text
    assert "interrupted</sub>" in text and "Once upon a" in text and "[incomplete answer" not in text


def test_a_plain_list_of_openai_messages_imports(ip, tmp_path, capsys):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": "and this?"}, {"type": "image_url"}]},
                *TOOL_MESSAGES, {"role": "assistant", "content": "2"}]
    (tmp_path / "plain.json").write_text(json.dumps(messages))
    ip.run_line_magic("chat", "import plain.json")
    assert "(1 system message left out)" in capsys.readouterr().out
    chat = get_chat(ip)
    [first, second] = chat.store.exchanges(chat.notebook, "default")
    assert (first.prompt, first.answer, second.prompt, second.answer) == ("hi", "hello", "and this?", "2")
    assert second.tool_exchange() == TOOL_MESSAGES


@pytest.mark.parametrize("line, words", [
    ("export", "%chat export needs a file"),
    ("export thread.txt -c work", "must end in .md or .json"),
    ("import thread.md", "export .json to import it again"),
    ("import missing.json", "cannot read missing.json"),
    ("import bad.json", "bad.json is not JSON"),
    ("import odd.json", "expected OpenAI messages"),
    ("export t.md -c nothing-here", "thread 'nothing-here' has no exchanges"),
    ("export no/such/dir/t.md -c work", "cannot write no/such/dir/t.md"),
])
def test_mistakes_are_usage_errors(ip, tmp_path, line, words):
    a_thread(ip)
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "odd.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UsageError, match=words.replace(".", r"\.")):
        ip.run_line_magic("chat", line)


def test_messages_before_any_user_message_are_refused():
    with pytest.raises(ValueError, match="before the first user message"):
        exchanges_from([{"role": "assistant", "content": "hi"}])


def test_cost_table_per_thread_and_for_the_notebook(ip, capsys):
    a_thread(ip)
    chat = get_chat(ip)
    chat.store.record(chat.notebook, "other", "cell-o", "q", "a", provider="OpenAI", model="gpt-4o-mini",
                      usage=json.dumps({"input": 100, "output": 50, "cost": 0.003}))
    capsys.readouterr()
    ip.run_line_magic("chat", "cost -c work")
    out = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "provider model exchanges tokens in tokens out cost" in lines
    assert "Scripted scripted-1 1 12 9 —" in lines  # no price for a model nobody priced
    assert "OpenAI gpt-4o-mini 2 1,500 (+1 unknown) 500 (+1 unknown) $0.0070 (1 unpriced)" in lines
    assert "OpenAI m 1 ? ? —" in lines and "Local q 1 ? ? —" in lines  # the compared cell's columns
    assert "total 5 1,512 (+3 unknown) 509 (+3 unknown) $0.0070 (4 unpriced)" in lines
    ip.run_line_magic("chat", "cost --all")
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "other OpenAI gpt-4o-mini 1 100 50 $0.0030" in lines
    assert "total 6 1,612 (+3 unknown) 559 (+3 unknown) $0.01 (4 unpriced)" in lines
    ip.run_line_magic("chat", "cost -c empty")
    assert "thread 'empty': no exchanges yet" in capsys.readouterr().out


def test_cost_counts_each_column_of_a_compared_cell(ip, capsys):
    chat = get_chat(ip)
    variants = [{"provider": "OpenAI", "model": "gpt-4o-mini", "answer": "a", "usage": {"input": 10, "output": 5,
                                                                                         "cost": 0.002}},
                {"provider": "Local", "model": "qwen2.5-coder-0.5b", "answer": "b", "usage": {"input": 12, "output": 6}}]
    chat.store.record(chat.notebook, "cmp", "cell-c", "q", "", provider="Compare", model="x",
                      variants=json.dumps(variants))
    capsys.readouterr()
    ip.run_line_magic("chat", "cost -c cmp")
    lines = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]
    assert "OpenAI gpt-4o-mini 1 10 5 $0.0020" in lines and "Local qwen2.5-coder-0.5b 1 12 6 —" in lines
    assert not any(line.startswith("Compare") for line in lines)
