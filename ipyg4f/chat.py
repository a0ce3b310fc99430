"""The per-shell chat state shared by ``%%chat`` and the panel, and its lookup.

:func:`get_chat` attaches one :class:`Chat` to a shell (settings, the history
store, the notebook key, the id of the cell being run).  A :class:`Chat` turns
a prompt plus options into a :class:`~ipyg4f.runner.ChatRequest` and an ended
answer into a history record.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

from .config import ChatConfig
from .errors import describe

if TYPE_CHECKING:  # imported lazily: loading the extension stays cheap
    from .context.values import Attachment
    from .history import HistoryStore
    from .context.displayed import DisplayCapture
    from .runner import Answer, ChatRequest


def notebook_key() -> str:
    """The notebook's path when Jupyter tells it, else this process's session."""
    return os.environ.get("JPY_SESSION_NAME") or f"session:{_SESSION}"


_SESSION = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def _warn(message: str) -> None:
    print(f"ipyg4f: {message}", file=sys.stderr)


def default_provider() -> str:
    """Local when ``ipyg4f[local]`` is installed, else Fallback."""
    from .providers import get_provider

    try:
        if get_provider("Local").is_available():
            return "Local"
    except Exception:  # a broken install of the extra: the fallback provider still works
        pass
    return "Fallback"


class Chat:
    def __init__(self, shell: Any = None, config: ChatConfig | None = None):
        self.shell = shell
        self.config = config or ChatConfig(parent=shell)
        self.notebook = notebook_key()
        self.cell_id: str | None = None
        self._store: HistoryStore | None = None
        #: every warning printed so far (a cell's renderer clears the cell at its end and says them again)
        self.warnings: list[str] = []
        self.images: DisplayCapture | None = None  #: the images this shell displayed (``--image last``)
        #: called as ``listener(thread, cell_id)`` after an exchange is stored (the panel follows cells)
        self.on_record: list[Any] = []

    # -- events --------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        self.cell_id = getattr(info, "cell_id", None)

    # -- history -------------------------------------------------------------
    @property
    def store(self) -> HistoryStore:
        if self._store is None:
            from .history import open_store

            self._store = open_store(self.config.resolved_history_path(), warn=self.warn)
        return self._store

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        _warn(message)

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
    def provider_setting(self) -> str:
        return self.config.provider or default_provider()

    def resolve(self, provider: str | None, model: str | None) -> tuple[Any, str]:
        """(provider, model) from options and defaults; raises on unknown ones. Never touches the network."""
        from .providers import get_provider

        cls = get_provider(provider or self.provider_setting())
        if not model and (not provider or provider.lower() == (self.config.provider or "").lower()):
            model = self.config.model
        return cls, cls.get_model(model)

    def request(self, prompt: str, *, cell_id: str, provider: str | None = None, model: str | None = None,
                system: str | None = None, thread: str | None = None, temperature: float | None = None,
                proxy: str | None = None, timeout: float | None = None, extra: dict[str, Any] | None = None,
                attachments: list[Attachment] | None = None) -> tuple[ChatRequest, list[str]]:
        """The request, and one-line notes for the user (options the provider ignores).

        ``attachments`` go in the user's message, before the prompt (:func:`~ipyg4f.context.values.user_content`).
        """
        from .context.values import user_content
        from .runner import ChatRequest

        cls, model = self.resolve(provider, model)
        messages: list[dict[str, str]] = []
        system = system if system is not None else self.config.system
        if system:
            messages.append({"role": "system", "content": system})
        for ex in self.store.context(self.notebook, self.thread_name(thread), cell_id,
                                     limit=self.config.max_context):
            messages.extend(ex.as_messages())
        messages.append({"role": "user", "content": user_content(prompt, attachments or [])})
        timeout = timeout or self.config.timeout
        kwargs: dict[str, Any] = {"timeout": timeout}
        from .providers.fallback import Fallback

        if self.config.fallback and issubclass(cls, Fallback):
            kwargs["providers"] = list(self.config.fallback)
        given = {"temperature": temperature, "proxy": proxy, **(extra or {})}
        ignored = cls.ignored_options(given)
        notes = [f"{cls.name} ignores {', '.join(ignored)}"] if ignored else []
        defaults, problems = self.provider_defaults(cls.name)
        notes.extend(problems)
        temperature = temperature if temperature is not None else self.config.temperature
        if temperature is not None:
            kwargs["temperature"] = temperature
        kwargs.update(self.config.provider_settings(cls.name))
        kwargs.update(defaults)
        kwargs.update({k: v for k, v in (extra or {}).items() if v is not None})
        return ChatRequest(cls, model, messages, proxy or self.config.resolved_proxy(), kwargs, timeout), notes

    def provider_defaults(self, name: str) -> tuple[dict[str, Any], list[str]]:
        """``ChatConfig.provider_options`` of provider ``name``, the key read from its variable; and problems."""
        from .http import register_secret

        options = next((v for k, v in self.config.provider_options.items() if k.lower() == name.lower()), None)
        if not isinstance(options, dict):
            return {}, []
        out = {k: v for k, v in options.items() if k in ("base_url", "max_tokens", "temperature") and v is not None}
        problems = []
        if variable := options.get("api_key_env"):
            key = os.environ.get(str(variable))
            if key:
                register_secret(key)
                out["api_key"] = key
            else:
                problems.append(f"ChatConfig.provider_options: ${variable} (the key of {name}) is not set")
        return out, problems

    def record(self, prompt: str, answer: Answer, *, cell_id: str, thread: str | None = None,
               context: str = "") -> str:
        """Store the exchange; returns a note when it could not be stored (the answer stays on screen).

        A failed re-run that produced nothing keeps the cell's earlier answer.  ``context`` is the
        attachments' block that was sent before the prompt.
        """
        from .http import redact

        thread = self.thread_name(thread)
        try:
            if answer.status != "ok" and not answer.text:
                if self.store.get(self.notebook, thread, cell_id) is not None:
                    return ""
            self.store.record(self.notebook, thread, cell_id, prompt, answer.text,
                              provider=answer.provider, model=answer.model, status=answer.status,
                              error=redact(describe(answer.error)) if answer.error else "",
                              reasoning=answer.reasoning, context=context)
        except Exception as exc:  # a full disk or a locked file must not lose the answer on screen
            return f"not saved to history: {redact(describe(exc))}"
        for listener in list(self.on_record):
            try:
                listener(thread, cell_id)
            except Exception as exc:  # a listener's failure is not the exchange's
                self.warn(f"could not show the exchange elsewhere: {redact(describe(exc))}")
        return ""

    def set_defaults(self, provider: str | None = None, model: str | None = None) -> None:
        """Make a provider/model the default of later cells (the panel observes these traits)."""
        if provider is not None:
            self.config.provider = provider
        if model is not None:
            self.config.model = model


# -- the state of each shell ---------------------------------------------------------------

_chats: dict[int, Chat] = {}


def get_chat(shell: Any = None) -> Chat:
    """The shell's chat state, attached on first use (settings, the ``pre_run_cell`` hook)."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if shell is None:
        raise RuntimeError("ipyg4f needs a running IPython shell")
    if id(shell) not in _chats:
        config = ChatConfig(parent=shell)
        shell.configurables.append(config)
        chat = Chat(shell, config)
        shell.events.register("pre_run_cell", chat.pre_run_cell)
        from .context.displayed import DisplayCapture

        chat.images = DisplayCapture(shell)
        chat.images.install()  # --image last; removed by detach()
        _chats[id(shell)] = chat
    return _chats[id(shell)]


def detach(shell: Any) -> None:
    """Undo :func:`get_chat` for this shell."""
    chat = _chats.pop(id(shell), None)
    if chat is None:
        return
    shell.events.unregister("pre_run_cell", chat.pre_run_cell)
    if chat.images is not None:
        chat.images.remove()
    if chat.config in shell.configurables:
        shell.configurables.remove(chat.config)
    chat.close()
