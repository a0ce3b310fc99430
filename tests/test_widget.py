"""The chat panel, driven in-process: ``Button.click()`` and widget state against the
local protocol server, inside pytest's running asyncio loop (like a kernel's).

Nothing here sleeps to synchronise: tests await the exchange's run, or an
event set by a trait observer, each with a generous timeout; a state that only
lasts a moment ("waiting", "still streaming") is held there by a stall of the
protocol server or a :class:`~fakes.Gate` of the scripted provider until the
test has seen it.  No assertion depends on the machine's speed (the one bound
that reads the clock, the update rate's, only loosens on a slow machine).
"""

from __future__ import annotations

import asyncio
import json
import threading
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest

from ipyg4f import commands
from ipyg4f.chat import Chat
from ipyg4f.config import ChatConfig
from ipyg4f.providers import AsyncGeneratorProvider, FinishReason, provider_names, register, unregister
from ipyg4f.panel import ChatPanel
from ipyg4f.runner import Answer, LoopThread

from fakes import Gate

#: a "must not hang" guard, generous: the suite runs beside CPU hogs
TIMEOUT = 30.0


class Front:
    """One view of a panel's :class:`~ipyg4f.panel.view.ChatView`, kept from the messages the kernel
    sends it, as ``panel.js`` keeps its DOM: it asks for a snapshot (``sync``) when it appears, then
    applies ``add`` / ``append`` / ``tail`` / ``final`` / ``reset``.  Counts every byte the widget sends
    (custom messages and trait updates alike)."""

    def __init__(self, view, name="test-view"):
        self.view, self.name = view, name
        self.turns: dict[str, dict] = {}
        self.order: list[str] = []
        self.ops: list[dict] = []
        self.states: list[str] = []  # every distinct (status|html) of the newest turn, as in the browser test
        self.bytes = 0
        self.box = ""  # the prompt box's text (as typed: synced to the kernel or not)
        self.ready = False
        self.changed = threading.Condition()
        send = view._send

        def counting(msg, buffers=None):
            self.bytes += len(json.dumps(msg))
            if msg.get("method") == "custom":
                self.receive(msg["content"])
            return send(msg, buffers)

        view._send = counting
        view._handle_custom_msg({"event": "sync", "view": name}, [])

    def receive(self, msg):
        with self.changed:
            self.ops.append(msg)
            op = msg["op"]
            if op == "sent":  # as panel.js does: empty the box if it still holds what was sent, and sync it
                if self.box.startswith(msg["prompt"]):
                    self.box = self.box[len(msg["prompt"]):]
                    self.view.set_state({"prompt": self.box})
            elif op == "reset":
                if msg.get("view") and msg["view"] != self.name:
                    return
                self.ready = True
                self.turns = {t["id"]: self._turn(t) for t in msg["turns"]}
                self.order = [t["id"] for t in msg["turns"]]
            elif not self.ready:
                return
            elif op == "add":
                self.turns[msg["turn"]["id"]] = self._turn(msg["turn"])
                self.order.append(msg["turn"]["id"])
            elif op in ("final", "turn"):
                if msg["turn"]["id"] in self.turns:
                    self.turns[msg["turn"]["id"]] = self._turn(msg["turn"])
            elif op == "ask":
                if msg["id"] in self.turns:
                    self.turns[msg["id"]]["ask"] = msg["ask"]
            elif op in ("append", "tail"):
                turn = self.turns.get(msg["id"])
                if turn is None:
                    return
                turn["status"] = "streaming"
                done, tail = turn["parts"].setdefault(msg["part"], ["", ""])
                turn["parts"][msg["part"]] = [done + msg["html"], tail] if op == "append" else [done, msg["html"]]
            if self.order:
                last = self.order[-1]
                state = f"{self.turns[last]['status']}|{self.html(last)}"
                if not self.states or self.states[-1] != state:
                    self.states.append(state)
            self.changed.notify_all()

    @staticmethod
    def _turn(t):
        parts = {name: [p["done"], p["tail"]] for name, p in t.get("parts", {}).items()}
        return {**t, "parts": parts}

    def html(self, id_=None):
        """What the view shows of a turn (default: the newest): the answer, then the notes under it."""
        turn = self.turns[id_ or self.order[-1]]
        if "body" in turn:
            return turn["body"] + turn["after"]
        parts = turn["parts"]
        return turn["context"] + turn.get("steps", "") + "".join("".join(parts[p]) for p in ("thinking", "answer") if p in parts)

    def turn(self, id_=None):
        return self.turns[id_ or self.order[-1]]

    def wait_for(self, predicate, timeout=TIMEOUT):
        """Block until ``predicate(self)`` holds (the change may come from any thread)."""
        with self.changed:
            assert self.changed.wait_for(lambda: predicate(self), timeout), f"the view never got there: {self.states[-3:]}"

    async def until(self, predicate, timeout=TIMEOUT):
        await asyncio.to_thread(self.wait_for, predicate, timeout)


@pytest.fixture
def chat(tmp_path, monkeypatch, protocol_server):
    monkeypatch.setenv("OPENAI_BASE_URL", f"{protocol_server.base_url}/v1")
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    c = Chat(None, ChatConfig(provider="OpenAI", history_path=str(tmp_path / "history.sqlite3")))
    yield c
    c.close()


@pytest.fixture
async def make_panel(chat):
    panels = []

    def make(**kwargs):
        panel = ChatPanel(chat=chat, **kwargs)
        panel.front = Front(panel.view)
        panels.append(panel)
        return panel

    yield make
    for panel in panels:
        panel.close()
    for panel in panels:
        await panel.join(timeout=TIMEOUT)


@pytest.fixture
async def panel(make_panel):
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)  # the model list of the OpenAI-compatible default
    return panel


async def until(widget, name, predicate, timeout=TIMEOUT):
    """Wait (without polling) until ``predicate(widget.<name>)`` holds; the change may come from any thread."""
    event = threading.Event()

    def check(change):
        if predicate(change["new"]):
            event.set()

    widget.observe(check, name)
    try:
        if not predicate(getattr(widget, name)):
            assert await asyncio.to_thread(event.wait, timeout), f"{name} never matched"
    finally:
        widget.unobserve(check, name)


async def ended(*exchanges, timeout=TIMEOUT):
    """Wait until each exchange's run (and its recording) is over."""
    for exchange in exchanges:
        assert await asyncio.to_thread(exchange.wait, timeout), "the answer did not end in time"


