"""One provider as configured: class, model, base URL, key (and where each came from), options.

Every entry point (``%%chat``, each provider inside Fallback, ``%chat models``,
``%chat providers [--check]``, ``%chat use``, the panel, batches) resolves a
provider here, once, so a setting means the same everywhere and every note or
hint can say where a value came from.  Per setting, the first that gives it wins:

1. the cell's option (``-m``, ``--base-url``, ``--api-key-env``, ``-t``, ``--max-tokens``...);
2. ``ChatConfig.provider_options``, under any spelling ``-p`` takes (``Custom``,
   ``g4f:Custom``, ``g4f.Provider.Custom``, any case);
3. the environment (``base_url_env``, ``api_key_env`` of the class) and the
   shell-wide defaults (``ChatConfig.temperature``, ``ChatConfig.local_*``);
4. the class default.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ProviderError, describe as describe_error
from . import ProviderInfo, get_provider, provider_names

__all__ = ["Setup", "SetupError", "resolve", "check_options", "infos", "listed_names", "tools_problem",
           "OPTION_KEYS", "PROVIDER_SPECIFIC"]

#: what ``ChatConfig.provider_options`` may set for one provider
OPTION_KEYS = ("model", "base_url", "api_key_env", "temperature", "max_tokens", "top_p", "stop", "seed")
#: cell options that name one provider's own settings (not request parameters shared by all)
PROVIDER_SPECIFIC = ("model", "base_url", "api_key_env", "api_key")
#: where a value came from
CELL, CONFIG, DEFAULT = "cell", "ChatConfig.provider_options", "default"


class SetupError(ProviderError, ValueError):
    """A combination of settings that cannot work (a user error: the cell says so before sending)."""


@dataclass(frozen=True)
class Setup:
    """``provider`` as configured; ``*_from`` say where a value came from (``cell``,
    ``ChatConfig.provider_options``, ``$VARIABLE`` or ``default``)."""

    provider: Any
    model: str = ""
    base_url: str | None = None
    base_url_from: str = DEFAULT
    key_env: str | None = None
    key_from: str = DEFAULT
    key: str | None = field(default=None, repr=False, compare=False)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.provider.name

    @property
    def takes_base_url(self) -> bool:
        return "base_url" in self.provider.options

    @property
    def endpoint(self) -> str | None:
        """Where requests go (what ``--check`` probes); None: it runs in this process."""
        if self.takes_base_url and self.base_url:
            return self.base_url
        return self.provider.endpoint()

    @property
    def configured(self) -> bool:
        """Set up, judged without network: what ``%chat providers`` and the panel's dropdown both show."""
        p = self.provider
        if not p.working:
            return False
        if not p.needs_auth:
            return bool(p.is_configured())
        return bool(self.key) or self.base_url_from != DEFAULT

    def ready(self) -> bool:
        """Worth trying now (Fallback's own choice): set up, and a keyless server on this machine listens."""
        if not self.configured:
            return False
        if self.provider.needs_auth:
            return True
        if self.takes_base_url and self.endpoint:
            from .openai_compat import listening

            return listening(self.endpoint)
        return bool(self.provider.is_available())

    def missing_key(self) -> str:
        """One line when the provider needs a key and none was found, naming the variable to set."""
        if self.configured or not self.provider.needs_auth:
            return ""
        where = f"set {self.key_env}" if self.key_env else "name the variable holding it with --api-key-env"
        return f"{self.name} needs an API key: {where} (nothing is sent until then)"

    def key_hint(self) -> str:
        return self.provider.key_hint(self.key_env)

    def kwargs(self) -> dict[str, Any]:
        """The keywords of ``create_async_generator`` (and ``list_models``) for this set-up."""
        out = dict(self.options)
        if self.base_url and (self.takes_base_url or self.base_url_from != DEFAULT):
            out["base_url"] = self.base_url
        if self.key:
            out["api_key"] = self.key
        if self.key_env and self.provider.api_key_env is not None:
            out["api_key_env"] = self.key_env  # our own classes read the key there and name it in hints
        return out

    @property
    def takes_tools(self) -> bool:
        """It takes ``tools=`` and hands tool calls back (``supports_tools``)."""
        return bool(getattr(self.provider, "supports_tools", False))

    def ignored(self, given: Mapping[str, Any]) -> list[str]:
        """How the user spelled each cell option in ``given`` this provider ignores."""
        return self.provider.ignored_options(given)

    async def list_models(self) -> list[str]:
        """The provider's models, fetched from where this set-up points (its base URL, with its key)."""
        keys = ("base_url", "api_key", "api_key_env", "proxy")
        return await self.provider.list_models(**{k: v for k, v in self.kwargs().items() if k in keys})

    def info(self) -> ProviderInfo:
        p = self.provider
        return ProviderInfo(
            name=p.name, working=bool(p.working), available=self.configured, models=tuple(p.available_models()),
            default_model=p.default_model, supports_stream=p.supports_stream,
            supports_system_message=p.supports_system_message, supports_message_history=p.supports_message_history,
            needs_auth=p.needs_auth, label=p.label, configured=self.configured, endpoint=self.endpoint,
            supports_tools=self.takes_tools)


