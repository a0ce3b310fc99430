"""The chat panel, driven in-process: ``Button.click()`` and widget state against the
local protocol server, inside pytest's running asyncio loop (like a kernel's).

Nothing here sleeps to synchronise: tests await the exchange's task, or an
event set by a trait observer, each with a timeout.
"""

from __future__ import annotations

import asyncio
import threading
import time
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from ipyg4f import commands
from ipyg4f.chat import Chat
from ipyg4f.config import ChatConfig
from ipyg4f.providers import AsyncGeneratorProvider, FinishReason, provider_names, register, unregister
from ipyg4f.panel import ChatPanel

TIMEOUT = 10.0


@pytest.fixture
def chat(tmp_path, monkeypatch, protocol_server):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{protocol_server.base_url}/v1")
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    c = Chat(None, ChatConfig(provider="OpenAI", history_path=str(tmp_path / "history.sqlite3")))
    yield c
    c.close()


@pytest.fixture
async def make_panel(chat):
    panels = []

    def make(**kwargs):
        panel = ChatPanel(chat=chat, **kwargs)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
    for panel in panels:
        await panel.join(timeout=TIMEOUT)


@pytest.fixture
async def panel(make_panel):
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)  # the model list of the OpenAI-compatible default
    return panel


async def until(widget, name, predicate, timeout=TIMEOUT):
    """Wait (without polling) until ``predicate(widget.<name>)`` holds; the change may come from any thread."""
    event = threading.Event()

    def check(change):
        if predicate(change["new"]):
            event.set()

    widget.observe(check, name)
    try:
        if not predicate(getattr(widget, name)):
            assert await asyncio.to_thread(event.wait, timeout), f"{name} never matched"
    finally:
        widget.unobserve(check, name)


async def ended(*exchanges, timeout=TIMEOUT):
    """Wait until each exchange's run (and its recording) is over."""
    for exchange in exchanges:
        assert await asyncio.to_thread(exchange.wait, timeout), "the answer did not end in time"


def status_text(panel) -> str:
    return panel.status.value


def values_of(widget) -> list[str]:
    seen: list[str] = []
    widget.observe(lambda change: seen.append(change["new"]), "value")
    return seen


# --- choosing provider and model -----------------------------------------------------------

async def test_every_provider_is_listed_and_the_unusable_ones_are_marked(panel):
    values = [value for _, value in panel.provider.options]
    assert values == provider_names()
    labels = dict((value, label) for label, value in panel.provider.options)
    assert labels["Acytoo"] == "Acytoo — not working"   # listed, not hidden
    assert labels["Pizzagpt"] == "Pizzagpt"
    assert panel.provider.value == "OpenAI"


async def test_models_of_an_openai_compatible_provider_are_fetched_without_blocking(
        make_panel, protocol_server):
    protocol_server.models = ["gpt-4o-mini", "served-a", "served-b"]
    protocol_server.fault, protocol_server.fault_path = "stall", "/v1/models"  # the list is slow to come
    panel = make_panel()
    # the dropdown is usable at once, with the provider's default; the fetch runs in the background
    assert await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini"]
    protocol_server.fault = None
    protocol_server.release_stall()
    await panel.join(timeout=TIMEOUT)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini", "served-a", "served-b"]
    assert "/v1/models" in protocol_server.paths()

    panel.provider.value = "ChatGptt"  # a fixed model list: shown at once, nothing fetched
    assert [v for _, v in panel.model.options] == ["gpt-4o", "gpt-4", "gpt-4o-mini"]
    assert panel.model.value == "gpt-4o"
    assert protocol_server.paths().count("/v1/models") == 1

    panel.model.value = "gpt-4"
    panel.provider.value = "OpenAI"
    await panel.join(timeout=TIMEOUT)
    assert protocol_server.paths().count("/v1/models") == 2
    assert panel.model.value == "gpt-4o-mini"


