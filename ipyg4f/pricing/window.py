"""A model's context window, in tokens, where it can be known without waiting for it.

* ``Local``: the context llama.cpp loaded the model with (its GGUF's, capped; ``local_context_size``);
* a server on this machine or the local network, of ``-p LlamaCppServer`` or ``-p VLLM``: asked once
  per base URL, on a thread of its own, when a request goes there (:func:`prefetch`): llama.cpp's ``GET /props``
  (``default_generation_settings.n_ctx``), else ``GET /v1/models`` (vLLM's ``max_model_len``, llama.cpp's
  ``meta.n_ctx``);
  the answer path never waits for it, it only reads what has arrived (:func:`served_window`);
* otherwise the user's figure (``ChatConfig.prices[MODEL]["window"]``), else the price database's.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.parse
import urllib.request
from typing import Any

from .rates import database_window, endpoint_of, user_figure

__all__ = ["ASKS_WINDOW", "window_for", "prefetch", "served_window", "is_nearby", "forget", "wait_served"]

#: the providers whose servers are asked for their window (an OpenAI-compatible server of another kind,
#: or one of these on another machine, is never sent a request the user did not ask for)
ASKS_WINDOW = ("LlamaCppServer", "VLLM")
#: seconds one question to a nearby server may take (on its own thread)
ASK_TIMEOUT = 3.0
#: seconds after which a server is asked again (at its next request): it may have been restarted
REASK = 60.0

_SERVED: dict[str, int | None] = {}  #: base URL -> its window (None: asked, not told)
_ASKED: dict[str, float] = {}  #: base URL -> when it answered
_ASKING: set[str] = set()
_GENERATION = [0]  #: bumped by forget(): answers to questions asked before are dropped
_LOCK = threading.Lock()
_DONE = threading.Condition(_LOCK)  #: notified when a server has answered


def is_nearby(url: str) -> bool:
    """A server on this machine or a private network (where llama.cpp and vLLM run), over http(s)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https"):
        return False
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _root(url: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port``."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def prefetch(base_url: str | None, api_key: str | None = None) -> None:
    """Ask a nearby server for its window, once per base URL, on a daemon thread."""
    if not base_url or not is_nearby(base_url):
        return
    root = _root(base_url)
    with _LOCK:
        if root in _ASKING or root in _SERVED and time.monotonic() - _ASKED[root] < REASK:
            return
        _ASKING.add(root)
    threading.Thread(target=_ask, args=(root, api_key, _GENERATION[0]), name="ipyg4f-window", daemon=True).start()


def _ask(root: str, api_key: str | None, generation: int) -> None:
    window = None
    try:
        window = _props_window(_get(f"{root}/props", api_key))
        if window is None:
            window = _models_window(_get(f"{root}/v1/models", api_key))
    finally:
        with _LOCK:
            if generation == _GENERATION[0]:
                _SERVED[root], _ASKED[root] = window, time.monotonic()
                _ASKING.discard(root)
                _DONE.notify_all()


def _get(url: str, api_key: str | None) -> Any:
    """The JSON at ``url`` (None on any failure); proxies are not used for a nearby server."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=ASK_TIMEOUT) as response:
            return json.loads(response.read(1 << 20))
    except Exception:  # not such a server, down, slow, not JSON: no window from it
        return None


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _props_window(props: Any) -> int | None:
    if not isinstance(props, dict):
        return None
    settings = props.get("default_generation_settings")
    found = _positive(settings.get("n_ctx")) if isinstance(settings, dict) else None
    return found or _positive(props.get("n_ctx"))


def _models_window(models: Any) -> int | None:
    """vLLM's ``max_model_len``, else llama.cpp's ``meta.n_ctx``, of the first model listed that says."""
    data = models.get("data") if isinstance(models, dict) else None
    for entry in data if isinstance(data, list) else []:
        meta = entry.get("meta") if isinstance(entry, dict) else None
        found = _positive(entry.get("max_model_len")) if isinstance(entry, dict) else None
        if found or (isinstance(meta, dict) and (found := _positive(meta.get("n_ctx")))):
            return found
    return None


def served_window(base_url: str | None) -> int | None:
    """What the nearby server at ``base_url`` said its window is (None: not asked, not yet, or not told)."""
    return _SERVED.get(_root(base_url)) if base_url else None


def forget() -> None:
    """Ask every server again at its next request."""
    with _LOCK:
        _SERVED.clear()
        _ASKED.clear()
        _ASKING.clear()
        _GENERATION[0] += 1
        _DONE.notify_all()


def wait_served(base_url: str, timeout: float) -> bool:
    """Wait (at most ``timeout`` s) for the answer of a server being asked; True once it has been asked.
    Returns at once when nobody is asking it."""
    root = _root(base_url)
    with _DONE:
        _DONE.wait_for(lambda: root in _SERVED or root not in _ASKING, timeout)
        return root in _SERVED


def local_window() -> int | None:
    """The context the Local model is loaded with (None: not loaded in this process)."""
    from ..providers.local import engine

    loaded = engine.loaded()
    return loaded.n_ctx if loaded is not None else None


def window_for(provider: str, model: str, base_url: str | None = None) -> int | None:
    """The window of ``model`` at ``provider``, from what is known now (never waits)."""
    if provider == "Local":
        return local_window()
    url = base_url or endpoint_of(provider)
    measured = served_window(url) if url and is_nearby(url) else None
    user = user_figure(model, "window") if model else None
    return measured or (int(user) if user else None) or (database_window(provider, model, url) if model else None)
