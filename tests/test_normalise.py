"""What foreign providers send is normalised like ours (issue 18 §3).

Against real third-party software: gpt4free 8.8.6's own ``Custom`` class (an
``OpenaiTemplate``, like DeepInfra, Groq...) pointed at the local protocol
server, and xllamacpp's real llama.cpp HTTP server for the model that answers;
besides, a seed provider and a plugin's class.  A cell is run in process (a real
IPython shell, ``test_commands.ip``) where the answer's way into ``-o VAR``,
history and the next request matters.
"""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest
from IPython.utils.capture import capture_output

from fakes import RecordingRenderer
from ipyg4f import errors, http
from ipyg4f.chat import get_chat
from ipyg4f.providers import get_provider, register, unregister
from ipyg4f.render import CellRenderer, failure_lines, footer, outcome
from ipyg4f.runner import Answer, ChatRequest, run_blocking
from test_commands import chat_cell, ip  # noqa: F401  (ip: a fixture)
from test_llamacpp_server import KEY, llama_server  # noqa: F401  (llama_server: a fixture)

HI = [{"role": "user", "content": "Hi"}]
#: a model that thinks inside its text, the tags cut as a stream cuts them
THINKING = ["<thi", "nk>Plan: ", "greet.</th", "ink>\n\n", "Hello ", "there"]


def run(provider, model="test-model", *, timeout=30.0, **kwargs):
    request = ChatRequest(provider, model, HI, kwargs=kwargs, timeout=timeout)
    renderer = RecordingRenderer()
    return run_blocking(request, Answer(provider.name, model), renderer), renderer


@pytest.fixture
def custom():
    return get_provider("g4f:Custom")


class ThinksAloud:
    """A plugin's provider class: neither ours nor gpt4free's; its text carries the thinking."""

    working = True
    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        for piece in THINKING:
            yield piece


@pytest.fixture
def plugin():
    register(ThinksAloud, "ThinksAloud")
    yield get_provider("ThinksAloud")
    unregister("ThinksAloud")


# --- <think> in any provider's text is thinking ------------------------------------------------------

def test_think_tags_in_a_gpt4free_class_text_become_reasoning(custom, protocol_server):
    protocol_server.reasoning, protocol_server.think_tags = "Let me think", True  # "<thi", "nk>", ..., "</", "think>"
    answer, renderer = run(custom, base_url=f"{protocol_server.base_url}/v1")
    assert (answer.status, answer.reasoning, answer.text) == ("ok", "Let me think", "Hello world")
    assert not any("<" in shown for shown in renderer.drawn)  # nothing of a tag was ever on screen


def test_think_tags_from_a_seed_provider_and_a_plugin_become_reasoning(seed_urls, plugin):
    seed_urls.chunks = THINKING  # AI365VIP streams plain text pieces as they come
    for provider in (get_provider("AI365VIP"), plugin):
        answer, renderer = run(provider, "")
        assert (answer.status, answer.reasoning, answer.text) == ("ok", "Plan: greet.", "Hello there"), provider
        assert not any("<" in shown for shown in renderer.drawn)


@pytest.mark.parametrize("text, reasoning, answer_text", [
    ("<think>A</think>\n\nB", "A", "B"),
    ("x < y <", "", "x < y <"),  # held back as maybe a tag, then given back at the end
    ("<think>never closed", "never closed", ""),
])
def test_tags_split_at_every_character_never_reach_the_answer(text, reasoning, answer_text):
    answer = Answer("P", "m")
    for char in text:
        answer.feed(char)
        assert "<t" not in answer.text and "</" not in answer.text
    answer.end("ok")
    assert (answer.reasoning, answer.text) == (reasoning, answer_text)


def test_thinking_stays_out_of_the_variable_the_history_and_the_next_request(ip, protocol_server):  # noqa: F811
    protocol_server.reasoning, protocol_server.think_tags = "Let me think", True
    cell = f"-p g4f:Custom --base-url {protocol_server.base_url}/v1 -m test-model"
    assert chat_cell(ip, f"{cell} -o reply", "hi") is None
    assert ip.user_ns["reply"] == "Hello world"
    chat = get_chat(ip)
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert (stored.answer, stored.reasoning) == ("Hello world", "Let me think")
    assert chat_cell(ip, cell, "and then?") is None
    sent = str(protocol_server.requests[-1].json["messages"])
    assert "Hello world" in sent and "Let me" not in sent and "think>" not in sent