async def test_a_failing_model_list_is_said_in_the_status_line(make_panel, protocol_server):
    protocol_server.fault = "http500"
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)
    assert "could not list the models of OpenAI" in status_text(panel)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini"]  # the default stays usable


async def test_a_provider_that_is_not_set_up_is_marked_and_not_asked(make_panel, protocol_server,
                                                                      monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL")  # no key, no base URL: asking would only fail
    panel = make_panel()
    labels = {value: label for label, value in panel.provider.options}
    assert labels["OpenAI"] == "OpenAI — not set up"
    assert panel.refresh_models() is None

    monkeypatch.setenv("OPENAI_BASE_URL", f"{protocol_server.base_url}/v1")
    panel.refresh.click()  # re-reads the providers, then fetches the models
    await panel.join(timeout=TIMEOUT)
    labels = {value: label for label, value in panel.provider.options}
    assert labels["OpenAI"] == "OpenAI" and panel.provider.value == "OpenAI"
    assert protocol_server.paths() == ["/v1/models"]
    assert "test-model" in [v for _, v in panel.model.options]


async def test_the_panel_choice_becomes_the_default_of_later_cells(panel, chat):
    panel.provider.value = "AI365VIP"
    assert (chat.config.provider, chat.config.model) == ("AI365VIP", "gpt-3.5-turbo")
    panel.model.value = "gpt-4o"
    assert chat.config.model == "gpt-4o"
    cls, model = chat.resolve(None, None)  # what a %%chat cell without -p/-m uses
    assert (cls.name, model) == ("AI365VIP", "gpt-4o")


async def test_chat_use_is_reflected_in_the_panel(panel, chat, capsys):
    commands.cmd_use(chat, SimpleNamespace(provider="chatgptt", model="gpt-4"))
    assert (panel.provider.value, panel.model.value) == ("ChatGptt", "gpt-4")
    chat.config.model = "gpt-4o-mini"  # %config ChatConfig.model = ...
    assert panel.model.value == "gpt-4o-mini"
    chat.config.provider = "OpenAI"
    chat.config.model = "my-own-model"  # not in any list: added, not refused
    await panel.join(timeout=TIMEOUT)
    assert (panel.provider.value, panel.model.value) == ("OpenAI", "my-own-model")
    assert "my-own-model" in [v for _, v in panel.model.options]


# --- sending and streaming ------------------------------------------------------------------

async def test_send_streams_into_the_transcript_and_ends_as_rendered_markdown(panel, protocol_server, chat):
    protocol_server.chunks = ["# Title\n\n", "Some ", "**bold** ", "text ", "and ", "`code`", "."]
    protocol_server.chunk_delay = 0.08
    panel.system.value = "Be brief."
    panel.use_temperature.value = True
    panel.temperature.value = 0.3
    panel.prompt.value = "Say something"
    panel.send.click()
    exchange = panel.current
    assert exchange is not None and exchange.status == "waiting"
    assert panel.send.disabled and not panel.stop.disabled
    assert panel.prompt.value == ""
    seen = values_of(exchange.view)
    await ended(exchange)

    partial = [v for v in seen if 'data-status="streaming"' in v]
    assert len(set(partial)) >= 3, partial  # the answer grew in front of the user
    final = exchange.view.value
    assert 'data-status="ok"' in final
    assert "<h1>Title</h1>" in final and "<strong>bold</strong>" in final and "<code>code</code>" in final
    assert "Say something" in final
    assert "answered in" in status_text(panel) and "chunks" in status_text(panel)
    assert not panel.send.disabled and panel.stop.disabled and panel.current is None

    body = protocol_server.requests[-1].json
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Say something"}]
    assert body["temperature"] == pytest.approx(0.3) and body["model"] == "gpt-4o-mini"


async def test_frontend_updates_are_throttled(panel, protocol_server, chat):
    chat.config.updates_per_second = 10
    protocol_server.chunks = [f"w{i} " for i in range(300)]
    panel.prompt.value = "many chunks"
    panel.send.click()
    exchange = panel.current
    updates = values_of(exchange.view)
    started = time.monotonic()
    await ended(exchange)
    elapsed = time.monotonic() - started
    assert exchange.answer.chunks == 300
    assert len(updates) <= 10 * elapsed + 3, (len(updates), elapsed)
    assert "w299" in exchange.view.value


def test_the_answer_keeps_streaming_while_the_kernel_thread_is_busy(chat, protocol_server):
    """Send returns at once; the answer then grows while this thread never returns to any loop
    (as in a kernel running a long cell: ``time.sleep(20)``, a training loop)."""
    protocol_server.chunks = [f"piece{i} " for i in range(6)]
    protocol_server.chunk_delay = 0.05
    panel = ChatPanel(chat=chat)
    try:
        panel.prompt.value = "take your time"
        started = time.monotonic()
        panel.send.click()
        assert time.monotonic() - started < 0.2
        grown = threading.Event()
        panel.current.view.observe(lambda change: "piece5" in change["new"] and grown.set(), "value")
        assert grown.wait(TIMEOUT)  # this thread is blocked here; the panel streams regardless
        assert panel.wait(TIMEOUT) and panel.current is None
    finally:
        panel.close()


async def test_stop_cancels_quickly_and_keeps_the_partial_answer(panel, protocol_server, chat):
    protocol_server.chunks = ["first ", "second ", "third ", "never ", "shown"]
    protocol_server.fault, protocol_server.fault_after = "stall", 3
    protocol_server.fault_path = "/v1/chat/completions"  # the model list still answers
    panel.prompt.value = "a slow one"
    panel.send.click()
    exchange = panel.current
    await until(exchange.view, "value", lambda v: "third" in v)
    await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    started = time.monotonic()
    panel.stop.click()
    await ended(exchange)
    assert time.monotonic() - started < 1.0
    assert exchange.answer.status == "interrupted"
    assert exchange.answer.text == "first second third "
    assert 'data-status="interrupted"' in exchange.view.value and "stopped" in exchange.view.value
    assert "stopped after" in status_text(panel) and "partial answer kept" in status_text(panel)
    assert not panel.send.disabled and panel.stop.disabled
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert (stored.status, stored.answer) == ("interrupted", "first second third ")


@pytest.mark.parametrize("fault, words", [
    ("http500", ["OpenAI failed: HTTP 500", "The server had an error", "try:"]),
    ("http401", ["not authorised", "try: check the API key"]),
    ("sse_error_event", ["reported an error", "The model crashed"]),
])
async def test_errors_appear_in_plain_words_in_the_status_line(panel, protocol_server, fault, words):
    protocol_server.fault, protocol_server.fault_after = fault, 2
    panel.prompt.value = "fail please"
    panel.send.click()
    exchange = panel.current
    await ended(exchange)
    assert exchange.answer.status == "error"
    text = status_text(panel)
    for word in words:
        assert word in text, text
    assert "Traceback" not in text
    assert 'data-status="error"' in exchange.view.value
    assert not panel.send.disabled


async def test_an_unknown_model_is_refused_before_sending(panel, chat):
    panel.provider.value = "Pizzagpt"
    chat.config.model = "no-such-model"  # shown in the dropdown, refused by the provider
    panel.prompt.value = "hello"
    panel.send.click()
    assert panel.current is None
    assert "cannot send" in status_text(panel) and "no-such-model" in status_text(panel)
    assert panel.prompt.value == "hello"  # kept to send again


async def test_an_empty_prompt_is_not_sent(panel, protocol_server):
    panel.prompt.value = "   "
    panel.send.click()
    assert panel.current is None and "write a prompt first" in status_text(panel)
    assert "/v1/chat/completions" not in protocol_server.paths()


# --- history shared with %%chat -------------------------------------------------------------

async def test_history_is_shared_with_the_magic(make_panel, protocol_server, chat):
    chat.store.record(chat.notebook, "default", "cell-1", "What is 2+2?", "It is **4**.",
                      provider="OpenAICompatible", model="gpt-4o-mini")
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)
    [earlier] = panel.transcript.children
    assert "What is 2+2?" in earlier.value and "<strong>4</strong>" in earlier.value

    protocol_server.answer = "Then 5."
    panel.prompt.value = "And 2+3?"
    panel.send.click()
    await ended(panel.current)
    messages = protocol_server.requests[-1].json["messages"]
    assert messages == [{"role": "user", "content": "What is 2+2?"},
                        {"role": "assistant", "content": "It is **4**."},
                        {"role": "user", "content": "And 2+3?"}]
    first, second = chat.store.exchanges(chat.notebook, "default")
    assert first.cell_id == "cell-1"
    assert second.cell_id.startswith("panel-") and (second.prompt, second.answer) == ("And 2+3?", "Then 5.")
    assert len(panel.transcript.children) == 2

    # a %%chat cell of the same thread sees the panel's exchange as context
    request, _ = chat.request("next", cell_id="cell-2")
    assert {"role": "assistant", "content": "Then 5."} in request.messages


