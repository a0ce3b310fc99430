"""Provider runtime and registry.

The registry is data: built-in providers are named here with the module that
defines them and imported only when first used; third-party providers come
from the entry-point group ``ipyg4f.providers``; any class with a compatible
``create_async_generator`` (gpt4free's own providers included) can be passed
directly or by import path, and ``g4f``'s providers are found by name when
``g4f`` is installed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ..errors import UnknownProviderError
from .adapter import adapt
from .base import (OPTION_FLAGS, AsyncGeneratorProvider, AsyncResult, Event, FinishReason, Messages,
                   ProviderModelMixin, ProviderUsed, Reasoning, Usage, format_prompt)

__all__ = [
    "AsyncGeneratorProvider", "ProviderModelMixin", "FinishReason", "ProviderUsed", "Reasoning", "Usage",
    "Event", "Messages", "AsyncResult", "format_prompt", "get_provider", "list_providers", "register",
    "unregister", "provider_names", "ProviderInfo", "OPTION_FLAGS", "G4F_PREFIX",
]

ENTRY_POINT_GROUP = "ipyg4f.providers"
#: how gpt4free's providers are named: ``g4f:Custom`` (``-p Custom`` and ``-p g4f.Provider.Custom`` work too)
G4F_PREFIX = "g4f:"

#: name -> "module:Class"; the order is the fallback provider's default order.
BUILTINS: dict[str, str] = {
    "Local": "ipyg4f.providers.local:Local",
    "OpenAI": "ipyg4f.providers.openai_compat:OpenAICompatible",
    "Ollama": "ipyg4f.providers.openai_compat:Ollama",
    "VLLM": "ipyg4f.providers.openai_compat:VLLM",
    "LlamaCppServer": "ipyg4f.providers.openai_compat:LlamaCppServer",
    "Pizzagpt": "ipyg4f.providers.pizzagpt:Pizzagpt",
    "ChatGptt": "ipyg4f.providers.chatgptt:ChatGptt",
    "AI365VIP": "ipyg4f.providers.ai365vip:AI365VIP",
    "Acytoo": "ipyg4f.providers.acytoo:Acytoo",
    "Fallback": "ipyg4f.providers.fallback:Fallback",
}

_registered: dict[str, Any] = {}
_entry_points: dict[str, Any] | None = None


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def _discover() -> dict[str, Any]:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def register(provider: Any, name: str | None = None) -> Any:
    """Register a provider class at run time (usable as a decorator); returns the class as given."""
    if not is_provider(provider):
        raise TypeError(f"{provider!r} has no create_async_generator(model, messages, ...)")
    name = name or adapt(provider).name
    _registered[name] = adapt(provider, name)
    return provider


def unregister(name: str) -> None:
    _registered.pop(name, None)


def is_provider(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "create_async_generator", None))


def provider_names() -> list[str]:
    """Every known name: built-ins, run-time registrations, entry points."""
    names = list(BUILTINS)
    for extra in (*_registered, *_discover()):
        if extra not in names:
            names.append(extra)
    return names


def _lookup(name: str) -> Any | None:
    if name in _registered:
        return _registered[name]
    if name in BUILTINS:
        return _load(BUILTINS[name])
    eps = _discover()
    if name in eps:
        return eps[name].load()
    return None


def get_provider(name: Any) -> type[AsyncGeneratorProvider]:
    """A provider by name (case-insensitive), import path, ``g4f:Name``, or the class itself.

    Whatever is found is returned with our interface (:func:`~ipyg4f.providers.adapter.adapt`),
    and its ``name`` resolves to the same provider later.
    """
    if is_provider(name):
        return adapt(name)
    if not isinstance(name, str) or not name.strip():
        raise UnknownProviderError(f"not a provider: {name!r}")
    wanted = name.strip()
    for known in provider_names():
        if known.lower() == wanted.lower():
            provider = _lookup(known)
            if provider is not None:
                return adapt(provider, known)
    g4f_name = _g4f_name(wanted)
    if g4f_name is not None:
        return _from_g4f(g4f_name)
    if ":" in wanted or "." in wanted:  # "package.module:Class" or "package.module.Class"
        target = wanted if ":" in wanted else "{}:{}".format(*wanted.rsplit(".", 1))
        try:
            obj = _load(target)
        except Exception:  # ImportError, AttributeError, or whatever a broken module raises
            obj = None
        if is_provider(obj):  # named by its path, unless its own name finds it too
            own = adapt(obj)
            return own if _lookup(own.name) is obj else adapt(obj, wanted)
    else:
        try:
            return _from_g4f(wanted)
        except UnknownProviderError as exc:
            if getattr(exc, "listed", False):
                raise
    raise UnknownProviderError(_unknown(wanted))


def _unknown(wanted: str) -> str:
    """``unknown provider 'OpenAl' (did you mean 'OpenAI'?)``, the names we know, and gpt4free's when it is there."""
    import difflib

    ours = provider_names()
    try:
        g4f_names = [G4F_PREFIX + n for n in _g4f_candidates(importlib.import_module("g4f.Provider"))
                     if n[:1].isupper()]
    except Exception:  # not installed (or broken): its names are not offered
        g4f_names = None
    # compared without the g4f: prefix, case ignored; ours win a tie
    bare = {n.lower().removeprefix(G4F_PREFIX): n for n in g4f_names or []} | {n.lower(): n for n in ours}
    close = difflib.get_close_matches(wanted.lower(), list(bare), n=1, cutoff=0.75)
    guess = f" (did you mean {bare[close[0]]!r}?)" if close else ""
    more = (" (and gpt4free's as g4f:Name)" if g4f_names is not None
            else " (gpt4free's too, as g4f:Name, once it is installed: pip install g4f)")
    return f"unknown provider {wanted!r}{guess}; known providers: {', '.join(ours)}{more}"