# --- a provider's failure: one line, its name once ------------------------------------------------------

CHROMIUM_STDERR = ("Browser exited before it could be used\n"
                   "[0101/120000.000:ERROR:zygote_host_impl_linux.cc(100)] Running as root without --no-sandbox\n"
                   "[0101/120000.001:ERROR:ozone_platform_x11.cc(240)] Missing X server or $DISPLAY\n")


def test_a_multi_line_gpt4free_error_is_one_line_with_the_name_once(custom, protocol_server):
    protocol_server.fault, protocol_server.error_message = "http500", CHROMIUM_STDERR
    answer, _ = run(custom, base_url=f"{protocol_server.base_url}/v1")
    assert "zygote" in str(answer.error)  # kept whole, for --debug
    lines = failure_lines(answer)
    assert lines[0] == "✖ g4f:Custom: Error 500: Browser exited before it could be used …"
    note = outcome(answer).note
    assert note.startswith("g4f:Custom failed: Error 500: Browser exited") and note.count("g4f:Custom") == 1
    assert "zygote" not in "".join(lines) + note and "\n" not in note


class Crashes:
    """A plugin's class whose failure is not a gpt4free error: a browser's stderr in a RuntimeError."""

    working = True

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        raise RuntimeError(CHROMIUM_STDERR)
        yield  # pragma: no cover


def test_a_cell_shows_the_first_line_and_debug_shows_all(ip, capsys):  # noqa: F811
    register(Crashes, "Crashes")
    try:
        failed = chat_cell(ip, "-p Crashes", "hi")
        assert isinstance(failed, errors.ChatFailed)
        assert failed.lines[0] == "✖ Crashes: RuntimeError: Browser exited before it could be used …"
        assert "zygote" not in str(failed) and "zygote" not in capsys.readouterr().out
        debug = chat_cell(ip, "-p Crashes --debug", "hi")
        assert isinstance(debug, RuntimeError) and "Missing X server" in str(debug)
    finally:
        unregister("Crashes")


# --- silence: "did not answer within N s", whoever is silent -------------------------------------------

@pytest.mark.parametrize("name, options", [
    ("g4f:Custom", "-m test-model --base-url {url}/v1"),
    ("OpenAI", "-m test-model --base-url {url}/v1 --api-key-env HOME"),
    ("AI365VIP", ""),  # a seed provider: its own protocol, at the server's root
])
def test_nothing_within_the_timeout_did_not_answer(ip, seed_urls, name, options):  # noqa: F811
    seed_urls.fault = "stall"  # the headers come, then nothing
    failed = chat_cell(ip, f"-p {name} {options.format(url=seed_urls.base_url)} --timeout 1", "hi")
    assert isinstance(failed, errors.ChatFailed)
    assert failed.lines[0].startswith(f"✖ {name}: ") and failed.lines[0].endswith("did not answer within 1 s")
    assert failed.lines[0].count(name) == 1


class TimesOutItself:
    """A plugin's class that enforces the timeout it is given itself (aiohttp's ClientTimeout does)."""

    working = True
    pieces: list[str] = []

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, timeout=None, **kwargs):
        for piece in cls.pieces:
            yield piece
        raise asyncio.TimeoutError()


@pytest.mark.parametrize("pieces, words", [([], "did not answer within 2 s"), (["Hel"], "stopped sending for 2 s")])
def test_a_provider_own_timeout_reads_like_the_runner(ip, pieces, words):  # noqa: F811
    TimesOutItself.pieces = pieces
    register(TimesOutItself, "TimesOutItself")
    try:
        failed = chat_cell(ip, "-p TimesOutItself --timeout 2", "hi")
    finally:
        unregister("TimesOutItself")
    assert failed.lines[0] == f"✖ TimesOutItself: {words}"


