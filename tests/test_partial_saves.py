"""An answer saved to history while it streams (``Chat.saving`` around the cell's renderer), in process."""

from __future__ import annotations

import threading

import pytest

from fakes import Gate, RecordingRenderer, ScriptedProvider
from ipyg4f.chat import Chat
from ipyg4f.events import FinishReason
from ipyg4f.history import HistoryStore
from ipyg4f.render.saving import SavingRenderer
from ipyg4f.runner import Answer, ChatRequest, Run

HI = [{"role": "user", "content": "hi"}]


pytestmark = pytest.mark.usefixtures("scripted")  # the scripted provider of fakes.py, as "Scripted"


@pytest.fixture
def chat():
    chat = Chat()
    chat._store = HistoryStore(":memory:")
    yield chat
    chat.close()


class Clock:
    """The real clock, counting how often the saver looked at it (each look is a chance to save)."""

    def __init__(self):
        import time

        self.now, self.looks, self.looked = time.monotonic, 0, threading.Event()

    def __call__(self) -> float:
        self.looks += 1
        if self.looks >= 20:
            self.looked.set()
        return self.now()


def start(chat, steps, cell_id="A", interval=0.0, clock=None, ticks=None):
    """A run whose renderer saves (every ``interval`` s) through ``chat``, started on a thread of its own."""
    ScriptedProvider.enqueue(steps)
    request = ChatRequest(ScriptedProvider, "scripted-1", HI)
    renderer = RecordingRenderer()
    renderer.tick_interval = ticks
    saving = chat.saving(renderer, "question", cell_id=cell_id)
    saving.interval = interval
    if clock is not None:
        saving.clock = clock
    ended: list[Answer] = []
    run = Run(request, Answer("Scripted", "scripted-1"), saving).start(then=ended.append)
    return run, saving, ended


def test_the_answer_so_far_is_in_history_while_it_streams_and_the_final_record_replaces_it(chat):
    gate = Gate()
    run, saving, ended = start(chat, ["first ", "words ", gate, "and the end", FinishReason("stop")])
    assert gate.reached.wait(30)
    clock = Clock()
    saving.clock = clock  # from here on, count the saver's chances
    assert clock.looked.wait(60), "a stalled stream still wakes the saver"
    live = chat.store.get(chat.notebook, chat.config.thread, "A")
    assert (live.status, live.answer, live.provider) == ("streaming", "first words ", "Scripted")
    gate.open.set()
    assert run.wait(30)
    chat.record("question", ended[0], cell_id="A")
    final = chat.store.get(chat.notebook, chat.config.thread, "A")
    assert (final.status, final.answer) == ("ok", "first words and the end")


def test_a_rerun_that_dies_before_its_first_word_leaves_the_earlier_answer(chat):
    chat.store.record(chat.notebook, chat.config.thread, "A", "question", "the earlier answer")
    gate = Gate()
    clock = Clock()
    run, saving, ended = start(chat, [gate, "never shown"], clock=clock, ticks=0.01)
    assert gate.reached.wait(30)
    assert clock.looked.wait(60), "the saver had its chances (woken while nothing arrives)"
    assert saving.saves == 0 and ("tick", None) in saving.inner.calls
    earlier = chat.store.get(chat.notebook, chat.config.thread, "A")
    assert (earlier.status, earlier.answer) == ("ok", "the earlier answer")
    run.cancel()
    assert run.wait(30)
    chat.record("question", ended[0], cell_id="A")  # interrupted with nothing: kept as it was
    assert chat.store.get(chat.notebook, chat.config.thread, "A").answer == "the earlier answer"


def test_saves_are_throttled_and_a_failing_store_never_stops_the_answer():
    calls: list[str] = []
    now = [0.0]

    def save(answer):
        calls.append(answer.text)
        raise OSError("disk full")

    saving = SavingRenderer(RecordingRenderer(), save, interval=1.0, clock=lambda: now[0])
    answer = Answer("Scripted")
    for piece, at in [("a", 0.2), ("b", 0.5), ("c", 1.1), ("d", 1.5), ("e", 2.2)]:
        now[0] = at
        answer.feed(piece)
        saving.update(answer)
    assert calls == ["abc", "abcde"], "at most one save a second, each with the answer so far"
    assert saving.inner.drawn[-1] == "abcde" and saving.saves == 0


async def test_the_panel_saves_its_answer_while_it_streams_too(chat):
    import asyncio

    from ipyg4f.panel import ChatPanel

    gate = Gate()
    ScriptedProvider.enqueue(["the panel's first words ", gate, "and the rest", FinishReason("stop")])
    chat.config.provider = "Scripted"
    panel = ChatPanel(chat=chat)
    try:
        panel.view.set_state({"prompt": "question"})
        panel.view._handle_custom_msg({"event": "send", "prompt": "question"}, [])
        [exchange] = panel.exchanges

        def saved():
            rows = chat.store.exchanges(chat.notebook, chat.config.thread)
            return [(e.status, e.answer) for e in rows]

        deadline = asyncio.get_running_loop().time() + 60
        while saved() != [("streaming", "the panel's first words ")]:  # about a second behind the panel
            assert asyncio.get_running_loop().time() < deadline, saved()
            await asyncio.sleep(0.05)
        gate.open.set()
        assert await asyncio.to_thread(exchange.wait, 30)
        assert saved() == [("ok", "the panel's first words and the rest")]
    finally:
        gate.open.set()
        panel.close()
        await panel.join(timeout=30)
