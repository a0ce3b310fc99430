"""The provider registry: lookup by name, registration, foreign (g4f-style) classes, listing."""

from __future__ import annotations

import pytest

from ipyg4f import errors
from ipyg4f.providers import (BUILTINS, FinishReason, ProviderUsed, get_provider, list_providers,
                              provider_names, register, unregister)
from ipyg4f.providers.acytoo import Acytoo
from ipyg4f.providers.ai365vip import AI365VIP
from ipyg4f.providers.chatgptt import ChatGptt
from ipyg4f.providers.fallback import Fallback
from ipyg4f.providers.pizzagpt import Pizzagpt
from protocol_server import collect

ONE = [{"role": "user", "content": "Hi"}]


class G4FStyle:
    """Shaped like a gpt4free provider: not derived from ipyg4f's base classes."""

    url = "https://g4f.example"
    working = True
    supports_stream = True
    default_model = "echo-1"
    models = ["echo-1"]

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        yield f"[{model}] "
        yield messages[-1]["content"]


@pytest.fixture
def registered():
    names = []

    def add(provider, name=None):
        register(provider, name)
        names.append(name or provider.__name__)
        return provider

    yield add
    for name in names:
        unregister(name)


@pytest.mark.parametrize("name, provider", [
    ("Pizzagpt", Pizzagpt), ("pizzagpt", Pizzagpt), ("PIZZAGPT", Pizzagpt), ("  chatgptt ", ChatGptt),
    ("ai365vip", AI365VIP), ("acyToo", Acytoo), ("fallback", Fallback),
])
def test_builtin_lookup_is_case_insensitive(name, provider):
    assert get_provider(name) is provider


def test_a_class_or_an_import_path_is_accepted():
    assert get_provider(Pizzagpt) is Pizzagpt
    assert get_provider("ipyg4f.providers.chatgptt:ChatGptt") is ChatGptt
    assert get_provider("ipyg4f.providers.chatgptt.ChatGptt") is ChatGptt


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(errors.UnknownProviderError) as info:
        get_provider("nope")
    message = str(info.value)
    assert message.startswith("unknown provider 'nope'; known providers: ")
    for name in ("Pizzagpt", "ChatGptt", "AI365VIP", "Acytoo", "OpenAI", "Fallback"):
        assert name in message
    assert isinstance(info.value, KeyError) and "%chat providers" in info.value.hint


@pytest.mark.parametrize("bad", ["", "   ", None, 42, "no.such.module:Thing"])
def test_not_a_provider(bad):
    with pytest.raises(errors.UnknownProviderError):
        get_provider(bad)


def test_register_and_unregister(registered):
    registered(G4FStyle, "Echo")
    assert "Echo" in provider_names()
    echo = get_provider("echo")
    assert echo.target is G4FStyle and echo.name == "Echo"  # wrapped once, with the registered name
    assert get_provider("echo") is echo
    unregister("Echo")
    assert "Echo" not in provider_names()
    with pytest.raises(errors.UnknownProviderError):
        get_provider("echo")


def test_register_works_as_a_decorator(registered):
    @registered
    class Decorated(G4FStyle):
        pass

    assert Decorated.__name__ == "Decorated"  # the decorator returns the class as written
    assert get_provider("decorated").target is Decorated


def test_register_refuses_what_is_not_a_provider():
    with pytest.raises(TypeError, match="create_async_generator"):
        register(object)


async def test_a_g4f_style_class_streams_directly_and_through_fallback(registered):
    registered(G4FStyle, "Echo")
    provider = get_provider("Echo")
    assert await collect(provider.create_async_generator("echo-1", ONE)) == ["[echo-1] ", "Hi"]
    items = await collect(Fallback.create_async_generator("", ONE, providers=["echo"]))
    assert items == [ProviderUsed("Echo", "echo-1"), "[echo-1] ", "Hi"]


def test_list_providers_reports_flags_models_and_labels():
    infos = {info.name: info for info in list_providers()}
    assert list(infos)[: len(BUILTINS)] == list(BUILTINS)
    pizza = infos["Pizzagpt"]
    assert pizza.working and pizza.available and not pizza.needs_auth
    assert (pizza.models, pizza.default_model) == (("gpt-4o-mini",), "gpt-4o-mini")
    chat = infos["ChatGptt"]
    assert chat.supports_stream and chat.supports_system_message and chat.supports_message_history
    assert chat.models == ("gpt-4", "gpt-4o", "gpt-4o-mini")
    assert infos["AI365VIP"].models == ("gpt-3.5-turbo", "gpt-3.5-turbo-16k", "gpt-4o")
    acytoo = infos["Acytoo"]
    assert not acytoo.working and not acytoo.available and acytoo.supports_message_history
    assert acytoo.models == () and acytoo.default_model == ""
    for name in ("Pizzagpt", "ChatGptt", "AI365VIP", "Acytoo", "OpenAI", "Fallback"):
        assert infos[name].label and not infos[name].error


def test_a_broken_plugin_is_listed_with_its_error(monkeypatch):
    monkeypatch.setitem(BUILTINS, "Broken", "ipyg4f.providers.no_such_module:Broken")
    info = {i.name: i for i in list_providers()}["Broken"]
    assert not info.working and not info.available and "no_such_module" in info.error


def test_markers_are_empty_text():
    assert str(FinishReason("stop")) == "" and str(ProviderUsed("X")) == ""


def test_a_plugin_registers_through_the_entry_point_group(tmp_path):
    import subprocess
    import sys
    import textwrap

    (tmp_path / "echo_plugin.py").write_text(textwrap.dedent('''
        from ipyg4f.providers import AsyncGeneratorProvider, FinishReason

        class Echo(AsyncGeneratorProvider):
            label = "says the prompt back"

            @classmethod
            async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
                yield messages[-1]["content"]
                yield FinishReason("stop")
    '''))
    dist = tmp_path / "echo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ipyg4f.providers]\nEcho = echo_plugin:Echo\n")
    script = textwrap.dedent('''
        import asyncio
        from ipyg4f.providers import get_provider, list_providers
        echo = get_provider("echo")
        async def run():
            return [c async for c in echo.create_async_generator("", [{"role": "user", "content": "hi"}])]
        print([i.name for i in list_providers()][-1], echo.__name__, asyncio.run(run())[0])
    ''')
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Echo", "Echo", "hi"]