def test_a_gpt4free_class_that_stops_midway_stopped_sending(custom, protocol_server):
    protocol_server.fault, protocol_server.fault_after = "stall", 1
    answer, _ = run(custom, timeout=1, base_url=f"{protocol_server.base_url}/v1")
    assert str(answer.error) == "stopped sending for 1 s" and answer.text == "Hello "


# --- the model that answered ----------------------------------------------------------------------------

@pytest.mark.local_model
@pytest.mark.parametrize("name", ["OpenAI", "g4f:Custom"])
def test_the_footer_and_metadata_name_the_model_that_answered(ip, llama_server, name):  # noqa: F811
    """llama.cpp answers whatever model is asked for with its one GGUF (its chunks' ``model`` field)."""
    provider = get_provider(name)
    request = ChatRequest(provider, "gpt-4o-mini", HI, timeout=120,
                          kwargs={"base_url": llama_server.url, "api_key": KEY, "max_tokens": 3})
    answer = Answer(provider.name, "gpt-4o-mini")
    with capture_output() as captured:
        renderer = CellRenderer(name, metadata={"provider": name, "model": "gpt-4o-mini"})
        run_blocking(request, answer, renderer)
        renderer.finish(answer, outcome(answer))
    assert answer.status == "ok", answer.error
    gguf = llama_server.model.rsplit("/", 1)[-1]
    assert footer(answer).startswith(f"{name} ({gguf}, asked for gpt-4o-mini) · ")
    meta = captured.outputs[-1].metadata["ipyg4f"]
    assert (meta["model"], meta["requested_model"]) == (llama_server.model, "gpt-4o-mini")
    assert meta["footer"] == footer(answer)


def test_the_same_model_is_named_once(custom, protocol_server):
    answer, _ = run(custom, base_url=f"{protocol_server.base_url}/v1")  # the server answers as the model asked
    assert (answer.model, answer.model_used) == ("test-model", "")
    assert footer(answer).startswith("g4f:Custom (test-model) · ")


# --- 429: how long to wait -------------------------------------------------------------------------------

def in_ten_minutes() -> str:
    return email.utils.formatdate(time.time() + 600, usegmt=True)


@pytest.mark.parametrize("name", ["OpenAI", "g4f:Custom"])
@pytest.mark.parametrize("header, message, wait", [
    ("7", None, "try again in 7 s"),
    (in_ten_minutes, None, "try again in 10 min"),
    (None, "Rate limit reached for gpt-4o-mini. Please try again in 20s.", "try again in 20 s"),
    (None, "Too many requests, retry after 1m30s", "try again in 90 s"),
], ids=["seconds", "http-date", "try-again-in", "retry-after-text"])
def test_a_429_says_how_long_to_wait_in_one_short_line(protocol_server, name, header, message, wait):
    protocol_server.fault = "http429"
    protocol_server.retry_after = header() if callable(header) else header
    protocol_server.error_message = message
    answer, _ = run(get_provider(name), base_url=f"{protocol_server.base_url}/v1", api_key="sk-test-0000")
    assert isinstance(answer.error, errors.RateLimitError)
    line = failure_lines(answer)[0]
    assert line == f"✖ {name}: rate limited (HTTP 429): {wait}" and len(line) < 80


def test_a_429_that_says_nothing_says_to_wait_a_little(protocol_server):
    protocol_server.fault = "http429"
    answer, _ = run(get_provider("OpenAI"), base_url=f"{protocol_server.base_url}/v1", api_key="sk-test-0000")
    assert failure_lines(answer)[:2] == ["✖ OpenAI: rate limited (HTTP 429)",
                                         "  try: wait a little, or try another provider (-p)"]


@pytest.mark.parametrize("text, seconds", [
    ("Please try again in 7s.", 7), ("try again in 1m30s", 90), ("retry after 20 seconds", 20),
    ("try again in 2 minutes and 5 seconds", 125), ("Please try again in 120ms", 0.12),
    ("try again in a few minutes", None), ("Retry after 2026-01-01", None), ("slow down", None),
])
def test_the_wait_is_read_from_what_services_write(text, seconds):
    assert http.retry_after_in(text) == seconds
