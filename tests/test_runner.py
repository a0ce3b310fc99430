"""The runner in process: a scripted provider, a recording renderer, no kernel (seconds, not minutes)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest

from fakes import Gate, RecordingRenderer, ScriptedProvider, Stall
from ipyg4f import errors
from ipyg4f.events import FinishReason, Media, ProviderUsed, Reasoning, ToolCalls, Usage
from ipyg4f.providers import register, unregister
from ipyg4f.providers.fallback import Fallback
from ipyg4f.render import outcome
from ipyg4f.runner import Answer, ChatRequest, Run, run_blocking

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _every_test_is_scripted(scripted):
    """The scripted provider (conftest's ``scripted``) for every test of this file."""
    yield scripted


def run(steps, *, timeout=None, renderer=None):
    ScriptedProvider.enqueue(steps)
    request = ChatRequest(ScriptedProvider, "scripted-1", HI, timeout=timeout)
    renderer = renderer or RecordingRenderer()
    answer = run_blocking(request, Answer("Scripted", "scripted-1"), renderer)
    return answer, renderer


def test_text_streams_into_the_answer_and_the_renderer():
    gate, renderer = Gate(), RecordingRenderer()

    def open_once_shown():  # the rest comes only after the first piece was drawn
        if renderer.updated.wait(10):
            gate.open.set()

    threading.Thread(target=open_once_shown, daemon=True).start()
    answer, renderer = run(["Hel", gate, "lo", FinishReason("stop")], renderer=renderer)
    assert (answer.status, answer.text, answer.finish_reason) == ("ok", "Hello", "stop")
    assert renderer.calls[0] == ("start", "streaming")
    assert renderer.drawn[0] == "Hel"
    assert answer.first_token is not None and answer.ended >= answer.first_token


def test_a_failure_keeps_the_partial_answer_and_the_exception():
    boom = errors.StreamBrokenError("connection reset", provider="Scripted")
    answer, _ = run(["partial ", boom])
    assert (answer.status, answer.text, answer.error) == ("error", "partial ", boom)
    assert "partial answer kept (8 characters)" in outcome(answer).note
    assert ScriptedProvider.closed == [True]


class Unprintable:
    def __str__(self):
        raise RuntimeError("str() of me raises")

    def __getattr__(self, name):
        raise RuntimeError("so does every attribute")


def test_unknown_objects_are_ignored_never_turned_into_text():
    answer, _ = run(["a", {"id": "chatcmpl-1", "object": "chat.completion.chunk"}, Unprintable(), 42, "b"])
    assert (answer.status, answer.text) == ("ok", "ab")
    assert answer.ignored == {"dict": 1, "Unprintable": 1, "int": 1}


def test_typed_events_are_kept_apart_from_the_text():
    answer, _ = run([Reasoning("think "), Reasoning("more"), "Answer", Usage(7, 3), FinishReason("length"),
                     Media("image", "https://example.test/x.png", "a plot")])
    assert (answer.text, answer.reasoning) == ("Answer", "think more")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 3)
    assert outcome(answer).kind == "cut" and "--max-tokens" in outcome(answer).note
    assert [m.url for m in answer.media] == ["https://example.test/x.png"]


def test_a_tool_call_only_answer_is_not_an_empty_one():
    answer, _ = run([ToolCalls(("get_weather",)), FinishReason("tool_calls")])
    result = outcome(answer)
    assert result.kind == "tools" and "get_weather" in result.note and result.tone != "error"


def test_the_runner_enforces_the_timeout_for_every_provider():
    stall = Stall()
    answer, _ = run(["first ", stall], timeout=3)  # the stall never ends: the timeout always fires
    assert answer.status == "error" and isinstance(answer.error, errors.ProviderTimeoutError)
    assert "stopped sending for 3 s" in str(answer.error) and answer.text == "first "
    assert ScriptedProvider.closed == [True]  # the generator (its connection) was closed


