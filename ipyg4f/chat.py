"""The per-shell chat state shared by ``%%chat`` and the panel.

It knows the settings, the history store, the notebook key and the id of the
cell being run, and it turns a prompt plus options into a
:class:`~ipyg4f.runner.ChatRequest` and an answer into a history record.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .config import ChatConfig
from .errors import describe

if TYPE_CHECKING:  # imported lazily: loading the extension stays cheap
    from .history import HistoryStore
    from .runner import Answer, ChatRequest


def notebook_key() -> str:
    """The notebook's path when Jupyter tells it, else this process's session."""
    return os.environ.get("JPY_SESSION_NAME") or f"session:{_SESSION}"


_SESSION = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def _warn(message: str) -> None:
    import sys

    print(f"ipyg4f: {message}", file=sys.stderr)


class Chat:
    def __init__(self, shell: Any = None, config: ChatConfig | None = None):
        self.shell = shell
        self.config = config or ChatConfig(parent=shell)
        self.notebook = notebook_key()
        self.cell_id: str | None = None
        self._store: HistoryStore | None = None

    # -- events --------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        self.cell_id = getattr(info, "cell_id", None)

    # -- history -------------------------------------------------------------
    @property
    def store(self) -> HistoryStore:
        if self._store is None:
            from .history import open_store

            self._store = open_store(self.config.resolved_history_path(), warn=_warn)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def thread_name(self, thread: str | None) -> str:
        return thread or self.config.thread

    def new_cell_id(self) -> str:
        """The running cell's id, or a fresh one (terminal IPython: each run is its own exchange)."""
        return self.cell_id or f"run-{os.urandom(16).hex()}"

    # -- requests ------------------------------------------------------------
    def resolve(self, provider: str | None, model: str | None) -> tuple[Any, str, str]:
        """(provider class, its name, model) from options and defaults; raises on unknown ones."""
        from .providers import get_provider, provider_name

        name = provider or self.config.resolved_provider()
        cls = get_provider(name)
        if not model and (not provider or provider.lower() == (self.config.provider or "").lower()):
            model = self.config.model
        get_model = getattr(cls, "get_model", None)
        resolved = get_model(model) if get_model is not None else (model or "")
        return cls, provider_name(cls), resolved

    def request(self, prompt: str, *, cell_id: str, provider: str | None = None, model: str | None = None,
                system: str | None = None, thread: str | None = None, temperature: float | None = None,
                proxy: str | None = None, timeout: float | None = None,
                extra: dict[str, Any] | None = None) -> ChatRequest:
        from .runner import ChatRequest

        cls, name, model = self.resolve(provider, model)
        messages: list[dict[str, str]] = []
        system = system if system is not None else self.config.system
        if system:
            messages.append({"role": "system", "content": system})
        for ex in self.store.context(self.notebook, self.thread_name(thread), cell_id,
                                     limit=self.config.max_context):
            messages.extend(ex.as_messages())
        messages.append({"role": "user", "content": prompt})
        kwargs: dict[str, Any] = {"timeout": timeout or self.config.timeout}
        if self.config.fallback:
            from .providers.fallback import Fallback

            if isinstance(cls, type) and issubclass(cls, Fallback):
                kwargs["providers"] = list(self.config.fallback)
        temperature = temperature if temperature is not None else self.config.temperature
        if temperature is not None:
            kwargs["temperature"] = temperature
        kwargs.update(extra or {})
        return ChatRequest(cls, name, model, messages, proxy or self.config.resolved_proxy(), kwargs)

    def record(self, prompt: str, answer: Answer, *, cell_id: str, thread: str | None = None) -> None:
        """Store the exchange; a failed re-run that produced nothing keeps the cell's earlier answer."""
        from .http import redact

        thread = self.thread_name(thread)
        if answer.status != "ok" and not answer.text:
            if self.store.get(self.notebook, thread, cell_id) is not None:
                return
        self.store.record(self.notebook, thread, cell_id, prompt, answer.text,
                          provider=answer.provider, model=answer.model, status=answer.status,
                          error=redact(describe(answer.error)) if answer.error else "")

    def set_defaults(self, provider: str | None = None, model: str | None = None) -> None:
        """Make a provider/model the default of later cells (the panel observes these traits)."""
        if provider is not None:
            self.config.provider = provider
        if model is not None:
            self.config.model = model
