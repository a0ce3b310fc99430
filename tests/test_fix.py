"""``%chat fix`` in a real (terminal) IPython shell: which error it finds, which thread it uses,
and when it offers a code cell.  The kernel test (test_kernel_fix.py) interrupts a real chat cell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from fakes import ScriptedProvider
from ipyg4f.chat import get_chat
from ipyg4f.commands import has_code
from test_commands import chat_cell, ip  # noqa: F401  (the shell fixture)


def fails(ip) -> None:
    ip.run_cell("def ratio(a, b):\n    return a / b\n", store_history=True)
    assert isinstance(ip.run_cell("ratio(1, 0)", store_history=True).error_in_exec, ZeroDivisionError)


def attached(n: int = -1) -> str:
    return ScriptedProvider.requests[n]["messages"][-1]["content"]


@pytest.mark.parametrize("after", [
    "raise KeyboardInterrupt",  # an interrupted cell of any kind
    "%chat nosuchcommand",  # a usage error
    "%%chat -p NoSuch\nhello",  # a chat cell's own mistake
])
def test_fix_finds_the_last_real_error_after_an_interrupt_or_a_usage_error(ip, after):
    fails(ip)
    assert ip.run_cell(after, store_history=True).success is False
    ScriptedProvider.enqueue(["b is zero."])
    ip.run_line_magic("chat", "fix")
    assert '<attachment name="last error" kind="ZeroDivisionError">' in attached()


def test_fix_finds_the_error_before_a_failed_chat_cell(ip):
    fails(ip)
    ScriptedProvider.enqueue([RuntimeError("the service fell over")])
    assert type(chat_cell(ip, "", "hello")).__name__ == "ChatFailed"
    ScriptedProvider.enqueue(["b is zero."])
    ip.run_line_magic("chat", "fix")
    assert "ZeroDivisionError: division by zero" in attached()


def test_a_later_error_wins(ip):
    fails(ip)
    assert isinstance(ip.run_cell("{}['missing']", store_history=True).error_in_exec, KeyError)
    ip.run_cell("raise KeyboardInterrupt", store_history=True)
    ScriptedProvider.enqueue(["no such key"])
    ip.run_line_magic("chat", "fix")
    assert '<attachment name="last error" kind="KeyError">' in attached()


def test_after_unload_nothing_is_remembered(ip, monkeypatch):
    import sys

    fails(ip)
    ip.run_line_magic("unload_ext", "ipyg4f")
    ip.run_line_magic("load_ext", "ipyg4f")
    ip.run_line_magic("chat", "use -p Scripted")
    ip.run_cell("raise KeyboardInterrupt", store_history=True)
    monkeypatch.setattr(sys, "last_value", KeyboardInterrupt())
    with pytest.raises(UsageError, match="no error to attach"):
        ip.run_line_magic("chat", "fix")


def test_fix_uses_a_thread_of_its_own_started_afresh(ip):
    for question in ("first question", "second question"):
        ScriptedProvider.enqueue(["an answer"])
        assert chat_cell(ip, "", question) is None
    fails(ip)
    ScriptedProvider.enqueue(["b is zero."])
    ip.run_line_magic("chat", "fix")
    messages = ScriptedProvider.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["user"], "the default thread is not dragged along"
    ScriptedProvider.enqueue(["b is zero again."])
    ip.run_line_magic("chat", "fix")
    assert [m["role"] for m in ScriptedProvider.requests[-1]["messages"]] == ["user"], "each fix starts afresh"
    ScriptedProvider.enqueue(["use ratio(1, 2)"])
    assert chat_cell(ip, "-c fix", "and how do I avoid it?") is None
    follow = ScriptedProvider.requests[-1]["messages"]
    assert [m["role"] for m in follow] == ["user", "assistant", "user"]
    assert follow[1]["content"] == "b is zero again."
    chat = get_chat(ip)
    assert chat.store.count(chat.notebook, "default") == 2, "the default thread is untouched"


def test_fix_with_c_uses_that_thread_as_it_is(ip):
    ScriptedProvider.enqueue(["we divide a by b"])
    assert chat_cell(ip, "-c maths", "how does ratio work?") is None
    fails(ip)
    ScriptedProvider.enqueue(["b is zero."])
    ip.run_line_magic("chat", "fix -c maths")
    messages = ScriptedProvider.requests[-1]["messages"]
    assert [m["content"] for m in messages[:2]] == ["how does ratio work?", "we divide a by b"]
    chat = get_chat(ip)
    assert chat.store.count(chat.notebook, "maths") == 2


def test_fix_f_code_offers_a_cell_only_when_the_answer_has_code(ip, capsys):
    fails(ip)
    ip.rl_next_input = None
    ScriptedProvider.enqueue(["You divided by zero: b must not be 0 when you call ratio."])
    ip.run_line_magic("chat", "fix -f code")
    assert ip.rl_next_input is None, "prose is not offered as a code cell"
    assert "You divided by zero" in capsys.readouterr().out, "the explanation is shown"
    ScriptedProvider.enqueue(["b is zero.\n\n```python\nratio(1, 2)\n```"])
    ip.run_line_magic("chat", "fix -f code")
    assert ip.rl_next_input == "ratio(1, 2)"
    assert "b is zero." in capsys.readouterr().out, "the explanation is shown, not only the code"


def test_a_code_cell_answered_in_prose_offers_no_cell(ip):
    ip.rl_next_input = None
    ScriptedProvider.enqueue(["I cannot write that without knowing the column names."])
    assert chat_cell(ip, "-f code", "write the code") is None
    assert ip.rl_next_input is None
    ScriptedProvider.enqueue(["df.groupby('city').size()"])
    assert chat_cell(ip, "-f code", "write the code again") is None
    assert ip.rl_next_input == "df.groupby('city').size()", "bare code (no fence) is still code"


@pytest.mark.parametrize("text, code", [
    ("```python\nx = 1\n```", True),
    ("import pandas as pd\ndf = pd.read_csv('a.csv')", True),
    ("print(1)", True),
    ("You divided by zero.", False),
    ("Yes", False),
    ("42", False),
    ("The fix: pass b != 0, e.g. ratio(1, 2).", False),
    ("", False),
])
def test_has_code(text, code):
    assert has_code(text) is code

