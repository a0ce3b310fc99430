"""gpt4free's own classes, first-class: the real ``g4f`` package (pinned in the test extra).

Its ``Custom`` provider (an ``OpenaiTemplate`` subclass, like Groq, DeepInfra...)
is pointed at the local protocol server; fake providers yield every g4f
response type, including one whose ``str()`` raises.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from fakes import RecordingRenderer
from ipyg4f import errors
from ipyg4f.providers import get_provider, register, unregister
from ipyg4f.providers.fallback import Fallback
from ipyg4f.render import footer, outcome
from ipyg4f.runner import Answer, ChatRequest, run_blocking
from protocol_server import closed_port_url

import g4f.providers.response as g4f_response  # pinned in the test extra: missing is a failure

HI = [{"role": "user", "content": "Hi"}]


def run(provider, model="", *, timeout=10.0, renderer=None, **kwargs):
    request = ChatRequest(provider, model, HI, kwargs=kwargs, timeout=timeout)
    renderer = renderer or RecordingRenderer()
    answer = run_blocking(request, Answer(provider.name, model), renderer)
    return answer, renderer


@pytest.fixture
def custom():
    return get_provider("g4f:Custom")


# --- names ---------------------------------------------------------------------------------

def test_every_spelling_names_the_same_provider_and_the_name_resolves_later(custom):
    assert custom.name == "g4f:Custom"
    for spelling in ("Custom", "custom", "g4f:Custom", "g4f.Provider.Custom", "G4F:custom"):
        assert get_provider(spelling) is custom
    assert get_provider(custom.name) is custom  # what %chat use stores
    assert custom.target.__name__ == "Custom" and custom.supports_stream


@pytest.mark.parametrize("name, words", [
    ("OpenaiAPI", "gpt4free lists 'OpenaiAPI' but cannot load it"),  # its module is not in the wheel
    ("g4f:NoSuchThing", "gpt4free has no provider 'NoSuchThing'"),
])
def test_a_g4f_name_that_cannot_be_loaded_is_one_line(name, words):
    with pytest.raises(errors.UnknownProviderError) as info:
        get_provider(name)
    assert words in str(info.value) and "\n" not in str(info.value)


# --- Custom (OpenaiTemplate) against a local OpenAI-compatible server --------------------------

def test_custom_answers_text_not_json(custom, protocol_server):
    protocol_server.chunks = ["Hello ", "from ", "g4f"]
    answer, renderer = run(custom, "test-model", base_url=f"{protocol_server.base_url}/v1")
    assert (answer.status, answer.text) == ("ok", "Hello from g4f")  # not "{'id': 'chatcmpl-…"
    assert answer.finish_reason == "stop" and answer.ignored["JsonResponse"] >= 3
    assert answer.provider == "g4f:Custom" and answer.model == "test-model"  # its ProviderInfo names the model
    assert "/v1/models" not in protocol_server.paths()  # the model is not looked up on the network
    assert answer.chunks == 3  # streamed piece by piece, as the server sent them


def test_custom_reasoning_and_usage_become_events(custom, protocol_server):
    protocol_server.reasoning = ["Let me ", "think."]
    protocol_server.prompt_tokens, protocol_server.completion_tokens = 11, 2
    answer, _ = run(custom, "test-model", base_url=f"{protocol_server.base_url}/v1")
    assert (answer.reasoning, answer.text) == ("Let me think.", "Hello world")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 2)
    assert "11 in / 2 out tokens" in footer(answer)


def test_custom_cut_at_the_token_limit_is_said(custom, protocol_server):
    protocol_server.finish_reason = "length"
    answer, _ = run(custom, "test-model", base_url=f"{protocol_server.base_url}/v1", max_tokens=2)
    assert outcome(answer).kind == "cut"
    assert protocol_server.requests[-1].json["max_tokens"] == 2


def test_the_runner_times_out_a_g4f_provider_that_ignores_timeouts(custom, protocol_server):
    protocol_server.fault, protocol_server.fault_after = "stall", 1
    answer, _ = run(custom, "test-model", timeout=3, base_url=f"{protocol_server.base_url}/v1")
    assert answer.status == "error" and isinstance(answer.error, errors.ProviderTimeoutError)
    assert answer.text == "Hello "  # what came before the stall is kept


def test_an_interrupt_stops_a_g4f_stream_and_keeps_the_partial_answer(custom, protocol_server):
    protocol_server.fault, protocol_server.fault_after = "stall", 1

    renderer = RecordingRenderer()

    sent = []

    def interrupt_when_stalled():  # the first piece is on screen and the server has gone quiet
        if renderer.updated.wait(60) and protocol_server.wait_stalled(1, 60):
            sent.append("SIGINT")
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_stalled, daemon=True).start()
    answer, _ = run(custom, "test-model", base_url=f"{protocol_server.base_url}/v1", renderer=renderer)
    assert sent == ["SIGINT"], f"the first piece was shown and the server stalled: {answer.status} {answer.error!r}"
    assert (answer.status, answer.text) == ("interrupted", "Hello "), repr(answer.error)


def test_fallback_moves_on_after_a_g4f_provider_fails(seed_urls):
    answer, _ = run(Fallback, "", providers=["g4f:Custom", "Pizzagpt"], base_url=f"{closed_port_url()}/v1")
    assert (answer.status, answer.provider, answer.text) == ("ok", "Pizzagpt", "Hello world")
    assert answer.failed_first and answer.failed_first[0].startswith("g4f:Custom: ")


# --- every g4f response type ----------------------------------------------------------------

class EveryType:
    """Shaped like a gpt4free provider; yields every response type g4f 8.8.6 has that matters."""

    working = True
    supports_stream = True

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        r = g4f_response
        yield r.JsonRequest(messages=messages)
        yield r.JsonResponse(id="chatcmpl-1", object="chat.completion.chunk")
        yield r.RawResponse(type="tool_result", result="x")  # str() of it raises
        yield r.ProviderInfo(name="EveryType", model="m-7", label="every type")
        yield r.Reasoning(token="Thinking ")
        yield r.Reasoning(token="hard.")
        yield r.Reasoning(status="")  # end of thinking
        yield "The answer"
        yield r.JsonConversation(conversation_id="c-1")
        yield r.TitleGeneration("A title")
        yield r.Sources([{"url": "https://example.test/a", "title": "A"}, {"url": "https://example.test/b"}])
        yield r.ImageResponse(["https://example.test/plot.png"], "a plot")
        yield r.ToolCalls([{"index": 0, "id": "c1", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}])
        yield r.RequestLogin("Example", "https://example.test/login")
        yield r.Usage(prompt_tokens=5, completion_tokens=3)
        yield r.FinishReason("length")
        yield " is 42."


@pytest.fixture
def every_type():
    register(EveryType, "EveryType")
    yield get_provider("EveryType")
    unregister("EveryType")


def test_every_g4f_response_type_maps_to_its_event_or_is_ignored(every_type):
    answer, _ = run(every_type)
    assert (answer.status, answer.text) == ("ok", "The answer is 42.")
    assert answer.reasoning == "Thinking hard."
    assert (answer.provider, answer.model) == ("EveryType", "m-7")
    assert answer.sources == [("https://example.test/a", "A"), ("https://example.test/b", "")]
    assert [(m.kind, m.url, m.alt) for m in answer.media] == [("image", "https://example.test/plot.png", "a plot")]
    assert answer.tool_calls == ["get_weather"]
    assert answer.login.url == "https://example.test/login"
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.finish_reason) == (5, 3, "length")
    assert set(answer.ignored) == {"JsonRequest", "JsonResponse", "RawResponse", "JsonConversation",
                                   "TitleGeneration", "Reasoning"}  # Reasoning(status="") only marks the end


class Broken(g4f_response.Reasoning if g4f_response else object):
    """A g4f object whose attributes raise."""

    def __getattribute__(self, name):
        if name == "__class__":
            return type(self)
        raise RuntimeError("broken object")


class YieldsBroken:
    working = True

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        yield "kept "
        yield Broken()
        yield "and more"


def test_a_g4f_object_whose_attributes_raise_cannot_crash_the_answer():
    register(YieldsBroken, "YieldsBroken")
    try:
        answer, _ = run(get_provider("YieldsBroken"))
    finally:
        unregister("YieldsBroken")
    assert (answer.status, answer.text) == ("ok", "kept and more")
    assert answer.ignored == {"Broken": 1}


def test_a_g4f_transport_failure_reads_like_ours(custom):
    answer, _ = run(custom, "test-model", base_url=f"{closed_port_url()}/v1")
    assert answer.status == "error" and isinstance(answer.error, errors.ProviderConnectionError)
    assert str(answer.error).startswith("cannot connect to 127.0.0.1:") and "network" in answer.error.hint


def test_a_g4f_auth_failure_says_how_to_pass_a_key(custom, protocol_server):
    protocol_server.fault = "http401"
    answer, _ = run(custom, "test-model", base_url=f"{protocol_server.base_url}/v1")
    assert answer.status == "error" and "needs a key" in str(answer.error)
    assert "--api-key-env" in answer.error.hint


class SeesImages:
    """gpt4free-style: images come as ``media``, a list of (data, file name)."""

    working = True
    seen: list = []

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, media=None, **kwargs):
        cls.seen.append((messages, media))
        yield "a bar chart"


def test_images_reach_a_g4f_style_provider_as_media():
    register(SeesImages, "SeesImages")
    try:
        provider = get_provider("SeesImages")
        assert provider.accepts_images("") and not get_provider("Pizzagpt").accepts_images("")
        url = "data:image/png;base64,iVBORw0KGgo="
        request = ChatRequest(provider, "", [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": url}}]}])
        answer = run_blocking(request, Answer("SeesImages"), RecordingRenderer())
    finally:
        unregister("SeesImages")
    assert answer.text == "a bar chart"
    [(messages, media)] = SeesImages.seen
    assert messages == [{"role": "user", "content": "what is this?"}] and media == [(url, "image1.png")]