def test_an_interrupt_cancels_the_stream_and_keeps_what_came():
    stall = Stall()
    ended = threading.Event()
    sent = []

    def interrupt_when_stalled():
        if stall.reached.wait(60):
            sent.append("SIGINT")
            os.kill(os.getpid(), signal.SIGINT)  # what a kernel interrupt delivers to the cell's thread
        if not ended.wait(60):  # the interrupt did not stop it: let the stream end, so the test fails, not hangs
            stall.release.set()

    threading.Thread(target=interrupt_when_stalled, daemon=True).start()
    try:
        answer, _ = run(["kept ", stall, "after the stall"])
    finally:
        ended.set()
    assert sent == ["SIGINT"], "the stream reached the stall"
    assert (answer.status, answer.text) == ("interrupted", "kept "), "the interrupt stopped the stalled stream"
    assert ScriptedProvider.closed == [True]


def test_a_fast_stream_costs_one_update_per_batch_not_per_item():
    pieces = [f"{i} " for i in range(20_000)]
    answer, renderer = run(pieces)
    assert answer.text == "".join(pieces) and answer.chunks == 20_000
    assert len(renderer.drawn) < 2_000, len(renderer.drawn)


def test_a_background_run_can_be_cancelled_from_another_thread():
    gate = Gate()
    ScriptedProvider.enqueue(["so far ", gate, "never"])
    request = ChatRequest(ScriptedProvider, "scripted-1", HI)
    ended = []
    run_ = Run(request, Answer("Scripted"), RecordingRenderer()).start(then=ended.append)
    assert gate.reached.wait(10)
    run_.cancel()
    assert run_.wait(10)
    [answer] = ended
    assert (answer.status, answer.text) == ("interrupted", "so far ")


class Broken(ScriptedProvider):
    pass


def test_fallback_moves_on_before_text_and_says_who_failed(scripted):
    register(Broken, "Broken")
    try:
        scripted.enqueue([Reasoning("hmm"), errors.ProviderTimeoutError("no answer", provider="Broken")])
        scripted.enqueue(["from the second", FinishReason("stop")])
        request = ChatRequest(Fallback, "", HI, kwargs={"providers": ["Broken", "Scripted"]})
        answer = run_blocking(request, Answer("Fallback"), RecordingRenderer())
    finally:
        unregister("Broken")
    assert (answer.status, answer.text, answer.provider) == ("ok", "from the second", "Scripted")
    assert answer.reasoning == ""  # the failed provider's thinking went with it
    assert answer.failed_first == ("Broken: no answer",)
    assert "after 1 failed (Broken: no answer)" in __import__("ipyg4f.render", fromlist=["footer"]).footer(answer)


def test_provider_used_is_an_event_not_text():
    answer, _ = run([ProviderUsed("Other", "m-2"), "x"])
    assert (answer.provider, answer.model, answer.text) == ("Other", "m-2", "x")


def test_an_interrupt_while_the_request_is_handed_over_still_stops_the_stream():
    """Ctrl-C can land while the request is being handed to the worker loop, before the answer is drawn
    (found under load: it escaped as a bare KeyboardInterrupt and the stream went on in the background)."""
    stall = Stall()

    class InterruptedEarly(RecordingRenderer):
        def prepare(self):
            assert stall.reached.wait(60), "the stream began"
            raise KeyboardInterrupt  # where the signal lands

    answer, _ = run(["kept ", stall, "never"], renderer=InterruptedEarly())
    assert (answer.status, answer.text) == ("interrupted", "kept ")
    assert ScriptedProvider.closed == [True]  # the stream was cancelled, not left running


def test_a_run_that_ends_while_its_last_batch_is_drained_still_ends():
    """The end (finished + wake) may come after the loop looked for it and before the drain cleared the
    wake-up: the next wait then times out and must look at the end again (it waited forever)."""
    draining, ended = threading.Event(), threading.Event()

    async def source(run):
        run.put("text")
        while not draining.is_set():  # ends only once the loop has looked for the end and is draining
            await asyncio.sleep(0.01)

    class Late(Run):
        def _drain(self, run_jobs=True):
            draining.set()
            self._finished.wait(30)  # the source has ended: its wake-up is set, and cleared below
            ended.set()
            return super()._drain(run_jobs)

    request = ChatRequest(ScriptedProvider, "m", [{"role": "user", "content": "hi"}])
    run = Late(request, Answer("Scripted", "m"), RecordingRenderer(), source)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (run.run(), done.set()), daemon=True)
    worker.start()
    assert done.wait(30), "the run never noticed its end"
    assert ended.is_set() and run.answer.status == "ok" and run.answer.text == "text"
