"""The chat panel: pick a provider and model, chat, watch answers stream in.

``ipyg4f.ChatPanel()`` (or ``%chat panel``) shows an ipywidgets 8 panel that is
built once and driven by ``observe``/``on_click``:

* the provider and model chosen here become the defaults of later ``%%chat``
  cells (:meth:`~ipyg4f.chat.Chat.set_defaults`), and ``%chat use`` is
  reflected back here (the panel observes the ``ChatConfig`` traits);
* the transcript, the prompt box, Send/Stop and the status line are one
  anywidget (:class:`~ipyg4f.panel.view.ChatView`: a scrolling transcript that
  follows the newest text, Ctrl+Enter sends, answers streamed as changes);
* Send starts the answer on the same runner as ``%%chat``, rendered from a
  thread of its own (:class:`~ipyg4f.panel.exchange.Exchange`), so it keeps
  streaming while the kernel runs other cells, even long ones; Stop cancels it
  and keeps the partial answer, marked as stopped;
* answers are sanitised like the cell's (:mod:`ipyg4f.render.html`) and
  recorded in the same history (cell id ``panel-<uuid>`` per Send);
* **Tools** (``ChatConfig.tools``) lets the model use tools as ``%%chat --tools``
  does (:mod:`ipyg4f.agent`); the steps show as the cell's collapsed blocks, and a
  call that needs approval asks with Approve / Refuse buttons in the transcript
  (:mod:`ipyg4f.panel.approval`).  The panel's run is on a thread of its own, so
  the model's code would run beside the user's cells: the panel always asks
  before ``run_python`` (``auto`` is not offered here; ``never`` is).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import uuid
from typing import Any, Iterator

import ipywidgets as widgets

from ..chat import Chat, get_chat
from ..context.values import ContextError, attach, context_block, split_exprs
from ..errors import describe
from ..http import redact
from ..render import outcome
from ..template import user_namespace
from .choice import DEFAULT_MODEL, ProviderChoice
from .exchange import Exchange, final_turn, panel_outcome, stored_answer
from .tools import APPROVE_OPTIONS, agent_source, panel_mode
from .view import ChatView

__all__ = ["ChatPanel", "ChatView", "Exchange"]

#: the history cell id of a panel's exchange: this prefix and a uuid per Send
CELL_PREFIX = "panel-"

class ChatPanel(ProviderChoice, widgets.VBox):
    """Chat with a provider from a widget; see the module docstring and ``docs/panel.md``."""

    def __init__(self, chat: Chat | None = None, **kwargs: Any):
        self.chat = chat = chat if chat is not None else get_chat()
        self.exchanges: list[Exchange] = []
        self.current: Exchange | None = None
        self._fetches: dict[concurrent.futures.Future, concurrent.futures.Future] = {}
        self._fetch_lock = threading.Lock()
        self._transcript_lock = threading.Lock()
        self._syncing = 0
        self._models_generation = 0
        self._infos = self._read_providers()
        config = chat.config

        self.provider = widgets.Dropdown(description="Provider", options=self._provider_options(),
                                         layout=widgets.Layout(width="auto"))
        self.model = widgets.Dropdown(description="Model", options=[("(provider default)", DEFAULT_MODEL)],
                                      layout=widgets.Layout(width="auto"))
        self.refresh = widgets.Button(icon="refresh", tooltip="read the providers again, fetch the models again",
                                      layout=widgets.Layout(width="36px"))
        self.system = widgets.Textarea(value=config.system, placeholder="system prompt (optional)",
                                       description="System", rows=1, layout=widgets.Layout(width="auto", flex="1"))
        self.use_temperature = widgets.Checkbox(value=config.temperature is not None, description="Temperature",
                                                indent=False, layout=widgets.Layout(width="auto"))
        self.temperature = widgets.FloatSlider(value=config.temperature if config.temperature is not None else 0.7,
                                               min=0.0, max=2.0, step=0.05, readout_format=".2f",
                                               disabled=config.temperature is None,
                                               layout=widgets.Layout(width="220px"))
        self.with_ = widgets.Text(placeholder="df, model.coef_ (optional context)",
                                  description="With", layout=widgets.Layout(width="auto", flex="1"))
        self.with_.add_class("ipyg4f-with")
        self.tools = widgets.Text(value=", ".join(config.tools), description="Tools",
                                  placeholder="notebook, python, a function… (optional)",
                                  layout=widgets.Layout(width="auto", flex="1"))
        self.tools.add_class("ipyg4f-tools")
        self.approve = widgets.Dropdown(options=APPROVE_OPTIONS, value=panel_mode(config.approve),
                                        description="Approve", layout=widgets.Layout(width="auto"))
        self.thread = widgets.Combobox(value=config.thread, options=self._thread_options(config.thread),
                                       description="Thread", ensure_option=False, continuous_update=False,
                                       layout=widgets.Layout(width="auto"))
        self.reset = widgets.Button(description="Reset thread", icon="eraser",
                                    tooltip="archive this thread's exchanges (like %chat reset)")
        #: the transcript, the prompt box, Send/Stop and the status line
        self.view = ChatView(on_send=self.submit, on_stop=lambda: self.cancel(), on_approve=self._on_approve,
                             layout=widgets.Layout(width="100%"))

        self.provider.observe(self._on_provider, "value")
        self.model.observe(self._on_model, "value")
        self.refresh.on_click(self._on_refresh)
        self.use_temperature.observe(self._on_use_temperature, "value")
        self.thread.observe(self._on_thread, "value")
        self.reset.on_click(self._on_reset)
        config.observe(self._on_config_provider, "provider")
        config.observe(self._on_config_model, "model")

        rows = [
            widgets.HBox([self.provider, self.model, self.refresh]),
            widgets.HBox([self.system, self.use_temperature, self.temperature]),
            widgets.HBox([self.with_, self.tools, self.approve]),  # one row: the panel stays short
            widgets.HBox([self.thread, self.reset]),
            self.view,
        ]
        kwargs.setdefault("layout", widgets.Layout(padding="4px"))
        super().__init__(rows, **kwargs)
        self._closed = False
        self.add_class("ipyg4f-panel")
        with self._programmatic():
            self.provider.value = self._canonical(chat.provider_setting())
        chat.on_record.append(self._on_record)  # %%chat cells of this thread appear here too
        self._load_transcript()
        self.refresh_models(prefer=config.model, then=lambda: self._show_status(f"ready — {self._choice_label()}"))

    # -- options ------------------------------------------------------------------
    def _thread_options(self, current: str) -> list[str]:
        try:
            names = self.chat.store.threads(self.chat.notebook)
        except Exception:  # an unreadable history is shown by the first Send, not here
            names = []
        return list(dict.fromkeys([current or "default", "default", *names]))

    # -- observers: panel -> defaults ---------------------------------------------------
    @contextlib.contextmanager
    def _programmatic(self) -> Iterator[None]:
        """Changes made inside are the panel's own, not the user's: they set no defaults."""
        self._syncing += 1
        try:
            yield
        finally:
            self._syncing -= 1

    def _on_provider(self, change: dict) -> None:
        if self._syncing:
            return
        self.refresh_models(prefer="", then=self._chosen)

    def _chosen(self) -> None:
        """The provider chosen here is the default of later cells: say so (and if it may not answer)."""
        self.chat.set_defaults(self.provider.value, self.model.value)
        info = self._infos.get(self.provider.value)
        note = ""
        if info is not None:
            if not info.working:
                note = " (marked not working: it will probably fail)"
            elif not info.available:
                note = " (not set up: it needs a key or a base URL)"
        self._show_status(f"default for %%chat: {self._choice_label()}{note}", "warn" if note else "info")

    def _on_model(self, change: dict) -> None:
        if self._syncing:
            return
        self.chat.set_defaults(self.provider.value, self.model.value)
        self._show_status(f"default for %%chat: {self._choice_label()}", "info")

    def _on_refresh(self, _: Any) -> None:
        """Look at the providers again (a key may have been set since) and fetch the models."""
        self._infos = self._read_providers()
        self._canonical(self.provider.value)
        self._show_status(f"providers re-read — {self._choice_label()}", "info")
        self.refresh_models()

    def _on_use_temperature(self, change: dict) -> None:
        self.temperature.disabled = not change["new"]

    def _on_thread(self, change: dict) -> None:
        self._load_transcript()

    def _on_reset(self, _: Any) -> None:
        thread = self.thread_name
        n = self.chat.store.reset(self.chat.notebook, thread)
        self._load_transcript()
        self._show_status(f"thread {thread!r} reset ({n} exchanges archived)", "info")

    # -- observers: defaults -> panel (%chat use, %config) -----------------------------
    def _on_config_provider(self, change: dict) -> None:
        name = self._canonical(change["new"] or self.chat.provider_setting())
        if name == self.provider.value:
            return
        with self._programmatic():
            self.provider.value = name
        self.refresh_models(prefer=self.chat.config.model,
                            then=lambda: self._show_status(f"default changed: {self._choice_label()}"))

    def _on_config_model(self, change: dict) -> None:
        if change["new"] == self.model.value:
            return
        self._set_models([value for _, value in self.model.options], change["new"])
        self._show_status(f"default changed: {self._choice_label()}", "info")

    # -- chatting --------------------------------------------------------------------
    @property
    def thread_name(self) -> str:
        return (self.thread.value or "").strip() or self.chat.config.thread or "default"

    @property
    def busy(self) -> bool:
        return self.current is not None

    def submit(self, prompt: str | None = None) -> Exchange | None:
        """Send ``prompt`` (default: the prompt box's text, which is then emptied); the answer streams
        in as a task.  What Send does.  Returns the exchange, or None when nothing was sent (the reason
        is in the status line)."""
        if self.current is not None:
            self._show_status("an answer is still streaming: wait, or Stop it", "warn")
            return None
        from_box = prompt is None
        prompt = (self.view.prompt if prompt is None else prompt).strip()
        if not prompt:
            self._show_status("write a prompt first", "warn")
            return None
        temperature = self.temperature.value if self.use_temperature.value else None
        cell_id = f"{CELL_PREFIX}{uuid.uuid4().hex}"
        thread = self.thread_name
        try:
            attachments = self._attachments()  # evaluated now, like --with: the data may have changed
            request, notes = self.chat.request(prompt, cell_id=cell_id, provider=self.provider.value,
                                               model=self.model.value or None, system=self.system.value,
                                               thread=thread, temperature=temperature, attachments=attachments)
        except ContextError as exc:  # a name that is not defined, a value that cannot be read
            self._show_status(f"✖ cannot send: {exc}", "error")
            return None
        except Exception as exc:  # unknown provider/model, unreadable history: say it, keep the prompt
            self._show_status(f"✖ cannot send: {redact(describe(exc))}", "error")
            return None
        try:
            agent = agent_source(self.chat, request, self.tools.value, self.approve.value)  # checked before sending
        except ValueError as exc:
            self._show_status(f"✖ cannot send: {exc}", "error")
            return None
        exchange = Exchange(request, prompt, thread, cell_id, view=self.view,
                            rate=self.chat.config.updates_per_second, on_status=self._show_status,
                            on_done=self._finished, attachments=attachments)
        if agent is not None:
            exchange.source = agent(exchange.asker)
        sent = context_block(attachments)
        exchange.answer.notes.extend(notes)
        self.exchanges.append(exchange)
        self.current = exchange
        self.view.add(exchange.turn)
        if from_box:
            self.view.prompt = ""
        self.view.busy = True
        exchange.begin(lambda answer: self.chat.record(prompt, answer, cell_id=cell_id, thread=thread, context=sent,
                                                       **exchange.stored()),
                       lambda renderer: self.chat.saving(renderer, prompt, cell_id=cell_id, thread=thread, context=sent))
        return exchange

    def _attachments(self) -> list[Any]:
        """What the "With" field names (``df, model.coef_``), described as ``%%chat --with`` does."""
        spec = self.with_.value.strip()
        if not spec:
            return []
        shell = self.chat.shell
        namespace = user_namespace(shell) if shell is not None else {}
        return attach(split_exprs(spec), namespace, self.chat.config.context_budget)

    def _on_approve(self, id_: str, n: Any, answer: Any) -> None:
        """A click on Approve / Refuse (it reaches the kernel only while no cell runs: ipywidgets#3468)."""
        exchange = next((ex for ex in self.exchanges if ex.cell_id == id_), None)
        if exchange is None:
            self._show_status("that click came too late: its answer is no longer in this panel", "warn")
            return
        exchange.asker.answer(n, answer)

    def cancel(self) -> None:
        """Stop the streaming answer; its partial text stays, marked as stopped. What Stop does."""
        if self.current is not None:
            self._show_status("stopping…", "warn")
            self.current.stop()

    def _finished(self, exchange: Exchange) -> None:
        if self.current is exchange:
            self.current = None
        self.view.busy = False
        if exchange.thread not in self.thread.options:
            self.thread.options = self._thread_options(self.thread_name)

    def _on_record(self, thread: str, cell_id: str) -> None:
        """An exchange was stored (a ``%%chat`` cell, another panel): show the thread as history has it.
        This panel's own exchanges are already shown, ended, by their own thread."""
        if self._closed or thread != self.thread_name:
            return
        if any(ex.cell_id == cell_id for ex in self.exchanges):
            return
        self._load_transcript()

    def _load_transcript(self) -> None:
        """Show the thread as history has it (``%%chat`` cells' exchanges included), then this panel's
        answer still streaming.  Called from any thread (a cell's or another panel's record)."""
        with self._transcript_lock:  # one snapshot at a time: an older one never lands after a newer
            current = self.current  # before reading history: it may end (and be stored) meanwhile
            try:
                done = self.chat.store.exchanges(self.chat.notebook, self.thread_name)
            except Exception as exc:
                self._show_status(f"cannot read the history: {describe(exc)}", "error")
                done = []
            stored = {}
            for ex in done:
                if not any(ex.cell_id == mine.cell_id for mine in self.exchanges):
                    answer = stored_answer(ex)
                    result = panel_outcome(answer) if ex.cell_id.startswith(CELL_PREFIX) else outcome(answer)
                    stored[ex.cell_id] = final_turn(ex.cell_id, ex.prompt, answer, result)
            # this panel's own turns are read under the view's lock: an answer that ends meanwhile
            # sends its final form after this snapshot, not before it
            with self.view.lock:
                live = {ex.cell_id: ex for ex in self.exchanges if ex.thread == self.thread_name}
                turns = [live.pop(ex.cell_id).turn if ex.cell_id in live else stored[ex.cell_id] for ex in done
                         if ex.cell_id in live or ex.cell_id in stored]
                if current is not None and current.cell_id in live:  # streaming: not in history yet
                    turns.append(current.turn)
                self.view.reset(turns)

    def _show_status(self, text: str, kind: str = "info") -> None:
        self.view.say(text, kind)

    # -- waiting ------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Block until every answer and model fetch of this panel has ended and been shown (the model
        list's options and status line set); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        left = lambda: None if deadline is None else max(0.0, deadline - time.monotonic())  # noqa: E731
        for exchange in list(self.exchanges):
            if not exchange.wait(left()):
                return False
        with self._fetch_lock:
            fetches = list(self._fetches)
        done, pending = concurrent.futures.wait(fetches, timeout=left())
        return not pending

    async def join(self, timeout: float | None = None) -> None:
        """:meth:`wait`, from a coroutine (without blocking its loop); TimeoutError on timeout."""
        if not await asyncio.to_thread(self.wait, timeout):
            raise TimeoutError(f"the panel was still busy after {timeout} s")

    def close(self) -> None:
        """Stop streaming, forget the config observers, close the widgets (idempotent)."""
        if getattr(self, "_closed", True):  # closed already, or never fully built
            return super().close()
        self._closed = True
        config = self.chat.config
        config.unobserve(self._on_config_provider, "provider")
        config.unobserve(self._on_config_model, "model")
        with contextlib.suppress(ValueError):
            self.chat.on_record.remove(self._on_record)
        with self._fetch_lock:
            fetches = list(self._fetches.values())
        for future in fetches:
            future.cancel()
        for ex in self.exchanges:
            ex.stop("the panel was closed")
        children = list(self.children)
        super().close()
        for child in children:
            _close_tree(child)


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