def ask(panel, prompt):
    """What the front end does on Send (or Ctrl+Enter): the prompt box's text, then the event.
    Returns the exchange that Send started (None when nothing was sent), taken from the send itself:
    ``panel.current`` may already be None again when a fast answer has ended."""
    before = len(panel.exchanges)
    panel.view.set_state({"prompt": prompt})
    panel.front.box = prompt
    panel.view._handle_custom_msg({"event": "send", "prompt": prompt}, [])
    return panel.exchanges[-1] if len(panel.exchanges) > before else None


def hold_answers(protocol_server):
    """Chat answers wait before their first byte until ``protocol_server.release_stall()``."""
    protocol_server.fault, protocol_server.fault_after = "stall", 0
    protocol_server.fault_path = "/v1/chat/completions"  # the model list still answers


async def let_go(protocol_server, n=1):
    """Wait until ``n`` answers are held by the server, then let them go on."""
    assert await asyncio.to_thread(protocol_server.wait_stalled, n, TIMEOUT)
    protocol_server.fault = None
    protocol_server.release_stall()


def press_stop(panel):
    panel.view._handle_custom_msg({"event": "stop"}, [])


def status_text(panel) -> str:
    return panel.view.status


# --- choosing provider and model -----------------------------------------------------------

async def test_every_provider_is_listed_and_the_unusable_ones_are_marked(panel):
    values = [value for _, value in panel.provider.options]
    assert values == provider_names()
    labels = dict((value, label) for label, value in panel.provider.options)
    assert labels["Acytoo"] == "Acytoo — not working"   # listed, not hidden
    assert labels["Pizzagpt"] == "Pizzagpt"
    assert panel.provider.value == "OpenAI"


async def test_models_of_an_openai_compatible_provider_are_fetched_without_blocking(
        make_panel, protocol_server):
    protocol_server.models = ["gpt-4o-mini", "served-a", "served-b"]
    protocol_server.fault, protocol_server.fault_path = "stall", "/v1/models"  # the list is slow to come
    panel = make_panel()
    # the dropdown is usable at once, with the provider's default; the fetch runs in the background
    assert await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini"]
    protocol_server.fault = None
    protocol_server.release_stall()
    await panel.join(timeout=TIMEOUT)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini", "served-a", "served-b"]
    assert "/v1/models" in protocol_server.paths()

    panel.provider.value = "ChatGptt"  # a fixed model list: shown at once, nothing fetched
    assert [v for _, v in panel.model.options] == ["gpt-4o", "gpt-4", "gpt-4o-mini"]
    assert panel.model.value == "gpt-4o"
    assert protocol_server.paths().count("/v1/models") == 1

    panel.model.value = "gpt-4"
    panel.provider.value = "OpenAI"
    await panel.join(timeout=TIMEOUT)
    assert protocol_server.paths().count("/v1/models") == 2
    assert panel.model.value == "gpt-4o-mini"


async def test_a_failing_model_list_is_said_in_the_status_line(make_panel, protocol_server):
    protocol_server.fault = "http500"
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)
    assert "could not list the models of OpenAI" in status_text(panel)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini"]  # the default stays usable