async def test_threads_can_be_switched_and_reset(make_panel, protocol_server, chat):
    chat.store.record(chat.notebook, "work", "cell-9", "work question", "work answer")
    panel = make_panel()
    assert "work" in panel.thread.options
    panel.thread.value = "work"
    assert ["work question" in v.value for v in panel.transcript.children] == [True]

    panel.prompt.value = "more work"
    panel.send.click()
    await ended(panel.current)
    assert [e.thread for e in chat.store.exchanges(chat.notebook, "work")] == ["work", "work"]
    assert chat.store.exchanges(chat.notebook, "default") == []

    panel.reset.click()
    assert panel.transcript.children == ()
    assert chat.store.exchanges(chat.notebook, "work") == []
    assert "reset (2 exchanges archived)" in status_text(panel)


# --- untrusted answers ----------------------------------------------------------------------

XSS = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
       '[click](javascript:window.__xss=3) <a href="javascript:alert(1)">a</a> '
       '<svg onload=alert(1)> <iframe src="javascript:alert(1)"></iframe>')


def parse_tags(markup: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element a browser would build from ``markup``, with its attributes."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Parser().feed(markup)
    return found


async def test_an_xss_answer_is_sanitised_while_streaming_and_at_the_end(panel, protocol_server):
    protocol_server.chunks = [XSS[:40], XSS[40:90], XSS[90:]]
    protocol_server.chunk_delay = 0.06
    panel.prompt.value = "<b>my own prompt</b> is escaped too"
    panel.send.click()
    exchange = panel.current
    seen = values_of(exchange.view)
    await ended(exchange)
    assert exchange.answer.text == XSS
    for value in [*seen, exchange.view.value]:
        tags = parse_tags(value)
        assert not {"img", "script", "svg", "iframe"} & {tag for tag, _ in tags}, value
        assert "&lt;b&gt;my own prompt&lt;/b&gt;" in value
        for tag, attrs in tags:
            for name, attr in attrs:
                assert not name.startswith("on"), (tag, name, value)
                assert not (attr or "").strip().lower().startswith("javascript:"), (tag, name, value)
    assert "&lt;img src=x onerror=" in exchange.view.value  # shown as text, not run


# --- two panels at once ---------------------------------------------------------------------

class Echo(AsyncGeneratorProvider):
    """Echoes the prompt word by word, paced, so two streams overlap."""

    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        for word in messages[-1]["content"].split():
            await asyncio.sleep(0.02)
            yield word + " "
        yield FinishReason("stop")


@pytest.fixture
def echo():
    register(Echo, "Echo")
    yield Echo
    unregister("Echo")


async def test_two_panels_stream_at_once_without_mixing(make_panel, echo, chat):
    one, two = make_panel(), make_panel()
    for panel, word in ((one, "apple"), (two, "pear")):
        panel.provider.value = "Echo"
        panel.prompt.value = " ".join([word] * 12)
        panel.send.click()
    a, b = one.current, two.current
    both_streaming = threading.Event()

    def check(_):
        if a.status == "streaming" and b.status == "streaming":
            both_streaming.set()

    a.view.observe(check, "value")
    assert await asyncio.to_thread(both_streaming.wait, TIMEOUT)
    await ended(a, b)
    assert a.answer.text.split() == ["apple"] * 12 and b.answer.text.split() == ["pear"] * 12
    assert "pear" not in a.view.value and "apple" not in b.view.value
    assert {e.prompt for e in chat.store.exchanges(chat.notebook, "default")} == {
        " ".join(["apple"] * 12), " ".join(["pear"] * 12)}


async def test_closing_the_panel_stops_its_stream_and_its_observers(make_panel, protocol_server, chat):
    panel = make_panel()
    protocol_server.fault, protocol_server.fault_after = "stall", 1
    protocol_server.fault_path = "/v1/chat/completions"
    panel.prompt.value = "hang"
    panel.send.click()
    exchange = panel.current
    await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    panel.close()
    await ended(exchange)
    assert exchange.answer.status == "interrupted"
    chat.config.provider = "Pizzagpt"  # no longer observed: nothing happens to a closed panel
    assert panel.provider.value == "OpenAI"


def test_the_panel_is_importable_as_documented():
    import ipyg4f

    assert ipyg4f.ChatPanel is ChatPanel


async def test_clearing_the_default_provider_shows_what_cells_will_use(panel, chat):
    chat.config.provider = ""  # %config ChatConfig.provider = ""
    assert panel.provider.value == chat.provider_setting() != "OpenAI"


async def test_thinking_streams_open_then_closes_when_the_answer_starts(make_panel, chat):
    from fakes import Gate, ScriptedProvider
    from ipyg4f.events import Reasoning, Usage

    ScriptedProvider.reset()
    register(ScriptedProvider, "Scripted")
    try:
        gate = Gate()
        ScriptedProvider.enqueue([Reasoning("weighing "), Reasoning("options"), gate, "The answer.",
                                  Usage(12, 3), FinishReason("stop")])
        panel = make_panel()
        panel.provider.value = "Scripted"
        panel.prompt.value = "think first"
        panel.send.click()
        exchange = panel.current
        await until(exchange.view, "value", lambda v: "options" in v)
        assert '<details class="ipyg4f-thinking" open' in exchange.view.value  # all there is so far
        assert "is thinking" in status_text(panel)
        gate.open.set()
        await ended(exchange)
        final = exchange.view.value
        assert '<details class="ipyg4f-thinking" style' in final and "weighing options" in final
        assert final.index("ipyg4f-thinking") < final.index("The answer.")
        assert "12 in / 3 out tokens" in final and "Scripted (scripted-1)" in final  # the footer
        [stored] = chat.store.exchanges(chat.notebook, "default")
        assert (stored.answer, stored.reasoning) == ("The answer.", "weighing options")
    finally:
        unregister("Scripted")
        ScriptedProvider.reset()


async def test_the_with_field_sends_values_as_context_and_shows_what_was_sent(make_panel, protocol_server, chat):
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    chat.shell = TerminalInteractiveShell.instance()
    chat.shell.user_ns["scores"] = {"ann": 3, "bob": 5}
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)
    panel.with_.value = "scores, missing_name"
    panel.prompt.value = "who scored most?"
    panel.send.click()
    assert panel.current is None and "missing_name&#x27; is not defined" in status_text(panel)
    assert "ContextError" not in status_text(panel)
    assert panel.prompt.value == "who scored most?"  # kept, nothing sent
    panel.with_.value = "scores"
    panel.send.click()
    exchange = panel.current
    await ended(exchange)
    sent = protocol_server.requests[-1].json["messages"][-1]["content"]
    assert "scores" in sent and "'bob': 5" in sent and sent.rstrip().endswith("who scored most?")
    assert '<details class="ipyg4f-context"' in exchange.view.value and "scores" in exchange.view.value
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert "'bob': 5" in stored.context
