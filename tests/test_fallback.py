"""Fallback: try providers in order, only before anything was streamed, report every failure."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from fakes import RecordingRenderer
from ipyg4f import errors
from ipyg4f.providers import FinishReason, ProviderUsed
from ipyg4f.providers.fallback import Fallback
from ipyg4f.providers.setup import resolve
from ipyg4f.render import footer
from ipyg4f.runner import Answer, ChatRequest, run_blocking
from kernel_harness import Kernel
from protocol_server import closed_port_url, collect, collect_until_error

ONE = [{"role": "user", "content": "Hi"}]


class Silent:
    """A g4f-style provider (not derived from our base) that answers nothing."""

    calls = 0

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        cls.calls += 1
        yield FinishReason("stop")  # a marker is not an answer


async def test_falls_back_to_the_next_provider_and_reports_who_answered(seed_urls):
    srv = seed_urls
    srv.fault, srv.fault_path = "http500", "/api/chatx-completion"  # Pizzagpt is down
    items = await collect(Fallback.create_async_generator("", ONE, providers=["pizzagpt", "AI365VIP"]))
    assert items[0] == ProviderUsed("AI365VIP", "gpt-3.5-turbo", ("Pizzagpt: HTTP 500",))
    assert "".join(items[1:]) == "Hello world"
    assert srv.paths() == ["/api/chatx-completion", "/api/chat"]


async def test_first_working_provider_answers_alone(seed_urls):
    items = await collect(Fallback.create_async_generator("", ONE, providers=["Pizzagpt", "AI365VIP"]))
    assert items == [ProviderUsed("Pizzagpt", "gpt-4o-mini"), "Hello world", FinishReason("stop")]
    assert seed_urls.paths() == ["/api/chatx-completion"]


async def test_no_fallback_once_something_was_streamed(seed_urls):
    srv = seed_urls
    srv.fault, srv.fault_path, srv.fault_after = "reset", "/api/chat", 1
    items, exc = await collect_until_error(
        Fallback.create_async_generator("", ONE, providers=["AI365VIP", "Acytoo"]))
    assert items == [ProviderUsed("AI365VIP", "gpt-3.5-turbo"), "Hello "]
    assert type(exc) is errors.StreamBrokenError  # the provider's own error, not glued to another answer
    assert "/api/completions" not in srv.paths()


async def test_a_provider_that_answers_nothing_counts_as_failed(seed_urls):
    Silent.calls = 0
    items = await collect(Fallback.create_async_generator("", ONE, providers=[Silent, "Acytoo"]))
    assert Silent.calls == 1
    # Silent's marker is dropped: it must not end the answer that follows
    assert items[0] == ProviderUsed("Acytoo", "", ("Silent: empty answer",)) and items[1:] and all(isinstance(i, str) for i in items[1:])
    assert "".join(items[1:]) == "Hello world"


async def test_a_provider_without_the_model_is_skipped(seed_urls):
    items = await collect(Fallback.create_async_generator("gpt-4", ONE, providers=["Pizzagpt", "ChatGptt"]))
    assert items == [ProviderUsed("ChatGptt", "gpt-4", ("Pizzagpt: no such model",)), "Hello world"]
    assert seed_urls.paths() == ["/", "/wp-admin/admin-ajax.php"]  # Pizzagpt was never called


async def test_all_failing_lists_each_failure(seed_urls, monkeypatch):
    srv = seed_urls
    srv.fault, srv.fault_path = "http500", "/api/chatx-completion"
    monkeypatch.setattr("ipyg4f.providers.acytoo.Acytoo.url", closed_port_url())
    Silent.calls = 0
    with pytest.raises(errors.AllProvidersFailedError) as info:
        await collect(Fallback.create_async_generator(
            "", ONE, providers=["Pizzagpt", "Acytoo", Silent]))
    exc = info.value
    assert [name for name, _ in exc.failures] == ["Pizzagpt", "Acytoo", "Silent"]
    assert [type(e) for _, e in exc.failures] == [errors.HTTPStatusError, errors.ProviderConnectionError,
                                                  errors.ProviderError]
    message = str(exc)
    assert message.startswith("all providers failed (")
    assert "Pizzagpt: HTTP 500: 500 Internal Server Error" in message
    assert "Acytoo: cannot connect to 127.0.0.1:" in message
    assert "Silent: answered nothing" in message
    assert isinstance(exc, errors.ProviderError) and exc.hint


async def test_nothing_to_try(seed_urls):
    with pytest.raises(errors.AllProvidersFailedError, match="no provider to try"):
        await collect(Fallback.create_async_generator("", ONE, providers=[]))


def test_default_candidates_skip_dead_providers_and_itself():
    names = [p.__name__ for p in Fallback.candidates()]
    assert "Acytoo" not in names and "Fallback" not in names
    assert "Pizzagpt" in names
    assert "Pizzagpt" not in [p.__name__ for p in Fallback.candidates("gpt-4")]  # it has only gpt-4o-mini


# --- each provider its own --timeout; who failed first, in full (issue 18 §2) ----------------------

#: a "must not hang" guard: far longer than any timeout under test
GUARD = 60


async def test_a_silent_provider_is_abandoned_and_the_next_is_tried(seed_urls):
    srv = seed_urls
    srv.fault, srv.fault_path, srv.fault_after = "stall", "/v1/chat/completions", 0  # accepts, never answers
    custom = resolve("g4f:Custom", cell={"base_url": f"{srv.base_url}/v1"})  # gpt4free's own class
    items = await asyncio.wait_for(collect(Fallback.create_async_generator(
        "", ONE, providers=[custom, "Pizzagpt"], timeout=3)), GUARD)
    assert srv.stalls == 1  # Custom was asked, and said nothing
    assert items[0] == ProviderUsed("Pizzagpt", "gpt-4o-mini", ("g4f:Custom: no answer",))
    assert "".join(i for i in items if isinstance(i, str)) == "Hello world"


async def test_when_every_provider_is_silent_each_is_said_once(seed_urls):
    srv = seed_urls
    srv.fault, srv.fault_path, srv.fault_after = "stall", "/v1/chat/completions", 0
    custom = resolve("g4f:Custom", cell={"base_url": f"{srv.base_url}/v1"})
    with pytest.raises(errors.AllProvidersFailedError) as info:
        await asyncio.wait_for(collect(Fallback.create_async_generator("", ONE, providers=[custom], timeout=1)),
                               GUARD)
    assert str(info.value) == "all providers failed (g4f:Custom: did not answer within 1 s)"


def test_the_footer_names_who_failed_first_in_full_with_a_short_reason(seed_urls, monkeypatch):
    srv = seed_urls
    srv.fault, srv.fault_path = "http401", "/v1/chat/completions"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    providers = [resolve("g4f:Custom", cell={"base_url": f"{closed_port_url()}/v1"}),
                 resolve("OpenAI", cell={"base_url": f"{srv.base_url}/v1"}), "Pizzagpt"]
    request = ChatRequest(Fallback, "", ONE, kwargs={"providers": providers, "timeout": 30})
    answer = run_blocking(request, Answer("Fallback"), RecordingRenderer())
    assert (answer.status, answer.text) == ("ok", "Hello world")
    assert "Pizzagpt (gpt-4o-mini) after 2 failed (g4f:Custom: unreachable, OpenAI: HTTP 401)" in footer(answer)


class SlowLoad:
    """The engine's loaded model, but loading takes seconds of work (as a cold load of a real model does)."""

    loaded = None

    def server_for(self, job):
        time.sleep(1.5)  # the work of loading, not a wait for anything
        self.loaded = SimpleNamespace(n_ctx=512)
        return object(), None