async def test_a_provider_that_is_not_set_up_is_marked_and_not_asked(make_panel, protocol_server,
                                                                      monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL")  # no key, no base URL: asking would only fail
    panel = make_panel()
    labels = {value: label for label, value in panel.provider.options}
    assert labels["OpenAI"] == "OpenAI — not set up"
    assert panel.refresh_models() is None

    monkeypatch.setenv("OPENAI_BASE_URL", f"{protocol_server.base_url}/v1")
    panel.refresh.click()  # re-reads the providers, then fetches the models
    await panel.join(timeout=TIMEOUT)
    labels = {value: label for label, value in panel.provider.options}
    assert labels["OpenAI"] == "OpenAI" and panel.provider.value == "OpenAI"
    assert protocol_server.paths() == ["/v1/models"]
    assert "test-model" in [v for _, v in panel.model.options]


async def test_the_panel_choice_becomes_the_default_of_later_cells(panel, chat):
    panel.provider.value = "AI365VIP"
    # the dropdown names the model a request asks for: the default's alias resolved, as in the header
    assert panel.model.options[0] == ("gpt-3.5-turbo-16k (default)", "gpt-3.5-turbo-16k")
    assert [v for _, v in panel.model.options] == ["gpt-3.5-turbo-16k", "gpt-4o"]
    assert (chat.config.provider, chat.config.model) == ("AI365VIP", "gpt-3.5-turbo-16k")
    panel.model.value = "gpt-4o"
    assert chat.config.model == "gpt-4o"
    cls, model = chat.resolve(None, None)  # what a %%chat cell without -p/-m uses
    assert (cls.name, model) == ("AI365VIP", "gpt-4o")


async def test_the_header_names_the_model_the_dropdown_shows(panel, chat):
    """One alias resolution: the dropdown, the status line and the exchange's header agree."""
    commands.cmd_use(chat, SimpleNamespace(provider="AI365VIP", model="gpt-3.5-turbo"))  # an alias
    assert panel.model.value == "gpt-3.5-turbo-16k"
    assert [v for _, v in panel.model.options] == ["gpt-3.5-turbo-16k", "gpt-4o"]  # no duplicate entry
    label = dict((v, k) for k, v in panel.model.options)[panel.model.value]
    request, _ = chat.request("hi", cell_id="panel-x", provider=panel.provider.value, model=panel.model.value)
    from ipyg4f.panel.exchange import Exchange

    exchange = Exchange(request, "hi", "default", "panel-x", view=panel.view, on_status=lambda *a: None,
                        on_done=lambda e: None)
    assert exchange.label == "AI365VIP (gpt-3.5-turbo-16k)" == f"AI365VIP ({label.removesuffix(' (default)')})"
    assert "AI365VIP (gpt-3.5-turbo-16k)" in status_text(panel)


async def test_chat_use_is_reflected_in_the_panel(panel, chat, capsys):
    commands.cmd_use(chat, SimpleNamespace(provider="chatgptt", model="gpt-4"))
    assert (panel.provider.value, panel.model.value) == ("ChatGptt", "gpt-4")
    chat.config.model = "gpt-4o-mini"  # %config ChatConfig.model = ...
    assert panel.model.value == "gpt-4o-mini"
    chat.config.provider = "OpenAI"
    chat.config.model = "my-own-model"  # not in any list: added, not refused
    await panel.join(timeout=TIMEOUT)
    assert (panel.provider.value, panel.model.value) == ("OpenAI", "my-own-model")
    assert "my-own-model" in [v for _, v in panel.model.options]


# --- sending and streaming ------------------------------------------------------------------

async def test_send_streams_into_the_transcript_and_ends_as_rendered_markdown(panel, protocol_server, chat):
    protocol_server.chunks = ["# Title\n\n", "Some ", "**bold** ", "text ", "and ", "`code`", "."]
    hold_answers(protocol_server)
    panel.system.value = "Be brief."
    panel.use_temperature.value = True
    panel.temperature.value = 0.3
    exchange = ask(panel, "Say something")
    assert exchange is not None and exchange.status == "waiting"
    assert panel.view.busy  # the front end disables Send and enables Stop
    assert panel.view.prompt == ""
    front = panel.front
    assert front.turn()["prompt"] == "Say something" and front.turn()["status"] == "waiting"
    await let_go(protocol_server)
    await ended(exchange)
    turn = front.turn()
    final = front.html()
    assert turn["status"] == "ok" and turn["label"] == "OpenAI (gpt-4o-mini)"
    assert "<h1>Title</h1>" in final and "<strong>bold</strong>" in final and "<code>code</code>" in final
    assert "ipyg4f-cursor" not in final and "ipyg4f-footer" in final
    assert "answered in" in status_text(panel) and "chunks" in status_text(panel)
    assert panel.view.tone == "ok"
    assert not panel.view.busy and panel.current is None

    body = protocol_server.requests[-1].json
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Say something"}]
    assert body["temperature"] == pytest.approx(0.3) and body["model"] == "gpt-4o-mini"


async def test_the_answer_grows_in_front_of_the_user(make_panel, scripted):
    """Each piece is on the view before the next is let through: the stream is seen, not just its end."""
    gates = [Gate() for _ in range(3)]
    scripted.enqueue(["# Title\n\n", "Some ", gates[0], "**bold** ", gates[1], "text ", gates[2], "`code`.",
                      FinishReason("stop")])
    panel = make_panel()
    panel.provider.value = "Scripted"
    exchange = ask(panel, "grow")
    front = panel.front
    for seen, gate in zip(["Some", "bold", "text"], gates):
        await front.until(lambda f: seen in f.html())
        assert front.turn()["status"] == "streaming" and "ipyg4f-cursor" in front.html()
        gate.open.set()
    await ended(exchange)
    partial = [v for v in front.states if v.startswith("streaming|")]
    assert len(partial) >= 3, partial
    assert front.turn()["status"] == "ok" and "<code>code</code>" in front.html()
    assert "ipyg4f-cursor" not in front.html()


async def test_ctrl_enter_sends_what_the_prompt_box_holds(panel, protocol_server):
    """The front end's Ctrl+Enter sends the box's text with the event (even if its last keystrokes
    had not been synced yet); the kernel says what it sent and the box is emptied through the prompt
    trait; a refused send keeps the box as it is."""
    hold_answers(protocol_server)  # the first answer is still on its way when the second send comes
    panel.view.set_state({"prompt": "half typ"})
    exchange = ask_raw(panel, "half typed, then Ctrl+Enter")
    assert exchange is not None and exchange.prompt == "half typed, then Ctrl+Enter"
    assert [op["prompt"] for op in panel.front.ops if op["op"] == "sent"] == ["half typed, then Ctrl+Enter"]
    assert panel.view.prompt == ""
    panel.view.set_state({"prompt": "too early"})
    assert ask_raw(panel, "too early") is None  # still streaming
    assert "still streaming" in status_text(panel) and panel.view.prompt == "too early"
    assert len([op for op in panel.front.ops if op["op"] == "sent"]) == 1
    await let_go(protocol_server)
    await ended(exchange)
    assert [r.json["messages"][-1]["content"] for r in protocol_server.requests
            if r.path == "/v1/chat/completions"] == ["half typed, then Ctrl+Enter"]


def ask_raw(panel, prompt):
    """Only the send event (the box's sync is the test's business)."""
    before = len(panel.exchanges)
    panel.front.box = prompt
    panel.view._handle_custom_msg({"event": "send", "prompt": prompt}, [])
    return panel.exchanges[-1] if len(panel.exchanges) > before else None


async def test_three_sends_after_provider_changes_send_exactly_what_was_typed(make_panel, scripted, chat):
    """The issue's sequence, in-process (the browser test has the real front end's timing): change
    the provider, Ctrl+Enter, three times; each send is what was typed and empties the box."""
    panel = make_panel()
    prompts = ["What is a quartile?", "And a decile?", "And a percentile?"]
    for prompt in prompts:
        scripted.enqueue([f"About {prompt}", FinishReason("stop")])
        panel.provider.value = "Pizzagpt"
        panel.provider.value = "Scripted"
        panel.view.set_state({"prompt": prompt[:5]})  # the keystrokes synced so far
        exchange = ask_raw(panel, prompt)
        assert exchange is not None and exchange.prompt == prompt
        assert panel.view.prompt == ""
        await ended(exchange)
    assert [r["messages"][-1]["content"] for r in scripted.requests] == prompts


async def test_streaming_sends_each_part_of_a_long_answer_about_once(make_panel, scripted, chat):
    """A 30,000-character answer: what the panel sends while streaming grows with the answer (settled
    blocks once, a small tail per update), not with its square; the view ends equal to the final render.
    The stream stops at 40 gates, each opened once the view has been updated: at least 40 updates,
    however busy the machine."""
    chat.config.updates_per_second = 50
    paragraph = ("Tea is brewed from the leaves of *Camellia sinensis*; `green` and **black** differ "
                 "in oxidation, and water temperature matters. ")
    blocks, size, i = [], 0, 0
    while size < 30_000:
        if i % 40 == 39:
            block = "```python\n" + "\n".join(f"cup_{i}_{j} = brew({j}, temp=80)" for j in range(4)) + "\n```"
        elif i % 25 == 24:
            block = "| kind | minutes |\n|:--|--:|\n| green | 2 |\n| black | 4 |"
        else:
            block = f"Paragraph {i}: {paragraph * (1 + i % 3)}"
        blocks.append(block)
        size += len(block) + 2
        i += 1
    text = "\n\n".join(blocks)[:30_000]
    chunks = [text[i:i + 60] for i in range(0, len(text), 60)]
    every, steps, gates = len(chunks) // 41, [], []
    for n, chunk in enumerate(chunks, 1):
        steps.append(chunk)
        if n % every == 0 and len(gates) < 40:
            gates.append(Gate())
            steps.append(gates[-1])
    scripted.enqueue([*steps, FinishReason("stop")])
    panel = make_panel()
    panel.provider.value = "Scripted"
    front = panel.front
    before = front.bytes
    exchange = ask(panel, "a long one")

    def stream_ops(f):
        return sum(op["op"] in ("append", "tail") for op in f.ops)

    seen = 0
    for gate in gates:  # what came before each gate is drawn while the stream waits there
        assert await asyncio.to_thread(gate.reached.wait, TIMEOUT)
        await front.until(lambda f: stream_ops(f) > seen)
        seen = stream_ops(front)
        gate.open.set()
    await ended(exchange)
    assert exchange.answer.text == text and len(text) == 30_000
    sent = front.bytes - before
    streamed = [op for op in front.ops if op["op"] in ("append", "tail")]
    assert len(streamed) >= 40, len(streamed)  # many updates reached the view
    assert sent <= 10 * len(text), (sent, len(text))
    print(f"\n30,000-character answer: {sent} bytes sent ({sent / len(text):.2f}x), {len(streamed)} stream ops")
    # what streamed adds up to the answer: the settled pieces plus the last tail, before the final
    [final] = [op for op in front.ops if op["op"] == "final"]
    pieces = "".join(op["html"] for op in streamed if op["op"] == "append")
    last_tail = [op["html"] for op in streamed if op["op"] == "tail"][-1]
    body = final["turn"]["body"]
    assert "cup_39_3" in body and "<table" in body and body.count('<pre class="ipyg4f-code">') == i // 40
    assert len(pieces) > len(text) / 2  # most of it settled once, along the way
    assert len(last_tail) < 2_000


async def test_a_new_view_gets_the_whole_transcript_once(make_panel, protocol_server, chat):
    """A re-displayed (or reloaded) view asks for a snapshot and then follows the stream like the others."""
    from fakes import Gate, ScriptedProvider

    chat.store.record(chat.notebook, "default", "cell-1", "What is 2+2?", "It is **4**.",
                      provider="OpenAI", model="gpt-4o-mini")
    ScriptedProvider.reset()
    register(ScriptedProvider, "Scripted")
    try:
        gate = Gate()
        ScriptedProvider.enqueue(["First paragraph.\n\n", "Second ", "paragraph", gate, " ends.", FinishReason("stop")])
        panel = make_panel()
        panel.provider.value = "Scripted"
        exchange = ask(panel, "stream then wait")
        await panel.front.until(lambda f: "Second paragraph" in f.html())
        second = Front(panel.view, "second-view")  # appears mid-stream
        assert second.order == panel.front.order and len(second.order) == 2
        assert second.html(second.order[0]) == panel.front.html(second.order[0])
        assert second.html() == panel.front.html()  # the streaming turn, settled part and tail
        reset = [op for op in panel.front.ops if op["op"] == "reset"]
        assert len(reset) == 2 and reset[-1]["view"] == "second-view"  # the first view ignored it
        gate.open.set()
        await ended(exchange)
        assert second.html() == panel.front.html() and "Second paragraph ends." in second.html()
        assert second.turn()["status"] == panel.front.turn()["status"] == "ok"
    finally:
        unregister("Scripted")
        ScriptedProvider.reset()


async def test_frontend_updates_are_throttled(panel, protocol_server, chat, monkeypatch):
    """At most 10 updates a second: judged by the throttle's own decisions (when it let an update through,
    on its own clock, and the gap it then set) and one front-end update per decision; no duration
    measured by the test."""
    import ipyg4f.render.stream as stream

    marks: list[tuple[float, float]] = []

    class Recorded(stream.Throttle):
        def mark(self, size: int = 0, length: int = 0) -> None:
            super().mark(size, length)
            marks.append((self.last, self.gap))

    monkeypatch.setattr(stream, "Throttle", Recorded)
    chat.config.updates_per_second = 10
    protocol_server.chunks = [f"w{i} " for i in range(300)]
    front = panel.front
    exchange = ask(panel, "many chunks")
    await ended(exchange)
    assert exchange.answer.chunks == 300
    assert all(b[0] - a[0] >= max(1 / 10, a[1]) for a, b in zip(marks, marks[1:])), marks
    updates = [op for op in front.ops if op["op"] == "tail"]
    assert 1 <= len(updates) <= len(marks) < 300, (len(updates), len(marks))
    assert "w299" in front.html()


def test_the_answer_keeps_streaming_while_the_kernel_thread_is_busy(chat, protocol_server):
    """Send returns at once; the answer then grows while this thread never returns to any loop
    (as in a kernel running a long cell: ``time.sleep(20)``, a training loop)."""
    protocol_server.chunks = [f"piece{i} " for i in range(6)]
    hold_answers(protocol_server)
    panel = ChatPanel(chat=chat)
    try:
        panel.front = front = Front(panel.view)
        exchange = ask(panel, "take your time")
        # Send returned while the server had not sent a byte: it did not wait for the answer
        assert protocol_server.wait_stalled(1, TIMEOUT) and exchange.status == "waiting"
        protocol_server.fault = None
        protocol_server.release_stall()
        front.wait_for(lambda f: "piece5" in f.html())  # this thread is blocked here; the panel streams
        assert panel.wait(TIMEOUT) and panel.current is None
    finally:
        panel.close()


async def test_stop_cancels_quickly_and_keeps_the_partial_answer(panel, protocol_server, chat):
    protocol_server.chunks = ["first ", "second ", "third ", "never ", "shown"]
    protocol_server.fault, protocol_server.fault_after = "stall", 3
    protocol_server.fault_path = "/v1/chat/completions"  # the model list still answers
    exchange = ask(panel, "a slow one")
    front = panel.front
    await front.until(lambda f: "third" in f.html())
    assert await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    press_stop(panel)
    await ended(exchange)  # while the server still holds the stream: Stop ended it
    assert protocol_server.stalls == 1 and exchange.answer.status == "interrupted"
    assert exchange.answer.text == "first second third "
    assert front.turn()["status"] == "interrupted"
    assert "stopped; partial answer kept" in front.html()  # said once, under the answer
    assert "interrupt" not in front.html()  # Stop was pressed: no interrupt happened
    assert "stopped after" in status_text(panel) and "partial answer kept" not in status_text(panel)
    assert not panel.view.busy
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert (stored.status, stored.answer) == ("interrupted", "first second third ")
    reread = ChatPanel(chat=chat)  # read back from history: worded the same
    try:
        assert "stopped; partial answer kept" in reread.view.turns[stored.cell_id].after
    finally:
        reread.close()


@pytest.mark.parametrize("fault, words", [
    ("http500", ["OpenAI failed: HTTP 500", "The server had an error", "try:"]),
    ("http401", ["not authorised", "try: check the API key"]),
    ("sse_error_event", ["reported an error", "The model crashed"]),
])
async def test_a_failure_is_said_once_in_plain_words(panel, protocol_server, fault, words):
    protocol_server.fault, protocol_server.fault_after = fault, 2
    exchange = ask(panel, "fail please")
    await ended(exchange)
    assert exchange.answer.status == "error"
    front = panel.front
    note = front.turn()["after"]
    for word in words:
        assert note.count(word) == 1, note  # under the answer, once
        assert word not in status_text(panel)  # and not again in the status line
    assert "Traceback" not in note
    assert front.turn()["status"] == "error"
    assert "failed after" in status_text(panel) and panel.view.tone == "error"
    assert not panel.view.busy


async def test_a_failed_exchange_reloaded_from_history_keeps_its_reason(make_panel, protocol_server, chat):
    protocol_server.fault = "http500"
    protocol_server.fault_path = "/v1/chat/completions"
    first = make_panel()
    await ended(ask(first, "this one fails"))
    live = first.front.turn()["after"]
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert stored.status == "error" and "HTTP 500" in stored.error
    second = make_panel()  # a new panel reads the thread from history
    turn = second.front.turn()
    assert turn["status"] == "error" and turn["prompt"] == "this one fails"
    assert "HTTP 500" in turn["after"] and "The server had an error" in turn["after"], turn["after"]
    assert "nothing was received" in turn["after"] and "nothing was received" in live


async def test_an_unknown_model_is_refused_before_sending(panel, chat):
    panel.provider.value = "Pizzagpt"
    chat.config.model = "no-such-model"  # shown in the dropdown, refused by the provider
    ask(panel, "hello")
    assert panel.current is None
    assert "cannot send" in status_text(panel) and "no-such-model" in status_text(panel)
    assert panel.view.prompt == "hello"  # kept to send again


async def test_an_empty_prompt_is_not_sent(panel, protocol_server):
    ask(panel, "   ")
    assert panel.current is None and "write a prompt first" in status_text(panel)
    assert "/v1/chat/completions" not in protocol_server.paths()


# --- history shared with %%chat -------------------------------------------------------------

async def test_history_is_shared_with_the_magic(make_panel, protocol_server, chat):
    chat.store.record(chat.notebook, "default", "cell-1", "What is 2+2?", "It is **4**.",
                      provider="OpenAICompatible", model="gpt-4o-mini")
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)
    front = panel.front
    [earlier] = front.order
    assert front.turn(earlier)["prompt"] == "What is 2+2?" and "<strong>4</strong>" in front.html(earlier)

    protocol_server.answer = "Then 5."
    await ended(ask(panel, "And 2+3?"))
    messages = protocol_server.requests[-1].json["messages"]
    assert messages == [{"role": "user", "content": "What is 2+2?"},
                        {"role": "assistant", "content": "It is **4**."},
                        {"role": "user", "content": "And 2+3?"}]
    first, second = chat.store.exchanges(chat.notebook, "default")
    assert first.cell_id == "cell-1"
    assert second.cell_id.startswith("panel-") and (second.prompt, second.answer) == ("And 2+3?", "Then 5.")
    assert len(front.order) == 2

    # a %%chat cell of the same thread sees the panel's exchange as context
    request, _ = chat.request("next", cell_id="cell-2")
    assert {"role": "assistant", "content": "Then 5."} in request.messages


