"""The chat panel: pick a provider and model, chat, watch answers stream in.

``ipyg4f.ChatPanel()`` (or ``%chat panel``) shows an ipywidgets 8 panel that is
built once and driven by ``observe``/``on_click``:

* the provider and model chosen here become the defaults of later ``%%chat``
  cells (:meth:`~ipyg4f.chat.Chat.set_defaults`), and ``%chat use`` is
  reflected back here (the panel observes the ``ChatConfig`` traits);
* Send starts the provider stream as a task on the kernel's running event
  loop, so the kernel stays free for other cells while the answer streams;
  Stop cancels that task and keeps the partial answer, marked as stopped;
* answers are model output, hence untrusted: every HTML update goes through
  :func:`ipyg4f.render.markdown_to_html` (raw HTML off, nh3 sanitiser);
* exchanges are recorded in the same history store as ``%%chat`` (one cell
  id ``panel-<uuid>`` per Send), so a panel thread and a notebook thread are
  the same conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import time
import uuid
from typing import Any, Iterator

import ipywidgets as widgets

from . import providers as registry
from .chat import Chat
from .errors import ProviderError, describe
from .http import redact
from .render import LIVE_MARKDOWN_LIMIT, Throttle, markdown_to_html, text_to_html
from .runner import Answer, ChatRequest, stream

__all__ = ["ChatPanel", "Exchange"]

#: how often the status line's clock moves while an answer is on its way (seconds)
STATUS_INTERVAL = 0.25
#: longest wait for a provider's model list
MODELS_TIMEOUT = 15.0
#: the model option that means "the provider's own default"
DEFAULT_MODEL = ""

_STATUS_COLOURS = {"info": "var(--jp-ui-font-color2, #666)", "busy": "var(--jp-brand-color1, #1976d2)",
                   "ok": "var(--jp-success-color1, #388e3c)", "warn": "var(--jp-warn-color1, #b36b00)",
                   "error": "var(--jp-error-color1, #c00)"}
_ANSWER_STYLE = ' style="border-left:3px solid var(--jp-brand-color2,#90caf9);padding-left:10px"'
_CURSOR = '<span class="ipyg4f-cursor">▌</span>'
_NOTES = {"interrupted": ("■ stopped", "warn"), "error": ("✖ failed", "error")}


def _provider_label(info: registry.ProviderInfo) -> str:
    """The provider dropdown's text: the name, and why it may not answer (listed, never hidden)."""
    if info.error:
        return f"{info.name} — unavailable"
    if not info.working:
        return f"{info.name} — not working"
    if not info.available:
        return f"{info.name} — not set up"
    return info.name


def _rate(chunks: int, seconds: float) -> str:
    return f"{chunks / seconds:.0f} chunks/s" if seconds > 0.05 and chunks else ""


def exchange_view() -> widgets.HTML:
    view = widgets.HTML(layout=widgets.Layout(width="100%"))
    view.add_class("ipyg4f-exchange")
    return view


def turn_html(prompt: str, label: str, status: str, body: str, has_text: bool) -> str:
    """One exchange as HTML: the prompt (escaped), who answers, the answer (already safe HTML).

    ``status`` is ``waiting``/``streaming``/``ok``/``interrupted``/``error``; the last two
    get a note under the answer.
    """
    note = ""
    if status in _NOTES:
        word, kind = _NOTES[status]
        detail = "partial answer kept" if has_text else "nothing was received"
        note = (f'<div class="ipyg4f-note" style="color:{_STATUS_COLOURS[kind]};font-size:0.9em">'
                f"{word}: {detail}</div>")
    return (f'<div class="ipyg4f-turn" data-status="{html.escape(status)}">'
            f'<div class="ipyg4f-prompt" style="white-space:pre-wrap;padding:4px 8px;border-radius:4px;'
            f'background:var(--jp-layout-color2,#eee)"><b>you</b>: {html.escape(prompt)}</div>'
            f'<div class="ipyg4f-meta" style="font-size:0.85em;color:{_STATUS_COLOURS["info"]};margin-top:4px">'
            f"{html.escape(label)}</div>"
            f'<div class="ipyg4f-answer"{_ANSWER_STYLE}>{body}</div>{note}</div>')


