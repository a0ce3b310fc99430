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
from .base import (AsyncGeneratorProvider, AsyncResult, FinishReason, Marker, Messages,
                   ProviderModelMixin, ProviderUsed, format_prompt)

__all__ = [
    "AsyncGeneratorProvider", "ProviderModelMixin", "FinishReason", "ProviderUsed", "Marker",
    "Messages", "AsyncResult", "format_prompt", "get_provider", "list_providers", "register",
    "provider_names", "ProviderInfo",
]

ENTRY_POINT_GROUP = "ipyg4f.providers"

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
    """Register a provider class at run time (usable as a decorator)."""
    if not is_provider(provider):
        raise TypeError(f"{provider!r} has no create_async_generator(model, messages, ...)")
    _registered[name or provider_name(provider)] = provider
    return provider


def unregister(name: str) -> None:
    _registered.pop(name, None)


def is_provider(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "create_async_generator", None))


def provider_name(provider: Any) -> str:
    return provider.__dict__.get("registry_name") or provider.__name__


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


def get_provider(name: Any) -> Any:
    """A provider class by name (case-insensitive), import path, or the class itself."""
    if is_provider(name):
        return name
    if not isinstance(name, str) or not name.strip():
        raise UnknownProviderError(f"not a provider: {name!r}")
    wanted = name.strip()
    for known in provider_names():
        if known.lower() == wanted.lower():
            provider = _lookup(known)
            if provider is not None:
                return provider
    if ":" in wanted or "." in wanted:  # "package.module:Class" or "package.module.Class"
        target = wanted if ":" in wanted else "{}:{}".format(*wanted.rsplit(".", 1))
        try:
            obj = _load(target)
        except (ImportError, AttributeError):
            obj = None
        if is_provider(obj):
            return obj
    g4f = _from_g4f(wanted)
    if g4f is not None:
        return g4f
    raise UnknownProviderError(
        f"unknown provider {name!r}; known providers: {', '.join(provider_names())}")


def _from_g4f(name: str) -> Any | None:
    try:
        g4f_providers = importlib.import_module("g4f.Provider")
    except Exception:  # g4f not installed, or broken: not our concern here
        return None
    for attr in dir(g4f_providers):
        if attr.lower() == name.lower():
            obj = getattr(g4f_providers, attr)
            if is_provider(obj):
                return obj
    return None


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


def describe(name: str) -> ProviderInfo:
    try:
        p = get_provider(name)
    except Exception as exc:  # a broken plugin is listed with its error, not fatal
        return ProviderInfo(name, False, False, (), "", False, False, False, False, "", error=str(exc))
    is_available = getattr(p, "is_available", None)
    return ProviderInfo(
        name=name,
        working=bool(getattr(p, "working", True)),
        available=bool(is_available() if callable(is_available) else getattr(p, "working", True)),
        models=tuple(getattr(p, "models", []) or []),
        default_model=getattr(p, "default_model", "") or "",
        supports_stream=bool(getattr(p, "supports_stream", False)),
        supports_system_message=bool(getattr(p, "supports_system_message", False)),
        supports_message_history=bool(getattr(p, "supports_message_history", False)),
        needs_auth=bool(getattr(p, "needs_auth", False)),
        label=getattr(p, "label", "") or "",
    )


def list_providers() -> list[ProviderInfo]:
    """Every provider with its flags and models (broken plugins included, with their error)."""
    return [describe(name) for name in provider_names()]
