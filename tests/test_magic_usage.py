"""``-h/--help`` prints the usage, and a mistyped option, command or provider gets "did you mean …?"
(a real terminal IPython shell; nothing is sent in any of these)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from IPython.core.error import UsageError

from fakes import ScriptedProvider
from test_commands import chat_cell, ip  # noqa: F401  (the shell fixture)


@pytest.mark.parametrize("line", ["--help", "-h", "-p OpenAI --help"])
def test_chat_help_prints_the_usage_of_every_option(ip, capsys, line):
    assert ip.run_line_magic("chat", line) is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %chat [-p PROVIDER] [-m MODEL]"), out[:200]
    for option in ("--temperature", "--with", "--map", "--dry-run", "--base-url"):
        assert option in out
    assert "::" not in out.splitlines()[0]
    assert ScriptedProvider.requests == []


@pytest.mark.parametrize("line", ["-h", "--help", "-p Scripted --help"])
def test_cell_help_prints_the_usage_and_sends_nothing(ip, capsys, line):
    assert chat_cell(ip, line, "What is a quartile?") is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %%chat [-p PROVIDER]") and "--max-tokens N" in out
    continuation = out.splitlines()[1]
    assert continuation.index("[") == out.index("[-p"), "continuation lines align under the first option"
    assert ScriptedProvider.requests == []


@pytest.mark.parametrize("command, usage", [
    ("fix", "usage: %chat fix [-f code] [-c NAME]"),
    ("providers", "usage: %chat providers [--check] [-p NAME]"),
    ("history", "usage: %chat history [-c NAME] [--last N]"),
    ("pull", "usage: %chat pull OWNER/NAME [FILE]"),
])
def test_a_command_with_help_prints_its_own_usage(ip, capsys, command, usage):
    assert ip.run_line_magic("chat", f"{command} --help") is None
    out = capsys.readouterr().out
    assert out.startswith(usage) and "\n\n" in out and "%chat --help lists every option" in out
    assert max(len(line) for line in out.splitlines()) <= 88
    assert ScriptedProvider.requests == []


def test_every_command_has_help():
    from ipyg4f.magics import SUBCOMMAND_HELP, SUBCOMMANDS

    assert set(SUBCOMMAND_HELP) == set(SUBCOMMANDS)


@pytest.mark.parametrize("options, hint", [
    ("--temprature 0.2", "did you mean --temperature?"),
    ("--temprature=0.2", "did you mean --temperature?"),
    ("--max-token 5", None),  # an abbreviation argparse accepts: no error at all
    ("--dryrun", "did you mean --dry-run?"),
    ("--sistem 'Be brief.'", "did you mean --system?"),
])
def test_a_mistyped_option_gets_did_you_mean(ip, options, hint):
    ScriptedProvider.enqueue(["fine"])
    error = chat_cell(ip, options, "hello")
    if hint is None:
        assert error is None
        return
    assert isinstance(error, UsageError) and str(error).startswith("unrecognized arguments: ")
    assert str(error).endswith(f"({hint})"), str(error)
    assert ScriptedProvider.requests == []


def test_an_unknown_word_is_not_guessed_at(ip):
    error = chat_cell(ip, "--zzzzqqq", "hello")
    assert isinstance(error, UsageError) and "did you mean" not in str(error)


def test_a_mistyped_command_gets_did_you_mean(ip):
    with pytest.raises(UsageError, match=r"unknown %chat command 'provider' \(did you mean 'providers'\?\)"):
        ip.run_line_magic("chat", "provider")
    with pytest.raises(UsageError, match=r"unknown %chat command 'hystory' \(did you mean 'history'\?\)"):
        ip.run_line_magic("chat", "hystory")


def test_a_mistyped_provider_gets_did_you_mean_and_g4f_is_not_called_missing(ip):
    assert importlib.util.find_spec("g4f") is not None, "g4f is pinned in the test extra"
    error = chat_cell(ip, "-p OpenAl", "hello")
    assert isinstance(error, UsageError)
    message = str(error)
    assert message.startswith("unknown provider 'OpenAl' (did you mean 'OpenAI'?); known providers: ")
    assert "when g4f is installed" not in message and "pip install g4f" not in message
    assert message.endswith("(and gpt4free's as g4f:Name)")
    error = chat_cell(ip, "-p Olama", "hello")
    assert "(did you mean 'Ollama'?)" in str(error)
    error = chat_cell(ip, "-p DeepInfr", "hello")  # one of gpt4free's, named the way -p takes it
    assert "(did you mean 'g4f:DeepInfra'?)" in str(error)
    assert ScriptedProvider.requests == []


def test_without_g4f_the_message_says_how_to_get_it(monkeypatch):
    from ipyg4f.errors import UnknownProviderError
    from ipyg4f.providers import get_provider

    for name in ("g4f", "g4f.Provider"):
        monkeypatch.setitem(sys.modules, name, None)  # import g4f raises ImportError
    with pytest.raises(UnknownProviderError) as raised:
        get_provider("OpenAl")
    message = str(raised.value)
    assert "(did you mean 'OpenAI'?)" in message and "once it is installed: pip install g4f" in message