def cell_answer(text, provider="OpenAI", model="gpt-4o-mini"):
    answer = Answer(provider, model)
    answer.feed(text)
    answer.end("ok")
    return answer


async def test_chat_cells_of_the_panels_thread_appear_in_the_panel(make_panel, protocol_server, chat):
    """A %%chat cell run after the panel is shown is in its transcript; a re-run replaces it there;
    the panel shows exactly the exchanges history has for its thread, in history's order."""
    panel = make_panel()
    front = panel.front
    await ended(ask(panel, "from the panel"))
    # what the %%chat cell does once its answer has ended (ipyg4f.commands): Chat.record
    assert chat.record("What is a quartile?", cell_answer("A **quarter** of the data."), cell_id="cell-1") == ""
    assert [front.turn(i)["prompt"] for i in front.order] == ["from the panel", "What is a quartile?"]
    assert "<strong>quarter</strong>" in front.html()
    chat.record("elsewhere", cell_answer("not here"), cell_id="cell-2", thread="other")
    assert len(front.order) == 2  # another thread's cell: not this panel's

    chat.record("What is a decile?", cell_answer("A tenth."), cell_id="cell-1")  # the cell re-run
    stored = chat.store.exchanges(chat.notebook, "default")
    assert [front.turn(i)["prompt"] for i in front.order] == [e.prompt for e in stored]
    assert "What is a quartile?" not in [front.turn(i)["prompt"] for i in front.order]
    assert "A tenth." in front.html(stored[-1].cell_id if stored[-1].cell_id == "cell-1" else "cell-1")
    assert "quarter" not in "".join(front.html(i) for i in front.order)

    second = Front(panel.view, "reloaded")  # a reloaded view gets the same
    assert second.order == front.order

    panel.close()  # a closed panel no longer listens
    assert panel._on_record not in chat.on_record
    chat.record("after close", cell_answer("x"), cell_id="cell-3")
    assert "after close" not in [front.turn(i)["prompt"] for i in front.order]


