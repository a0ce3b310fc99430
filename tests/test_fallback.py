"""Fallback: try providers in order, only before anything was streamed, report every failure."""

from __future__ import annotations

import pytest

from ipyg4f import errors
from ipyg4f.providers import FinishReason, ProviderUsed
from ipyg4f.providers.fallback import Fallback
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