# -- resolving ------------------------------------------------------------------------------------

_CANONICAL: dict[str, str] = {}


def canonical(spelling: Any) -> str | None:
    """The provider name ``spelling`` stands for, as ``-p`` reads it (None: no provider)."""
    key = str(spelling)
    if key not in _CANONICAL:
        try:
            _CANONICAL[key] = get_provider(key).name
        except Exception:  # unknown, or a broken plugin: no provider to configure
            return None
    return _CANONICAL[key]


def configured_options(name: str, provider_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``provider_options`` of provider ``name``, under whichever spelling the user wrote."""
    for key, value in (provider_options or {}).items():
        if str(key).lower() == name.lower() or (canonical(key) or "").lower() == name.lower():
            return dict(value) if isinstance(value, Mapping) else {}
    return {}


def resolve(provider: Any, *, model: str | None = None, default_model: str | None = None,
            cell: Mapping[str, Any] | None = None, provider_options: Mapping[str, Any] | None = None,
            defaults: Mapping[str, Any] | None = None) -> Setup:
    """``provider`` (a name in any spelling, or a class) as configured; see the module docstring.

    ``cell``: the cell's options (``base_url``, ``api_key_env`` or ``api_key``, ``temperature``,
    ``max_tokens``...; None values are unset).  ``default_model``: the shell's default model.
    ``defaults``: shell-wide request defaults (``temperature``, Local's ``n_ctx``...).
    Raises :class:`~ipyg4f.errors.UnknownProviderError` and
    :class:`~ipyg4f.errors.ModelNotFoundError`; never touches the network.
    """
    cls = get_provider(provider)
    cell = {k: v for k, v in (cell or {}).items() if v is not None}
    _refuse_per_provider_options(cls, model, cell)
    configured = configured_options(cls.name, provider_options)
    problems: list[str] = []

    chosen = model or configured.get("model") or default_model or None
    resolved_model = cls.get_model(chosen)

    if cell.get("base_url"):
        base_url, base_from = str(cell["base_url"]), CELL
    elif configured.get("base_url"):
        base_url, base_from = str(configured["base_url"]), CONFIG
    elif cls.base_url_env and not cls.base_url and os.environ.get(cls.base_url_env):
        base_url, base_from = os.environ[cls.base_url_env], f"${cls.base_url_env}"
    else:
        base_url, base_from = cls.default_base_url(), DEFAULT
    base_url = base_url.rstrip("/") if base_url else None

    key = cell.get("api_key")
    if cell.get("api_key_env") or key:
        key_env, key_from = cell.get("api_key_env"), CELL
    elif configured.get("api_key_env"):
        key_env, key_from = str(configured["api_key_env"]), CONFIG
    else:
        key_env, key_from = cls.api_key_env, DEFAULT
    if not key and key_env:
        key = os.environ.get(key_env) or None
        if key is None and key_from == CONFIG:
            problems.append(f"ChatConfig.provider_options: ${key_env} (the key of {cls.name}) is not set")
    if key:
        from ..http import register_secret

        register_secret(key)

    options = dict(defaults or {})
    options.update({k: v for k, v in configured.items() if k not in PROVIDER_SPECIFIC and v is not None})
    options.update({k: v for k, v in cell.items() if k not in PROVIDER_SPECIFIC})
    return Setup(cls, resolved_model, base_url, base_from, key_env, key_from, key, options, tuple(problems))


def _refuse_per_provider_options(cls: Any, model: str | None, cell: Mapping[str, Any]) -> None:
    """Fallback tries several providers: a model, base URL or key of the cell would mean something
    different to each, so those are set per provider, in ``provider_options``."""
    own = [k for k in PROVIDER_SPECIFIC if cell.get(k) or (k == "model" and model)]
    if own and cls.combines:
        flags = {"model": "-m", "base_url": "--base-url"}
        raise SetupError(f"{', '.join(dict.fromkeys(flags.get(k, '--api-key-env') for k in own))} with -p Fallback: "
                         "each provider it tries has its own; set them in ChatConfig.provider_options, "
                         'e.g. {"g4f:Custom": {"base_url": "...", "model": "..."}}')


def tools_problem(setup: Setup) -> str | None:
    """One line when ``--tools`` cannot work with ``setup``'s provider (None: it takes tools).

    :meth:`Setup.ignored` does not see ``tools`` (it is no request option of
    :data:`~ipyg4f.providers.base.OPTION_FLAGS`, and a provider without tools takes
    ``**kwargs`` and drops it silently): the model would answer without ever calling one.
    """
    if setup.takes_tools:
        return None
    if setup.provider.combines:
        return (f"--tools with -p {setup.name}: it may answer with a provider that takes no tools; "
                "name one that does with -p (OpenAI, Ollama, VLLM, LlamaCppServer, Local, g4f:Custom)")
    return (f"{setup.name} takes no tools (--tools): use a provider that does, e.g. -p OpenAI --base-url URL, "
            "Ollama, VLLM, LlamaCppServer, Local or g4f:Custom")


# -- checking ChatConfig.provider_options ---------------------------------------------------------

def _close(word: str, candidates: list[str]) -> str:
    lowered = {c.lower(): c for c in candidates}
    found = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[found[0]]!r}?)" if found else ""


def _spellings() -> list[str]:
    """Names worth suggesting: ours, and gpt4free's when it is loaded already (never imported here)."""
    from . import _g4f_candidates

    g4f = sys.modules.get("g4f.Provider")
    return [*provider_names(), *(_g4f_candidates(g4f) if g4f is not None else [])]


def check_options(provider_options: Mapping[str, Any] | None) -> list[str]:
    """One line per problem of ``ChatConfig.provider_options``: a key naming no provider, an unknown option."""
    problems = []
    for key, value in (provider_options or {}).items():
        if canonical(key) is None:
            problems.append(f"ChatConfig.provider_options: {key!r} names no provider{_close(str(key), _spellings())}; "
                            "write it as -p takes it: OpenAI, Custom, g4f:Custom or g4f.Provider.Custom")
        elif not isinstance(value, Mapping):
            problems.append(f"ChatConfig.provider_options[{key!r}] is not a dict of options "
                            f"({', '.join(OPTION_KEYS)})")
        else:
            for option in value:
                if option not in OPTION_KEYS:
                    problems.append(f"ChatConfig.provider_options[{key!r}]: unknown option {option!r}"
                                    f"{_close(str(option), list(OPTION_KEYS))}; known: {', '.join(OPTION_KEYS)}")
    return problems


def listed_names(provider_options: Mapping[str, Any] | None = None, fallback: Any = ()) -> list[str]:
    """Every registered provider, then those the settings name besides (``g4f:Custom`` in
    ``ChatConfig.fallback`` or ``provider_options``), each once: what ``%chat providers`` and the panel list."""
    names = provider_names()
    for extra in [*(fallback or ()), *(provider_options or {})]:
        name = canonical(extra)
        if name and name.lower() not in {n.lower() for n in names}:
            names.append(name)
    return names


def infos(provider_options: Mapping[str, Any] | None = None, names: list[str] | None = None) -> list[ProviderInfo]:
    """Every provider (or ``names``) as configured, without network; a broken one is listed with its error."""
    out = []
    for name in names if names is not None else provider_names():
        try:
            out.append(resolve(name, provider_options=provider_options).info())
        except Exception as exc:
            out.append(ProviderInfo(name, False, False, (), "", False, False, False, False, "",
                                    error=describe_error(exc)))
    return out
