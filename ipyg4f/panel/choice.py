"""The panel's provider and model dropdowns: their options, and the model list fetched in the background."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable

from .. import providers as registry
from ..errors import describe
from ..http import redact
from ..providers.setup import infos, listed_names
from ..runner import LoopThread

#: longest wait for a provider's model list
MODELS_TIMEOUT = 15.0
#: the model option that means "the provider's own default"
DEFAULT_MODEL = ""


def _provider_label(info: registry.ProviderInfo) -> str:
    """The provider dropdown's text: the name, and why it may not answer (listed, never hidden)."""
    if info.error:
        return f"{info.name} — unavailable"
    if not info.working:
        return f"{info.name} — not working"
    if not info.available:
        return f"{info.name} — not set up"
    return info.name


def resolved(cls: Any, model: str) -> str:
    """The model a request for ``model`` asks for (an alias -> its target), as every label names it."""
    try:
        return cls.get_model(model) or model
    except Exception:  # not a model of this provider: shown as given, refused when sent
        return model


class ProviderChoice:
    """Mixed into :class:`~ipyg4f.panel.ChatPanel`: ``self.provider``/``self.model`` dropdowns, ``self._infos``.

    ``self._fetches`` maps each model-list fetch still to be applied (a future resolved once its result
    is shown) to the fetch itself; ``self._fetch_lock`` guards it (the fetches end on the loop thread).
    """

    def _read_providers(self) -> dict[str, registry.ProviderInfo]:
        """Every provider as this shell configures it: the same "set up" as ``%chat providers`` says."""
        config = self.chat.config
        return {info.name: info for info in infos(config.provider_options,
                                                  listed_names(config.provider_options, config.fallback))}

    def _setup(self) -> Any:
        """The chosen provider as configured (``provider_options``, environment), or None."""
        try:
            return self.chat.setup(self.provider.value)
        except Exception:
            return None

    def _provider_options(self) -> list[tuple[str, str]]:
        return [(_provider_label(info), name) for name, info in self._infos.items()]

    def _canonical(self, name: str) -> str:
        """A provider name as the dropdown spells it; an unlisted one (a class path...) is added."""
        for known in self._infos:
            if known.lower() == (name or "").lower():
                name = known
                break
        else:
            self._infos[name] = infos(self.chat.config.provider_options, [name])[0]
        if list(self._provider_options()) != list(self.provider.options):
            with self._programmatic():
                value = self.provider.value
                self.provider.options = self._provider_options()
                self.provider.value = value
        return name

    def _choice_label(self) -> str:
        cls = self._provider_class()
        model = self.model.value or (resolved(cls, "") if cls is not None else "")
        return f"{self.provider.value} ({model})" if model else str(self.provider.value)

    def _provider_class(self) -> Any:
        try:
            return registry.get_provider(self.provider.value)
        except Exception:
            return None

    def _set_models(self, models: list[str], prefer: str | None) -> None:
        """Fill the model dropdown and select ``prefer`` (added when missing), else the default.

        Aliases are shown resolved (``gpt-3.5-turbo`` -> ``gpt-3.5-turbo-16k``), so the dropdown names
        the model the request asks for, as the exchange's header and footer do."""
        cls = self._provider_class()
        resolve = (lambda m: resolved(cls, m)) if cls is not None else (lambda m: m)
        default = resolve(cls.default_model) if cls is not None else ""
        names = list(dict.fromkeys([resolve(m) for m in [default, *models] if m]))
        want = resolve(prefer) if prefer else (default or DEFAULT_MODEL)
        if want and want not in names:
            names.append(want)
        options = [(m + (" (default)" if m == default else ""), m) for m in names] or \
            [("(provider default)", DEFAULT_MODEL)]
        with self._programmatic():
            self.model.options = options
            self.model.value = want if want in names else options[0][1]

    def refresh_models(self, prefer: str | None = None,
                       then: Callable[[], None] | None = None) -> concurrent.futures.Future | None:
        """Show the provider's models; fetch them (``list_models()``) when it has no fixed list.

        ``then()`` runs once the fixed list is shown, before the fetch starts (it says the new choice in
        the status line: a fetch that fails at once is said after it, not hidden by it).  The fetch runs
        on the runner's loop thread; returns its future (None when nothing is fetched).
        """
        if prefer is None:
            prefer = self.model.value
        self._models_generation += 1
        generation = self._models_generation
        cls = self._provider_class()
        info = self._infos.get(self.provider.value)
        static = cls.available_models() if cls is not None else []
        self._set_models(static, prefer)
        if then is not None:
            then()
        if info is not None and info.error:  # after then(): this is what the status line must say
            self._show_status(f"{self.provider.value} cannot be loaded: {redact(info.error)}", "error")
        setup = self._setup() if cls is not None else None
        if setup is None or static or not cls.lists_models_remotely() or not setup.configured:
            return None  # a fixed list, or not set up (no key, no base URL): asking would only fail
        name = self.provider.value
        fetch = LoopThread.get().submit(asyncio.wait_for(setup.list_models(), MODELS_TIMEOUT))
        #: resolved once the result is applied: Future.set_result wakes waiters *before* it runs the
        #: done-callbacks, so waiting on ``fetch`` itself would return before the options are set
        applied: concurrent.futures.Future = concurrent.futures.Future()

        def done(fut: concurrent.futures.Future) -> None:
            try:
                if fut.cancelled() or generation != self._models_generation or self._closed:
                    return
                exc = fut.exception()
                if exc is not None:
                    self._show_status(f"could not list the models of {name}: {redact(describe(exc))}", "warn")
                else:
                    self._set_models([str(m) for m in fut.result() or []], self.model.value)
            finally:
                with self._fetch_lock:
                    self._fetches.pop(applied, None)
                applied.set_result(None)

        with self._fetch_lock:
            self._fetches[applied] = fetch
        fetch.add_done_callback(done)
        return fetch
