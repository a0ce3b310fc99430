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
    from .providers.setup import Setup
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
        self._reported: set[str] = set()  #: set-up problems already printed (each is said once)
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

    def setup(self, provider: Any = None, model: str | None = None,
              cell: dict[str, Any] | None = None) -> Setup:
        """The provider as configured in this shell (:func:`~ipyg4f.providers.setup.resolve`): ``cell``
        options > ``ChatConfig.provider_options`` > environment > class default.  Never touches the network;
        a problem of ``provider_options`` is printed once."""
        from .providers import get_provider
        from .providers.setup import check_options, resolve

        config = self.config
        self.warn_once(check_options(config.provider_options))
        cls = get_provider(provider or self.provider_setting())
        default_model = config.model if (not provider or str(provider).lower() == config.provider.lower()) else ""
        defaults = {"temperature": config.temperature, **config.provider_settings(cls.name)}
        return resolve(cls, model=model, default_model=default_model, cell=cell,
                       provider_options=config.provider_options,
                       defaults={k: v for k, v in defaults.items() if v is not None})

    def warn_once(self, problems: list[str]) -> None:
        for problem in problems:
            if problem not in self._reported:
                self._reported.add(problem)
                self.warn(problem)

    def resolve(self, provider: str | None, model: str | None) -> tuple[Any, str]:
        """(provider, model) from options and defaults; raises on unknown ones. Never touches the network."""
        setup = self.setup(provider, model)
        return setup.provider, setup.model

    def fallback_setups(self, cell: dict[str, Any]) -> list[Any]:
        """The providers Fallback tries (``cell["providers"]``, else ``ChatConfig.fallback``, else every one
        set up and ready, :meth:`~ipyg4f.providers.setup.Setup.ready`), each as configured alone (its
        ``provider_options`` included) with the cell's request options (``-t``, ``--max-tokens``...); one
        that cannot be resolved is left as its name, and Fallback reports its failure in turn."""
        from .providers import provider_names
        from .providers.fallback import Fallback
        from .providers.setup import PROVIDER_SPECIFIC

        shared = {k: v for k, v in cell.items() if k not in PROVIDER_SPECIFIC and k != "providers"}
        names = list(cell.get("providers") or self.config.fallback)
        setups: list[Any] = []
        for name in names or provider_names():
            try:
                setup = self.setup(name, None, shared)
            except Exception:  # unknown provider, bad model in provider_options: a failure of that provider
                if names:
                    setups.append(name)
                continue
            if names or (not issubclass(setup.provider, Fallback) and setup.ready()):
                setups.append(setup)
        return setups

    def request(self, prompt: str, *, cell_id: str, provider: str | None = None, model: str | None = None,
                system: str | None = None, thread: str | None = None, temperature: float | None = None,
                proxy: str | None = None, timeout: float | None = None, extra: dict[str, Any] | None = None,
                attachments: list[Attachment] | None = None, budget: float | None = None,
                fresh: bool = False) -> tuple[ChatRequest, list[str]]:
        """The request, and one-line notes for the user (options the provider ignores, set-up problems).

        ``extra``: more cell options (``max_tokens``, ``base_url``, ``api_key_env`` or ``api_key``...).
        ``attachments`` go in the user's message, before the prompt (:func:`~ipyg4f.context.values.user_content`).
        ``budget``: the cell's ceiling in USD (default ``ChatConfig.budget``); ``fresh``: none of the thread's
        earlier exchanges (``--new``: the caller archives them once the request is made).
        """
        from .context.values import user_content
        from .pricing.fit import fit
        from .providers.fallback import Fallback
        from .runner import ChatRequest

        cell = {"temperature": temperature, **(extra or {})}
        cell = {k: v for k, v in cell.items() if v is not None}
        setup = self.setup(provider, model, cell)
        cls = setup.provider
        timeout = timeout or self.config.timeout
        kwargs: dict[str, Any] = {"timeout": timeout, **setup.kwargs()}
        notes = list(setup.problems)
        if issubclass(cls, Fallback):
            kwargs = {"timeout": timeout, "providers": self.fallback_setups(cell),
                      "mode": self.config.fallback_mode}
            for member in kwargs["providers"]:
                notes.extend(p for p in getattr(member, "problems", ()) if p not in notes)
        else:
            given = {"proxy": proxy, **cell}
            given.setdefault("api_key", given.pop("api_key_env", None))  # the flag of both is --api-key-env
            ignored = setup.ignored(given)
            if ignored:
                notes.insert(0, f"{cls.name} ignores {', '.join(ignored)}")
        messages: list[dict[str, Any]] = []
        system = system if system is not None else self.config.system
        if system:
            messages.append({"role": "system", "content": system})
        for ex in [] if fresh else self.store.context(self.notebook, self.thread_name(thread), cell_id,
                                                      limit=self.config.max_context):
            messages.extend(ex.as_messages(tools=cls.supports_tools))
        messages.append({"role": "user", "content": user_content(prompt, attachments or [])})
        # the thread cut to the model's window; ChatConfig.budget caps the answer (a batch's plan, whose
        # prompt is empty, has --budget of its own); OverBudget (a UsageError) when the prompt alone is over
        messages, fitted, cap = fit(messages, provider=cls, model=setup.model, base_url=setup.base_url,
                                    api_key=setup.key, prices=self.config.prices,
                                    budget=(self.config.budget if budget is None else budget) if prompt else None,
                                    max_tokens=kwargs.get("max_tokens"),
                                    members=kwargs.get("providers"))
        notes.extend(fitted)
        if cap is not None and "max_tokens" in cls.options:
            kwargs["max_tokens"] = cap
        watched = None if cls.enforces_timeout else timeout  # one that enforces it itself is not watched twice
        return ChatRequest(cls, setup.model, messages, proxy or self.config.resolved_proxy(), kwargs, watched), notes

    def record(self, prompt: str, answer: Answer, *, cell_id: str, thread: str | None = None,
               context: str = "", **stored: str) -> str:
        """Store the exchange; returns a note when it could not be stored (the answer stays on screen).

        A failed re-run that produced nothing keeps the cell's earlier answer.  ``context`` is the
        attachments' block that was sent before the prompt; ``stored``: the JSON columns of
        :class:`~ipyg4f.exchange.Exchange` (``tool_messages``, ``steps``, ``usage``, ``variants``).
        """
        from .http import redact

        thread = self.thread_name(thread)
        if "usage" not in stored:  # tokens, cost, context and window, for %chat cost and the export
            stored["usage"] = usage_json(answer)
        try:
            if answer.status != "ok" and not answer.text and not stored.get("steps"):
                if self.store.get(self.notebook, thread, cell_id) is not None:
                    return ""
            self.store.record(self.notebook, thread, cell_id, prompt, answer.text,
                              provider=answer.provider, model=answer.model, status=answer.status,
                              error=redact(describe(answer.error)) if answer.error else "",
                              reasoning=answer.reasoning, context=context, **stored)
        except Exception as exc:  # a full disk or a locked file must not lose the answer on screen
            return f"not saved to history: {redact(describe(exc))}"
        for listener in list(self.on_record):
            try:
                listener(thread, cell_id)
            except Exception as exc:  # a listener's failure is not the exchange's
                self.warn(f"could not show the exchange elsewhere: {redact(describe(exc))}")
        return ""

    def saving(self, renderer: Any, prompt: str, *, cell_id: str, thread: str | None = None,
               context: str = "") -> Any:
        """``renderer``, also saving the answer to history while it streams (``streaming``, replaced by
        :meth:`record`), so a kernel killed mid-answer keeps what had arrived."""
        from .render.saving import SavingRenderer

        thread = self.thread_name(thread)
        return SavingRenderer(renderer, lambda answer: self.store.save_partial(
            self.notebook, thread, cell_id, prompt, answer.text, provider=answer.provider, model=answer.model,
            reasoning=answer.reasoning, context=context))

    def set_defaults(self, provider: str | None = None, model: str | None = None) -> None:
        """Make a provider/model the default of later cells (the panel observes these traits)."""
        if provider is not None:
            self.config.provider = provider
        if model is not None:
            self.config.model = model


def usage_json(answer: Answer) -> str:
    """The answer's :class:`~ipyg4f.pricing.meter.Meter` as the exchange stores it ("" when nothing is known)."""
    import json

    from .pricing.meter import measure

    try:
        figures = measure(answer).as_dict()
    except Exception:  # a figure that cannot be worked out is not stored; the exchange is
        return ""
    return json.dumps(figures) if figures else ""


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