async def test_a_cell_recorded_while_the_panel_streams_keeps_the_stream(make_panel, scripted, chat):
    gate = Gate()
    scripted.enqueue(["streaming ", gate, "on.", FinishReason("stop")])
    panel = make_panel()
    panel.provider.value = "Scripted"
    exchange = ask(panel, "the panel's")
    front = panel.front
    await front.until(lambda f: "streaming" in f.html())
    chat.record("a cell's", cell_answer("cell answer"), cell_id="cell-1")
    assert [front.turn(i)["prompt"] for i in front.order] == ["a cell's", "the panel's"]
    assert front.turn()["status"] == "streaming"
    gate.open.set()
    await ended(exchange)
    assert "streaming on." in front.html() and front.turn()["status"] == "ok"
    stored = chat.store.exchanges(chat.notebook, "default")
    assert [e.prompt for e in stored] == [front.turn(i)["prompt"] for i in front.order]


async def test_join_returns_once_the_model_list_is_shown(make_panel, protocol_server, monkeypatch):
    """``wait()``/``join()`` wait until a fetched model list has been applied, not only fetched:
    ``Future.set_result`` wakes waiters before it runs the callback that applies it."""
    from ipyg4f.panel import choice

    protocol_server.models = ["gpt-4o-mini", "served-a"]
    applying, go_on = threading.Event(), threading.Event()
    set_models = choice.ProviderChoice._set_models

    loop_thread = LoopThread.get().thread
    held_by = []

    def held(self, models, prefer):
        # the fetched list, applied by the fetch's callback on the runner's loop thread
        if "served-a" in models and threading.current_thread() is loop_thread and not applying.is_set():
            held_by.append(self)
            applying.set()
            assert go_on.wait(TIMEOUT)
        return set_models(self, models, prefer)

    monkeypatch.setattr(choice.ProviderChoice, "_set_models", held)
    # the list is held by the server until the panel is built: its callback then runs on the loop thread
    protocol_server.fault, protocol_server.fault_after, protocol_server.fault_path = "stall", 0, "/v1/models"
    panel = make_panel()
    assert await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    protocol_server.fault = None
    protocol_server.release_stall()
    assert await asyncio.to_thread(applying.wait, TIMEOUT)  # fetched, being applied
    assert held_by == [panel]
    assert not panel.wait(0), panel._fetches  # not over: the options are not set yet
    go_on.set()
    await panel.join(timeout=TIMEOUT)
    assert [v for _, v in panel.model.options] == ["gpt-4o-mini", "served-a"]