class Exchange:
    """One Send: the request, its answer as it accumulates, its view and its task."""

    def __init__(self, panel: "ChatPanel", request: ChatRequest, prompt: str, thread: str, cell_id: str):
        self.panel = panel
        self.request = request
        self.prompt = prompt
        self.thread = thread
        self.cell_id = cell_id
        self.answer = Answer(request.provider_name, request.model)
        self.view = exchange_view()
        self.throttle = Throttle(panel.chat.config.updates_per_second or 20.0)
        self.updates = 0
        self.started = time.monotonic()
        self.first_chunk: float | None = None
        self.ended: float | None = None
        self.stop_requested = False
        self.task: asyncio.Task | None = None
        self._dirty = False
        self._flush_timer: asyncio.TimerHandle | None = None
        self._status_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.show()

    # -- the stream -------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task:
        self._loop = loop
        self.task = loop.create_task(self.run())
        self._tick()
        return self.task

    async def run(self) -> None:
        try:
            await stream(self.request, self.on_item)
        except asyncio.CancelledError:
            self.answer.status = "interrupted"  # Stop, or the panel closed: keep what came
        except Exception as exc:  # the provider failed: said in the status line, not raised
            self.answer.error = exc
            self.answer.status = "error"
        else:
            self.answer.status = "ok"
        finally:
            self.ended = time.monotonic()
            self._cancel_timers()
            self.finish()

    def on_item(self, item: Any) -> None:
        before = self.answer.chunks
        self.answer.feed(item)
        if self.answer.chunks == before:
            return
        if self.first_chunk is None:
            self.first_chunk = time.monotonic()
        self._dirty = True
        if self.throttle.ready():
            self.flush()
        elif self._flush_timer is None and self._loop is not None:
            self._flush_timer = self._loop.call_later(self.throttle.wait_time(), self.flush)

    def flush(self) -> None:
        """Send the text received so far to the front end (at most ``updates_per_second``)."""
        self._flush_timer = None
        if not self._dirty:
            return
        self._dirty = False
        self.throttle.mark(len(self.answer.text))
        self.show()
        self.panel._show_status(self.status_text(), "busy")

    def _tick(self) -> None:
        """Keep the clock in the status line moving while waiting for chunks."""
        self._status_timer = None
        if self.ended is not None or self._loop is None:
            return
        self.panel._show_status(self.status_text(), "busy")
        self._status_timer = self._loop.call_later(STATUS_INTERVAL, self._tick)

    def _cancel_timers(self) -> None:
        for timer in (self._flush_timer, self._status_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._status_timer = None

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.stop_requested = True
            self.task.cancel()

    # -- what it looks like -----------------------------------------------------
    @property
    def label(self) -> str:
        model = self.answer.model
        return f"{self.answer.provider} ({model})" if model else self.answer.provider

    @property
    def status(self) -> str:
        """``waiting``, ``streaming``, ``ok``, ``interrupted`` or ``error``."""
        if self.answer.status == "streaming":
            return "streaming" if self.answer.chunks else "waiting"
        return self.answer.status

    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def status_text(self) -> str:
        seconds = self.elapsed()
        chunks = self.answer.chunks
        streaming_for = ((self.ended or time.monotonic()) - self.first_chunk) if self.first_chunk else 0.0
        rate = _rate(chunks, streaming_for)
        status = self.status
        if status == "waiting":
            return f"… waiting for {self.label}: {seconds:.1f} s"
        if status == "streaming":
            return f"✍ {self.label} answering… {seconds:.1f} s, {chunks} chunks" + (f", {rate}" if rate else "")
        if status == "ok":
            if not self.answer.text:
                return f"⚠ {self.label} sent an empty answer ({seconds:.1f} s)"
            return f"✔ {self.label} answered in {seconds:.1f} s ({chunks} chunks" + (f", {rate})" if rate else ")")
        kept = (f"partial answer kept ({len(self.answer.text)} characters)" if self.answer.text
                else "nothing was received")
        if status == "interrupted":
            return f"■ stopped after {seconds:.1f} s; {kept}"
        exc = self.answer.error
        hint = getattr(exc, "hint", "") if isinstance(exc, ProviderError) else ""
        message = f"✖ {self.answer.provider} failed: {redact(describe(exc))}; {kept}"
        return message + (f" — try: {hint}" if hint else "")

    def show(self) -> None:
        text = self.answer.text
        status = self.status
        if status in ("waiting", "streaming"):
            body = markdown_to_html(text) if len(text) <= LIVE_MARKDOWN_LIMIT else text_to_html(text)
            if not text:
                body = f"<em>waiting for {html.escape(self.label)}…</em>"
            elif body.endswith("</p>\n"):  # the cursor goes on the last line, not below it
                body = body[:-5] + _CURSOR + "</p>\n"
            else:
                body += _CURSOR
        else:
            body = markdown_to_html(text)
        self.view.value = turn_html(self.prompt, self.label, status, body, bool(text))
        self.updates += 1

    def finish(self) -> None:
        """The final state: rendered Markdown, a note if partial, the record in history."""
        self.show()
        kind = {"ok": "ok", "interrupted": "warn"}.get(self.answer.status, "error")
        try:
            self.panel.chat.record(self.prompt, self.answer, cell_id=self.cell_id, thread=self.thread)
        except Exception as exc:  # a full disk must not lose the answer on screen
            self.panel._show_status(f"{self.status_text()} (not saved to history: {describe(exc)})", "warn")
        else:
            self.panel._show_status(self.status_text(), kind)
        self.panel._finished(self)


class ChatPanel(widgets.VBox):
    """Chat with a provider from a widget; see the module docstring and ``docs/panel.md``."""

    def __init__(self, chat: Chat | None = None, **kwargs: Any):
        if chat is None:
            from .magics import get_chat

            chat = get_chat()
        self.chat = chat
        self.exchanges: list[Exchange] = []
        self.current: Exchange | None = None
        self._tasks: set[asyncio.Task] = set()
        self._syncing = 0
        self._models_generation = 0
        self._infos = {info.name: info for info in registry.list_providers()}
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
        self.thread = widgets.Combobox(value=config.thread, options=self._thread_options(config.thread),
                                       description="Thread", ensure_option=False, continuous_update=False,
                                       layout=widgets.Layout(width="auto"))
        self.reset = widgets.Button(description="Reset thread", icon="eraser",
                                    tooltip="archive this thread's exchanges (like %chat reset)")
        self.transcript = widgets.VBox(layout=widgets.Layout(width="100%"))
        self.transcript.add_class("ipyg4f-transcript")
        self.prompt = widgets.Textarea(placeholder="Ask something…", rows=3,
                                       layout=widgets.Layout(width="100%"))
        self.prompt.add_class("ipyg4f-prompt-input")
        self.send = widgets.Button(description="Send", icon="paper-plane", button_style="primary")
        self.send.add_class("ipyg4f-send")
        self.stop = widgets.Button(description="Stop", icon="stop", button_style="warning", disabled=True)
        self.stop.add_class("ipyg4f-stop")
        self.status = widgets.HTML()
        self.status.add_class("ipyg4f-panel-status")

        self.provider.observe(self._on_provider, "value")
        self.model.observe(self._on_model, "value")
        self.refresh.on_click(self._on_refresh)
        self.use_temperature.observe(self._on_use_temperature, "value")
        self.thread.observe(self._on_thread, "value")
        self.reset.on_click(self._on_reset)
        self.send.on_click(lambda _: self.submit())
        self.stop.on_click(lambda _: self.cancel())
        config.observe(self._on_config_provider, "provider")
        config.observe(self._on_config_model, "model")

        rows = [
            widgets.HBox([self.provider, self.model, self.refresh]),
            widgets.HBox([self.system, self.use_temperature, self.temperature]),
            widgets.HBox([self.thread, self.reset]),
            self.transcript,
            self.prompt,
            widgets.HBox([self.send, self.stop, self.status], layout=widgets.Layout(align_items="center")),
        ]
        kwargs.setdefault("layout", widgets.Layout(padding="4px"))
        super().__init__(rows, **kwargs)
        self._closed = False
        self.add_class("ipyg4f-panel")
        with self._programmatic():
            self.provider.value = self._canonical(config.resolved_provider())
        self.refresh_models(prefer=config.model)
        self._load_transcript()
        self._show_status(f"ready — {self._choice_label()}", "info")

    # -- options ------------------------------------------------------------------
    def _provider_options(self) -> list[tuple[str, str]]:
        return [(_provider_label(info), name) for name, info in self._infos.items()]

    def _canonical(self, name: str) -> str:
        """A provider name as the dropdown spells it; an unlisted one (a class path...) is added."""
        for known in self._infos:
            if known.lower() == (name or "").lower():
                name = known
                break
        else:
            self._infos[name] = registry.describe(name)
        if list(self._provider_options()) != list(self.provider.options):
            with self._programmatic():
                value = self.provider.value
                self.provider.options = self._provider_options()
                self.provider.value = value
        return name

    def _thread_options(self, current: str) -> list[str]:
        try:
            names = self.chat.store.threads(self.chat.notebook)
        except Exception:  # an unreadable history is shown by the first Send, not here
            names = []
        return list(dict.fromkeys([current or "default", "default", *names]))

    def _choice_label(self) -> str:
        model = self.model.value or getattr(self._provider_class(), "default_model", "") or ""
        return f"{self.provider.value} ({model})" if model else str(self.provider.value)

    def _provider_class(self) -> Any:
        try:
            return registry.get_provider(self.provider.value)
        except Exception:
            return None

    def _set_models(self, models: list[str], prefer: str | None) -> None:
        """Fill the model dropdown and select ``prefer`` (added when missing), else the default."""
        cls = self._provider_class()
        default = getattr(cls, "default_model", "") or "" if cls is not None else ""
        names = list(dict.fromkeys([m for m in [default, *models] if m]))
        want = prefer if prefer else (default or DEFAULT_MODEL)
        if want and want not in names:
            names.append(want)
        options = [(m + (" (default)" if m == default else ""), m) for m in names] or \
            [("(provider default)", DEFAULT_MODEL)]
        with self._programmatic():
            self.model.options = options
            self.model.value = want if want in names else options[0][1]

    def refresh_models(self, prefer: str | None = None) -> asyncio.Task | None:
        """Show the provider's models; fetch them (``list_models()``) when it has no fixed list.

        The fetch runs as a task on the running loop; returns it (None when nothing is fetched).
        """
        if prefer is None:
            prefer = self.model.value
        self._models_generation += 1
        generation = self._models_generation
        cls = self._provider_class()
        info = self._infos.get(self.provider.value)
        static = list(getattr(cls, "models", None) or []) if cls is not None else []
        self._set_models(static, prefer)
        if info is not None and info.error:
            self._show_status(f"{self.provider.value} cannot be loaded: {redact(info.error)}", "error")
        if cls is None or static or not callable(getattr(cls, "list_models", None)):
            return None
        available = getattr(cls, "is_available", None)
        if callable(available) and not available():
            return None  # not set up (no key, no base URL): asking would only fail
        loop = self._running_loop()
        if loop is None:
            return None
        name = self.provider.value

        async def fetch() -> None:
            try:
                models = await asyncio.wait_for(cls.list_models(), MODELS_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if generation == self._models_generation:
                    self._show_status(f"could not list the models of {name}: {redact(describe(exc))}", "warn")
                return
            if generation == self._models_generation:
                self._set_models([str(m) for m in models or []], self.model.value)

        return self._track(loop.create_task(fetch()))

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
        self.refresh_models(prefer="")
        self.chat.set_defaults(self.provider.value, self.model.value)
        info = self._infos.get(self.provider.value)
        note = ""
        if info is not None and not info.error:
            if not info.working:
                note = " (marked not working: it will probably fail)"
            elif not info.available:
                note = " (not set up: it needs a key or a base URL)"
        if info is None or not info.error:
            self._show_status(f"default for %%chat: {self._choice_label()}{note}", "warn" if note else "info")

    def _on_model(self, change: dict) -> None:
        if self._syncing:
            return
        self.chat.set_defaults(self.provider.value, self.model.value)
        self._show_status(f"default for %%chat: {self._choice_label()}", "info")

    def _on_refresh(self, _: Any) -> None:
        """Look at the providers again (a key may have been set since) and fetch the models."""
        self._infos = {info.name: info for info in registry.list_providers()}
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
        name = self._canonical(change["new"] or self.chat.config.resolved_provider())
        if name == self.provider.value:
            return
        with self._programmatic():
            self.provider.value = name
        self.refresh_models(prefer=self.chat.config.model)
        self._show_status(f"default changed: {self._choice_label()}", "info")

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
        """Send ``prompt`` (default: the prompt box); the answer streams in as a task. What Send does."""
        if self.current is not None:
            self._show_status("an answer is still streaming: wait, or Stop it", "warn")
            return None
        prompt = (self.prompt.value if prompt is None else prompt).strip()
        if not prompt:
            self._show_status("write a prompt first", "warn")
            return None
        loop = self._running_loop()
        if loop is None:
            self._show_status("no running event loop: the panel needs a Jupyter kernel", "error")
            return None
        temperature = self.temperature.value if self.use_temperature.value else None
        cell_id = f"panel-{uuid.uuid4().hex}"
        try:
            request = self.chat.request(prompt, cell_id=cell_id, provider=self.provider.value,
                                        model=self.model.value or None, system=self.system.value,
                                        thread=self.thread_name, temperature=temperature)
        except Exception as exc:  # unknown provider/model, unreadable history: say it, keep the prompt
            self._show_status(f"✖ cannot send: {redact(describe(exc))}", "error")
            return None
        exchange = Exchange(self, request, prompt, self.thread_name, cell_id)
        self.exchanges.append(exchange)
        self.current = exchange
        self.transcript.children = (*self.transcript.children, exchange.view)
        self.prompt.value = ""
        self.send.disabled = True
        self.stop.disabled = False
        self._track(exchange.start(loop))
        return exchange

    def cancel(self) -> None:
        """Stop the streaming answer; its partial text stays, marked as stopped. What Stop does."""
        if self.current is not None:
            self._show_status("stopping…", "warn")
            self.current.stop()

    def _finished(self, exchange: Exchange) -> None:
        if self.current is exchange:
            self.current = None
        self.send.disabled = False
        self.stop.disabled = True
        if exchange.thread not in self.thread.options:
            self.thread.options = self._thread_options(self.thread_name)

    def _load_transcript(self) -> None:
        """Show the thread's earlier exchanges (``%%chat`` cells' included), read-only."""
        try:
            done = self.chat.store.exchanges(self.chat.notebook, self.thread_name)
        except Exception as exc:
            self._show_status(f"cannot read the history: {describe(exc)}", "error")
            done = []
        views = []
        live = {ex.cell_id: ex for ex in self.exchanges}
        for ex in done:
            if ex.cell_id in live and live[ex.cell_id].thread == self.thread_name:
                views.append(live[ex.cell_id].view)
                continue
            view = exchange_view()
            label = f"{ex.provider} ({ex.model})" if ex.model else ex.provider
            view.value = turn_html(ex.prompt, label, ex.status, markdown_to_html(ex.answer), bool(ex.answer))
            views.append(view)
        if self.current is not None and self.current.thread == self.thread_name \
                and self.current.view not in views:
            views.append(self.current.view)
        old = [v for v in self.transcript.children if v not in views]
        self.transcript.children = views
        keep = {ex.view for ex in self.exchanges}
        for view in old:
            if view not in keep:
                view.close()

    def _show_status(self, text: str, kind: str = "info") -> None:
        self.status.value = (f'<span class="ipyg4f-status-text" data-kind="{kind}" '
                             f'style="color:{_STATUS_COLOURS[kind]}">{html.escape(text)}</span>')

    # -- tasks -------------------------------------------------------------------------
    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def join(self, timeout: float | None = None) -> None:
        """Wait until every answer and model fetch of this panel has ended."""
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout)

    def close(self) -> None:
        """Stop streaming, forget the config observers, close the widgets (idempotent)."""
        if getattr(self, "_closed", True):  # closed already, or never fully built
            return super().close()
        self._closed = True
        config = self.chat.config
        config.unobserve(self._on_config_provider, "provider")
        config.unobserve(self._on_config_model, "model")
        for task in list(self._tasks):
            task.cancel()
        for ex in self.exchanges:
            ex.stop()
        children = list(self.children)
        super().close()
        for child in children:
            _close_tree(child)


def _close_tree(widget: widgets.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