async def test_loading_the_local_model_is_work_not_silence(monkeypatch):
    from ipyg4f.providers.local import engine

    def generate(server, job, emit, n_ctx, info):
        emit("text", "loaded, then answered")
        return "stop"

    monkeypatch.setattr(engine, "_MODEL", SlowLoad())
    monkeypatch.setattr(engine, "_generate", generate)
    local = resolve("Local", model="gemma-3-270m")
    items = await asyncio.wait_for(collect(Fallback.create_async_generator(
        "", ONE, providers=[local], timeout=0.5)), GUARD)  # the load takes three times the timeout
    assert items[0] == ProviderUsed("Local", "gemma-3-270m")
    assert "".join(i for i in items if isinstance(i, str)) == "loaded, then answered"


@pytest.mark.kernel
@pytest.mark.local_model
def test_in_a_kernel_a_silent_g4f_provider_is_abandoned_and_a_cold_local_answers(protocol_server, tmp_path):
    srv = protocol_server
    srv.fault, srv.fault_path, srv.fault_after = "stall", "/v1/chat/completions", 0
    kernel = Kernel(env={"IPYG4F_DATA_DIR": str(tmp_path), "JPY_SESSION_NAME": str(tmp_path / "fb.ipynb"),
                         "IPYG4F_PROVIDER": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    try:
        kernel.ok("%load_ext ipyg4f")
        kernel.ok("%config ChatConfig.fallback = ['g4f:Custom', 'Local']")
        kernel.ok("%config ChatConfig.provider_options = " + repr({
            "Custom": {"base_url": f"{srv.base_url}/v1"}, "Local": {"model": "gemma-3-270m", "max_tokens": 8}}))
        # the kernel is fresh: Local loads its model cold after Custom's 4 s of silence
        ex = kernel.run("%%chat -p Fallback --timeout 4\nWhat is the capital of France?", cell_id="fb-1",
                        timeout=180)
        assert ex.status == "ok", ex.text()
        assert srv.stalls == 1
        meta = ex.final()["metadata"]["ipyg4f"]
        assert meta["provider"] == "Local", ex.text()
        assert "after 1 failed (g4f:Custom: no answer)" in meta["footer"]
    finally:
        kernel.shutdown()