async def test_threads_can_be_switched_and_reset(make_panel, protocol_server, chat):
    chat.store.record(chat.notebook, "work", "cell-9", "work question", "work answer")
    panel = make_panel()
    front = panel.front
    assert "work" in panel.thread.options
    panel.thread.value = "work"
    assert [front.turn(i)["prompt"] for i in front.order] == ["work question"]

    await ended(ask(panel, "more work"))
    assert [e.thread for e in chat.store.exchanges(chat.notebook, "work")] == ["work", "work"]
    assert chat.store.exchanges(chat.notebook, "default") == []
    assert [front.turn(i)["prompt"] for i in front.order] == ["work question", "more work"]

    panel.thread.value = "default"
    assert front.order == []
    panel.thread.value = "work"  # back: the panel's own exchange is there, ended
    assert [front.turn(i)["prompt"] for i in front.order] == ["work question", "more work"]
    assert front.turn()["status"] == "ok" and "ipyg4f-footer" in front.html()

    panel.reset.click()
    assert front.order == []
    assert chat.store.exchanges(chat.notebook, "work") == []
    assert "reset (2 exchanges archived)" in status_text(panel)


# --- untrusted answers ----------------------------------------------------------------------

XSS = ('<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
       '[click](javascript:window.__xss=3) <a href="javascript:alert(1)">a</a> '
       '<svg onload=alert(1)> <iframe src="javascript:alert(1)"></iframe>')


