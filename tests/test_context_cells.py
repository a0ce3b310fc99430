"""``--with``, ``--error``, ``%chat fix``, ``--image`` and ``--dry-run`` in a real (terminal) IPython shell.

The scripted provider records the exact messages; the protocol server records
the exact request body an OpenAI-compatible vision model gets.
"""

from __future__ import annotations

import base64
import io
import sys

import pytest
from IPython.core.error import UsageError

from fakes import ScriptedProvider
from ipyg4f.chat import get_chat
from ipyg4f.providers import register, unregister
from ipyg4f.providers.openai_compat import OpenAICompatible
from test_commands import chat_cell, ip  # noqa: F401  (the shell fixture)
from test_context import Exploding

CONTEXT_HEAD = "<context>The user attached these from their Python session:\n"


def sent(n: int = -1) -> str:
    return ScriptedProvider.requests[n]["messages"][-1]["content"]


def test_with_attaches_typed_descriptions_before_the_prompt(ip, capsys):
    ip.user_ns.update(n=3, items=[1, 2])
    ScriptedProvider.enqueue(["fine"])
    assert chat_cell(ip, "--with n,items", "what are these?") is None
    assert sent() == (CONTEXT_HEAD
                      + '<attachment name="n" kind="int">\nint: 3\n</attachment>\n'
                      + '<attachment name="items" kind="list">\nlist of 2 items:\n  1\n  2\n</attachment>\n'
                      + "</context>\n\nwhat are these?")
    out = capsys.readouterr().out
    assert "[context sent: n (int, 6 characters); items (list, 24 characters)]" in out


def test_with_a_dataframe_and_nothing_unnamed_is_sent(ip):
    import pandas as pd
    ip.user_ns.update(df=pd.DataFrame({"price": [1.5, None]}), secret_token="do-not-send-me")
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, "--with df", "describe it") is None
    content = sent()
    assert '<attachment name="df" kind="DataFrame">' in content and "'price': float64, 1 null" in content
    assert "do-not-send-me" not in str(ScriptedProvider.requests[-1])
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, "", "no context this time") is None
    assert sent().endswith("no context this time") and "secret_token" not in str(ScriptedProvider.requests[-1])


def test_history_keeps_what_was_sent_and_a_rerun_re_evaluates(ip):
    chat = get_chat(ip)
    ip.user_ns["n"] = 1
    ScriptedProvider.enqueue(["one"])
    ip.run_cell("%%chat --with n\nwhat is n?", store_history=True, cell_id="cell-A")
    assert chat.store.get(chat.notebook, "default", "cell-A").context.count("int: 1") == 1
    ip.user_ns["n"] = 2
    ScriptedProvider.enqueue(["two"])
    ip.run_cell("%%chat --with n\nwhat is n?", store_history=True, cell_id="cell-A")
    assert "int: 2" in sent()
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert "int: 2" in stored.context and "int: 1" not in stored.context and stored.prompt == "what is n?"
    ScriptedProvider.enqueue(["ok"])
    ip.run_cell("%%chat\nand then?", store_history=True, cell_id="cell-B")
    first, answer, last = ScriptedProvider.requests[-1]["messages"]
    assert "int: 2" in first["content"] and first["content"].endswith("what is n?")
    assert (answer["content"], last["content"]) == ("two", "and then?")


@pytest.mark.parametrize("options, words", [
    ("--with thing", "thing: describing it raised ValueError: no repr for you (nothing was sent)"),
    ("--with thing.weights", "thing.weights: reading it raised RuntimeError: lazy load failed (nothing was sent)"),
    ("--with 'len(thing)'", "only names, attributes and indexes are evaluated"),
    ("--with undefined_name", "'undefined_name' is not defined"),
])
def test_an_attachment_that_fails_gives_a_short_message_and_sends_nothing(ip, capsys, options, words):
    ip.user_ns["thing"] = Exploding()
    error = chat_cell(ip, options, "hello")
    assert isinstance(error, UsageError) and words in str(error)
    assert "Traceback" not in capsys.readouterr().out
    chat = get_chat(ip)
    assert ScriptedProvider.requests == [] and chat.store.count(chat.notebook, "default") == 0


def test_the_budget_cuts_each_description(ip):
    get_chat(ip).config.context_budget = 200  # this shell's setting only (%config would outlive the test)
    ip.user_ns["long_text"] = "y" * 5000
    ScriptedProvider.enqueue(["ok"])
    assert chat_cell(ip, "--with long_text", "summarise") is None
    block = sent().split("</attachment>")[0].split('kind="str">\n')[1]
    assert len(block.rstrip("\n")) <= 200 and "[… cut here: 200 of 5,025 characters]" in block