def _g4f_name(wanted: str) -> str | None:
    """``Custom`` from ``g4f:Custom`` or ``g4f.Provider.Custom``; None for other names."""
    lowered = wanted.lower()
    for prefix in (G4F_PREFIX, "g4f.provider.", "g4f.provider:"):
        if lowered.startswith(prefix):
            return wanted[len(prefix):]
    return None


def _from_g4f(name: str) -> type[AsyncGeneratorProvider]:
    """gpt4free's provider ``name`` (case-insensitive), adapted; a one-line error when it cannot be had."""
    try:
        g4f_providers = importlib.import_module("g4f.Provider")
    except ImportError:
        raise UnknownProviderError(f"unknown provider {name!r}: gpt4free is not installed (pip install g4f)") from None
    except Exception as exc:  # a broken g4f install
        raise UnknownProviderError(f"gpt4free could not be loaded: {type(exc).__name__}: {exc}") from None
    found = _g4f_attr(g4f_providers, name)
    spelled = None
    if found is None:  # other spellings: g4f's names are case-sensitive
        spelled = next((n for n in _g4f_candidates(g4f_providers) if n.lower() == name.lower()), None)
        found = _g4f_attr(g4f_providers, spelled) if spelled else None
    if not is_provider(found):
        if spelled:
            error = UnknownProviderError(f"gpt4free lists {spelled!r} but cannot load it (this g4f install lacks "
                                         "its module)")
            error.listed = True
            raise error
        raise UnknownProviderError(f"gpt4free has no provider {name!r}")
    return adapt(found, G4F_PREFIX + found.__name__)


def _g4f_attr(module: Any, name: str) -> Any:
    """``module.<name>``; None when g4f cannot load it (its lazy loader raises anything)."""
    try:
        return getattr(module, name)
    except Exception:
        return None


#: gpt4free classes its lazy loader knows but does not list (8.8.6)
_G4F_UNLISTED = ("Custom",)


def _g4f_candidates(module: Any) -> list[str]:
    """gpt4free's provider names: its lazy loader's lists (``__map__`` is empty as a dict), then the module's."""
    loader = getattr(module, "ProviderLoader", None)
    names: list[str] = []
    for listed in (getattr(loader, "names", None), getattr(loader, "extra", None), _G4F_UNLISTED):
        if isinstance(listed, (list, tuple)):
            names.extend(str(n) for n in listed)
    names.extend(n for n in dir(module) if not n.startswith("_"))
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    working: bool
    available: bool
    models: tuple[str, ...]
    default_model: str
    supports_stream: bool
    supports_system_message: bool
    supports_message_history: bool
    needs_auth: bool
    label: str
    error: str = ""
    configured: bool = False
    endpoint: str | None = None
    supports_tools: bool = False


def describe(name: str, *, probe: bool = True) -> ProviderInfo:
    """What the registry knows of a provider; ``probe=False``: no network at all (``available`` is then
    ``configured``: a keyless server on this machine is not asked whether it runs)."""
    try:
        p = get_provider(name)
    except Exception as exc:  # a broken plugin is listed with its error, not fatal
        return ProviderInfo(name, False, False, (), "", False, False, False, False, "", error=str(exc))
    return ProviderInfo(
        name=p.name, working=bool(p.working), available=bool(p.is_available() if probe else p.is_configured()),
        models=tuple(p.available_models()), default_model=p.default_model,
        supports_stream=p.supports_stream, supports_system_message=p.supports_system_message,
        supports_message_history=p.supports_message_history, needs_auth=p.needs_auth, label=p.label,
        configured=bool(p.is_configured()), endpoint=p.endpoint(), supports_tools=bool(p.supports_tools),
    )


def list_providers(*, probe: bool = True) -> list[ProviderInfo]:
    """Every provider with its flags and models (broken plugins included, with their error)."""
    return [describe(name, probe=probe) for name in provider_names()]
