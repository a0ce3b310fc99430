"""Shared pytest fixtures."""

from __future__ import annotations

import signal

import pytest

# A run started from a background job (``cmd &`` in a script, nohup, some CI runners) inherits SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler: every interrupt test would fail for
# a reason that is not the code's.  Restore Python's own handler (and the default for child processes).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# --- protocol server: one local server speaking every provider protocol ----------
# ``protocol_server`` is one server for the whole session, reset before each test
# (fast); ``seed_urls`` points the four seed providers at it for one test.

from protocol_server import ProtocolServer

SEED_PROVIDERS = ("Pizzagpt", "ChatGptt", "AI365VIP", "Acytoo")


@pytest.fixture(scope="session")
def _protocol_server_session():
    with ProtocolServer() as srv:
        yield srv


@pytest.fixture
def protocol_server(_protocol_server_session):
    srv = _protocol_server_session
    srv.reset()
    yield srv
    srv.reset()


@pytest.fixture
def scripted():
    """The scripted provider of ``fakes.py``, registered as ``Scripted`` for one test, its queue empty."""
    from fakes import ScriptedProvider
    from ipyg4f.providers import register, unregister

    ScriptedProvider.reset()
    register(ScriptedProvider, "Scripted")
    yield ScriptedProvider
    unregister("Scripted")
    ScriptedProvider.reset()


@pytest.fixture
def seed_urls(protocol_server, monkeypatch):
    from ipyg4f.providers import get_provider

    for name in SEED_PROVIDERS:
        monkeypatch.setattr(get_provider(name), "url", protocol_server.base_url)
    return protocol_server


@pytest.fixture(scope="session", autouse=True)
def _close_g4f_connectors():
    """gpt4free keeps one aiohttp connector per event loop and never closes it: close it on the
    runner's loop at the end, so that the interpreter does not warn "Unclosed connector" on exit."""
    yield
    import sys

    if "g4f.requests" not in sys.modules:
        return
    from ipyg4f.runner import LoopThread

    close = getattr(sys.modules["g4f.requests"], "close_shared_connectors", None)
    if close is not None:
        LoopThread.get().submit(close()).result(timeout=10)


@pytest.fixture(autouse=True)
def _chatconfig_as_it_was():
    """In-process tests share one terminal IPython shell, whose ``config`` outlives every test: a
    ``%config ChatConfig.timeout = 1.0`` in one test made later tests' requests time out after 1 s
    on a busy machine.  Whatever a test sets under ``ChatConfig`` is undone after it."""
    import copy

    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    before = None
    if TerminalInteractiveShell.initialized():
        before = copy.deepcopy(dict(TerminalInteractiveShell.instance().config.get("ChatConfig", {})))
    yield
    if TerminalInteractiveShell.initialized():
        from traitlets.config import Config

        TerminalInteractiveShell.instance().config.ChatConfig = Config(before or {})