def test_fix_after_a_zero_division_error_offers_the_corrected_code(ip, capsys):
    ip.run_cell("def ratio(a, b):\n    return a / b\n", store_history=True)
    assert isinstance(ip.run_cell("ratio(1, 0)", store_history=True).error_in_exec, ZeroDivisionError)
    ScriptedProvider.enqueue(["b is zero.\n\n```python\nratio(1, 2)\n```"])
    ip.run_line_magic("chat", "fix -f code")
    content = sent()
    assert content.startswith(CONTEXT_HEAD + '<attachment name="last error" kind="ZeroDivisionError">\n'
                                             "ZeroDivisionError: division by zero\nTraceback (your frames")
    assert "ratio(1, 0)" in content and "return a / b" in content
    assert "Source of the cell that raised" in content and "interactiveshell.py" not in content
    assert content.endswith("in one Python code block.")
    assert ip.rl_next_input == "ratio(1, 2)"  # the fix is offered as the next cell


def test_fix_after_a_syntax_error_sends_the_cells_source(ip):
    assert ip.run_cell("def broken(:\n    pass\n", store_history=True).error_before_exec is not None
    ScriptedProvider.enqueue(["a parameter name is missing"])
    ip.run_line_magic("chat", "fix")
    content = sent()
    assert '<attachment name="last error" kind="SyntaxError">\nSyntaxError: invalid syntax' in content
    assert "def broken(:" in content and "ipython-input" not in content


def test_fix_without_an_error_is_a_usage_error(ip, monkeypatch):
    monkeypatch.delattr(sys, "last_value", raising=False)
    with pytest.raises(UsageError, match="no error to attach"):
        ip.run_line_magic("chat", "fix")
    assert ScriptedProvider.requests == []


def _png() -> bytes:
    from PIL import Image
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), "blue").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_image_for_a_provider_without_images_is_refused_before_sending(ip, capsys):
    ip.user_ns["picture"] = _png()
    error = chat_cell(ip, "--image picture", "what is this?")
    assert isinstance(error, UsageError)
    assert str(error) == "Scripted does not take images; choose one that does, e.g. -p OpenAI (nothing was sent)"
    error = chat_cell(ip, "-p Local --image picture", "what is this?")
    assert isinstance(error, UsageError) and str(error).startswith("Local does not take images")
    assert ScriptedProvider.requests == []


class VisionPair(OpenAICompatible):
    """An OpenAI-compatible service where one model sees images and the other does not."""

    name = "VisionPair"
    base_url_env = None
    api_key_env = None
    needs_auth = False
    default_model = "text-1"
    vision_models = frozenset({"vision-1"})


@pytest.fixture
def vision(protocol_server, monkeypatch):
    monkeypatch.setattr(VisionPair, "url", protocol_server.base_url + "/v1")
    register(VisionPair)
    yield protocol_server
    unregister("VisionPair")


def test_a_vision_model_gets_the_image_as_a_data_url_part(ip, vision, capsys):
    png = _png()
    ip.user_ns.update(picture=png, n=7)
    assert chat_cell(ip, "-p VisionPair -m vision-1 --with n --image picture", "what is this?") is None
    [request] = [r for r in vision.requests if r.path.endswith("/chat/completions")]
    [user] = request.json["messages"]
    assert user["content"] == [
        {"type": "text", "text": CONTEXT_HEAD + '<attachment name="n" kind="int">\nint: 7\n</attachment>\n'
                                 f'<attachment name="picture" kind="image">\n[image: image/png, {len(png)} bytes]\n'
                                 "</attachment>\n</context>\n\nwhat is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
    ]
    assert "picture (image, image/png" in capsys.readouterr().out
    chat = get_chat(ip)
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert "[image: image/png" in stored.context and "base64" not in stored.context  # pixels are not kept


def test_a_model_without_vision_is_refused_and_nothing_reaches_the_server(ip, vision):
    ip.user_ns["picture"] = _png()
    error = chat_cell(ip, "-p VisionPair -m text-1 --image picture", "what is this?")
    assert isinstance(error, UsageError)
    assert str(error) == ("VisionPair model 'text-1' does not take images (models that do: vision-1); "
                          "choose one that does, e.g. -p OpenAI (nothing was sent)")
    assert vision.requests == []


def test_image_last_takes_the_most_recent_displayed_image(ip, vision):
    from IPython.display import Image, display

    png = _png()
    display(Image(data=png))  # what matplotlib's inline backend does with each figure
    assert chat_cell(ip, "-p VisionPair -m vision-1 --image last", "and this?") is None
    parts = vision.requests[-1].json["messages"][-1]["content"]
    assert parts[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(png).decode()
    assert '<attachment name="last image" kind="image">' in parts[0]["text"]


def test_dry_run_shows_the_body_and_sends_nothing(ip, vision, capsys):
    ip.user_ns["picture"] = _png()
    assert chat_cell(ip, "-p VisionPair -m vision-1 --image picture --dry-run", "what is this?") is None
    out = capsys.readouterr().out
    assert "not sent (--dry-run) to VisionPair" in out and '"type": "image_url"' in out
    assert "data:image/png;base64," in out and "characters)" in out
    chat = get_chat(ip)
    assert vision.requests == [] and chat.store.count(chat.notebook, "default") == 0