def parse_tags(markup: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every element a browser would build from ``markup``, with its attributes."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Parser().feed(markup)
    return found


async def test_an_xss_answer_is_sanitised_while_streaming_and_at_the_end(panel, protocol_server):
    protocol_server.chunks = [XSS[:40], XSS[40:90], XSS[90:]]
    protocol_server.chunk_delay = 0.06
    exchange = ask(panel, "<b>my own prompt</b> is escaped too")
    front = panel.front
    await ended(exchange)
    assert exchange.answer.text == XSS
    assert front.turn()["prompt"] == "<b>my own prompt</b> is escaped too"  # text: the view sets textContent
    html_sent = [op.get("html") or op.get("turn", {}).get("body", "") + op.get("turn", {}).get("after", "")
                 for op in front.ops if op["op"] != "reset"]
    assert len(html_sent) >= 3
    for value in html_sent:
        tags = parse_tags(value)
        assert not {"img", "script", "svg", "iframe"} & {tag for tag, _ in tags}, value
        assert "<b>" not in value
        for tag, attrs in tags:
            for name, attr in attrs:
                assert not name.startswith("on"), (tag, name, value)
                assert not (attr or "").strip().lower().startswith("javascript:"), (tag, name, value)
    assert "&lt;img src=x onerror=" in front.html()  # shown as text, not run


# --- two panels at once ---------------------------------------------------------------------

class Echo(AsyncGeneratorProvider):
    """Echoes the prompt word by word; after the first word it waits for ``hold`` (set by the test once
    both streams are seen streaming), so two streams overlap."""

    supports_stream = True
    hold = threading.Event()

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        for i, word in enumerate(messages[-1]["content"].split()):
            yield word + " "
            while i == 0 and not cls.hold.is_set():
                await asyncio.sleep(0.005)  # polls an event set by another thread
        yield FinishReason("stop")


@pytest.fixture
def echo():
    Echo.hold.clear()
    register(Echo, "Echo")
    yield Echo
    unregister("Echo")


async def test_two_panels_stream_at_once_without_mixing(make_panel, echo, chat):
    one, two = make_panel(), make_panel()
    sent = []
    for panel, word in ((one, "apple"), (two, "pear")):
        panel.provider.value = "Echo"
        sent.append(ask(panel, " ".join([word] * 12)))
    a, b = sent
    await one.front.until(lambda f: "apple" in f.html())
    await two.front.until(lambda f: "pear" in f.html())
    assert a.status == "streaming" and b.status == "streaming"  # both at once: held after a word
    echo.hold.set()
    await ended(a, b)
    assert a.answer.text.split() == ["apple"] * 12 and b.answer.text.split() == ["pear"] * 12
    assert "pear" not in one.front.html(a.cell_id) and "apple" not in two.front.html(b.cell_id)
    # the same thread: each panel ends showing both exchanges, as history has them
    stored = [e.cell_id for e in chat.store.exchanges(chat.notebook, "default")]
    assert one.front.order == two.front.order == stored
    assert {e.prompt for e in chat.store.exchanges(chat.notebook, "default")} == {
        " ".join(["apple"] * 12), " ".join(["pear"] * 12)}


async def test_closing_the_panel_stops_its_stream_and_its_observers(make_panel, protocol_server, chat):
    panel = make_panel()
    protocol_server.fault, protocol_server.fault_after = "stall", 1
    protocol_server.fault_path = "/v1/chat/completions"
    exchange = ask(panel, "hang")
    await asyncio.to_thread(protocol_server.wait_stalled, 1, TIMEOUT)
    panel.close()
    await ended(exchange)
    assert exchange.answer.status == "interrupted"
    chat.config.provider = "Pizzagpt"  # no longer observed: nothing happens to a closed panel
    assert panel.provider.value == "OpenAI"


def test_the_panel_is_importable_as_documented():
    import ipyg4f

    assert ipyg4f.ChatPanel is ChatPanel


def test_the_front_end_code_ships_with_the_package():
    """The view's ES module and CSS are package data, and its CSS carries the answers' own."""
    from ipyg4f.panel.view import ChatView
    from ipyg4f.render.html import ANSWER_CSS

    view = ChatView()
    try:
        esm, css = view.get_state()["_esm"], view.get_state()["_css"]
        assert "export default" in esm and 'model.on("msg:custom"' in esm
        assert ANSWER_CSS in css and ".ipyg4f-transcript" in css and "max-height" in css
    finally:
        view.close()


async def test_clearing_the_default_provider_shows_what_cells_will_use(panel, chat):
    chat.config.provider = ""  # %config ChatConfig.provider = ""
    assert panel.provider.value == chat.provider_setting() != "OpenAI"


async def test_thinking_streams_open_then_closes_when_the_answer_starts(make_panel, chat):
    from fakes import Gate, ScriptedProvider
    from ipyg4f.events import Reasoning, Usage

    ScriptedProvider.reset()
    register(ScriptedProvider, "Scripted")
    try:
        gate = Gate()
        ScriptedProvider.enqueue([Reasoning("weighing "), Reasoning("options"), gate, "The answer.",
                                  Usage(12, 3), FinishReason("stop")])
        panel = make_panel()
        panel.provider.value = "Scripted"
        exchange = ask(panel, "think first")
        front = panel.front
        await front.until(lambda f: "options" in f.html())
        assert set(front.turn()["parts"]) == {"thinking"}  # all there is so far: shown open
        assert "is thinking" in status_text(panel)
        gate.open.set()
        await ended(exchange)
        final = front.html()
        assert '<details class="ipyg4f-thinking" style' in final and "weighing options" in final
        assert final.index("ipyg4f-thinking") < final.index("The answer.")
        assert "12 in / 3 out tokens" in final and "Scripted (scripted-1)" in final  # the footer
        [stored] = chat.store.exchanges(chat.notebook, "default")
        assert (stored.answer, stored.reasoning) == ("The answer.", "weighing options")
    finally:
        unregister("Scripted")
        ScriptedProvider.reset()


async def test_the_with_field_sends_values_as_context_and_shows_what_was_sent(make_panel, protocol_server, chat):
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    chat.shell = TerminalInteractiveShell.instance()
    chat.shell.user_ns["scores"] = {"ann": 3, "bob": 5}
    panel = make_panel()
    await panel.join(timeout=TIMEOUT)
    panel.with_.value = "scores, missing_name"
    ask(panel, "who scored most?")
    assert panel.current is None and "missing_name' is not defined" in status_text(panel)
    assert "ContextError" not in status_text(panel)
    assert panel.view.prompt == "who scored most?"  # kept, nothing sent
    panel.with_.value = "scores"
    exchange = ask(panel, "who scored most?")
    await ended(exchange)
    sent = protocol_server.requests[-1].json["messages"][-1]["content"]
    assert "scores" in sent and "'bob': 5" in sent and sent.rstrip().endswith("who scored most?")
    assert '<details class="ipyg4f-context"' in panel.front.html() and "scores" in panel.front.html()
    [stored] = chat.store.exchanges(chat.notebook, "default")
    assert "'bob': 5" in stored.context


# --- tools: the agent's loop in the panel (issue 21) ------------------------------------------

from tool_script import Call, Turn, tool_results  # noqa: E402


@pytest.fixture
def agent_chat(tmp_path, monkeypatch, protocol_server):
    """A Chat over a real IPython shell (the tools read and run in its namespace)."""
    import sys

    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    monkeypatch.setenv("OPENAI_BASE_URL", f"{protocol_server.base_url}/v1")
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    main = sys.modules["__main__"]  # reset() installs the shell's own __main__: the real one goes back after
    ip = TerminalInteractiveShell.instance()
    ip.reset(new_session=True)
    c = Chat(ip, ChatConfig(provider="OpenAI", history_path=str(tmp_path / "history.sqlite3")))
    yield c
    c.close()
    ip.reset(new_session=True)
    sys.modules["__main__"] = main


@pytest.fixture
async def tool_panel(agent_chat):
    panel = ChatPanel(chat=agent_chat)
    panel.front = Front(panel.view)
    await panel.join(timeout=TIMEOUT)
    yield panel
    panel.close()
    await panel.join(timeout=TIMEOUT)


def click(panel, exchange, answer, n=1):
    """What a click on Approve ("yes") or Refuse ("no") sends."""
    panel.view._handle_custom_msg({"event": "approve", "id": exchange.cell_id, "n": n, "answer": answer}, [])


async def asked(panel, n=1):
    await panel.front.until(lambda f: (f.turn().get("ask") or {}).get("n") == n
                            and f.turn()["ask"]["state"] == "pending")
    return panel.front.turn()["ask"]


RUN = "import threading\nwhere = threading.current_thread().name\nanswer = 6 * 7\nprint('computed', answer)"


async def test_tool_steps_show_in_the_transcript_as_collapsed_blocks_and_are_stored(tool_panel, protocol_server,
                                                                                     agent_chat):
    agent_chat.shell.user_ns["df"] = [1, None, 3]
    protocol_server.script = [Turn("Let me look. ", [Call("describe", {"name": "df"})]), Turn("It has one **None**.")]
    tool_panel.tools.value = "notebook"
    exchange = ask(tool_panel, "why the nulls?")
    await ended(exchange)
    assert exchange.answer.status == "ok", exchange.answer.error
    final = tool_panel.front.html()
    assert final.count('<details class="ipyg4f-step"') == 1 and "<details open" not in final  # collapsed
    assert "describe" in final and "Let me look." in final and "<strong>None</strong>" in final
    assert final.index("ipyg4f-step") < final.index("<strong>None</strong>")  # the steps above the answer
    [first, second] = protocol_server.chat_bodies()
    assert [t["function"]["name"] for t in first["tools"]] == ["list_variables", "describe", "read_cells",
                                                               "last_error"]
    assert "list" in next(iter(tool_results(second).values()))  # the model got the description back
    [stored] = agent_chat.store.exchanges(agent_chat.notebook, "default")
    assert [s["tool"] for s in stored.step_list()] == ["describe"]
    reread = ChatPanel(chat=agent_chat)  # read back from history: the steps are there again
    try:
        assert 'class="ipyg4f-step"' in reread.view.turns[stored.cell_id].body
    finally:
        reread.close()


async def test_approve_runs_the_models_code_in_the_users_namespace_on_the_panels_thread(
        tool_panel, protocol_server, agent_chat):
    protocol_server.script = [Turn(calls=[Call("run_python", {"code": RUN})]), Turn("It is 42.")]
    tool_panel.tools.value = "python"
    exchange = ask(tool_panel, "compute it")
    question = await asked(tool_panel)
    assert "run_python wants to run" in question["title"] and "current_thread" in question["html"]
    assert "waiting for your approval" in status_text(tool_panel)
    assert "answer" not in agent_chat.shell.user_ns  # nothing ran before the click
    hold_answers(protocol_server)  # the next request waits: the step is drawn while the answer is on its way
    click(tool_panel, exchange, "yes")
    await tool_panel.front.until(lambda f: 'class="ipyg4f-step"' in f.turn().get("steps", ""))
    streaming = tool_panel.front.turn()
    assert "body" not in streaming and streaming["ask"] is None  # drawn afresh: the question made way
    assert "(approved)" in streaming["steps"] and "<details open" not in streaming["steps"]
    await let_go(protocol_server)
    await ended(exchange)
    ns = agent_chat.shell.user_ns
    assert ns["answer"] == 42
    assert ns["where"] == "ipyg4f-run"  # the panel's own thread, not the kernel's: why the panel always asks
    [step] = exchange.answer.steps
    assert step.approved and step.asked and "computed 42" in step.result
    assert "computed 42" in next(iter(tool_results(protocol_server.chat_bodies()[1]).values()))
    assert "(approved)" in tool_panel.front.html() and "It is 42." in tool_panel.front.html()


async def test_refuse_tells_the_model_and_runs_nothing(tool_panel, protocol_server, agent_chat):
    protocol_server.script = [Turn(calls=[Call("run_python", {"code": RUN})]), Turn("As you wish.")]
    tool_panel.tools.value = "python"
    exchange = ask(tool_panel, "compute it")
    await asked(tool_panel)
    click(tool_panel, exchange, "no")
    await ended(exchange)
    assert "answer" not in agent_chat.shell.user_ns
    assert exchange.asker.asked[0]["state"] == "refused"
    assert next(iter(tool_results(protocol_server.chat_bodies()[1]).values())) == "refused by the user"
    assert "refused" in tool_panel.front.html() and "As you wish." in tool_panel.front.html()


async def test_stop_refuses_the_pending_question_and_a_late_click_is_said(tool_panel, protocol_server, agent_chat):
    protocol_server.script = [Turn(calls=[Call("run_python", {"code": RUN})]), Turn("never")]
    tool_panel.tools.value = "python"
    exchange = ask(tool_panel, "compute it")
    await asked(tool_panel)
    press_stop(tool_panel)
    await ended(exchange)
    assert exchange.answer.status == "interrupted" and "answer" not in agent_chat.shell.user_ns
    assert exchange.asker.asked[0]["state"] == "refused" and exchange.asker.asked[0]["note"] == "stopped"
    assert len(protocol_server.chat_bodies()) == 1  # no request followed
    click(tool_panel, exchange, "yes")  # the click that was on its way: not lost silently, and not obeyed
    assert "came too late" in status_text(tool_panel) and "refused" in status_text(tool_panel)
    assert "answer" not in agent_chat.shell.user_ns


async def test_closing_the_panel_refuses_the_pending_question(agent_chat, protocol_server):
    panel = ChatPanel(chat=agent_chat)
    panel.front = Front(panel.view)
    protocol_server.script = [Turn(calls=[Call("run_python", {"code": RUN})]), Turn("never")]
    panel.tools.value = "python"
    exchange = ask(panel, "compute it")
    await asked(panel)
    panel.close()
    await ended(exchange)
    assert exchange.answer.status == "interrupted" and "answer" not in agent_chat.shell.user_ns
    assert exchange.asker.asked[0]["state"] == "refused"


async def test_the_tools_setting_starts_from_the_config_and_never_runs_code_unasked(agent_chat, protocol_server):
    agent_chat.config.tools = ["notebook", "python"]
    agent_chat.config.approve = "auto"
    panel = ChatPanel(chat=agent_chat)
    panel.front = Front(panel.view)
    try:
        assert panel.tools.value == "notebook, python"
        assert panel.approve.value == "ask"  # auto is not offered: the panel's thread runs beside the cells
        assert [v for _, v in panel.approve.options] == ["ask", "never"]
        panel.approve.value = "never"
        protocol_server.script = [Turn(calls=[Call("run_python", {"code": RUN})]), Turn("ok")]
        exchange = ask(panel, "compute it")
        await ended(exchange)
        names = [t["function"]["name"] for t in protocol_server.chat_bodies()[0]["tools"]]
        assert "run_python" not in names and "list_variables" in names
        assert "answer" not in agent_chat.shell.user_ns
    finally:
        panel.close()
        await panel.join(timeout=TIMEOUT)


@pytest.mark.parametrize("tools, words", [("nosuch", "Tools: nosuch"), ("mcp:files", "no such server")])
async def test_a_wrong_tools_setting_is_said_before_anything_is_sent(tool_panel, protocol_server, tools, words):
    tool_panel.tools.value = tools
    assert ask(tool_panel, "hello") is None
    assert "cannot send" in status_text(tool_panel) and words in status_text(tool_panel)
    assert protocol_server.chat_bodies() == []


async def test_a_provider_without_tools_is_said_before_anything_is_sent(tool_panel, seed_urls):
    tool_panel.provider.value = "Pizzagpt"  # a seed provider: it takes no tools
    await tool_panel.join(timeout=TIMEOUT)
    tool_panel.tools.value = "notebook"
    assert ask(tool_panel, "hello") is None
    assert "does not take tools" in status_text(tool_panel)
    assert [p for p in seed_urls.paths() if "models" not in p] == []  # nothing was sent
