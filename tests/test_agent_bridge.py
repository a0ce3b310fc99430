"""The loop on a worker loop, its synchronous work on the main (cell) thread, and a real SIGINT.

This is how ``%%chat --tools`` will run: the stream on the runner's worker
thread, ``run_python`` / the user's functions / the approval prompt on the
cell's thread (:class:`~ipyg4f.agent.bridge.CellThread`).  The interrupt is a
real SIGINT delivered while the model's code sleeps.
"""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest

from ipyg4f.agent.approval import Policy
from ipyg4f.agent.bridge import CellThread
from ipyg4f.agent.calls import ToolCallPart
from ipyg4f.agent.functions import function_tool
from ipyg4f.agent.loop import DONE, INTERRUPTED, ToolLoop
from ipyg4f.agent.python import python_tool


class Shell:
    def __init__(self, **names):
        self.user_ns = dict(names)

    @staticmethod
    def transform_cell(code):
        return code


def scripted(*answers):
    async def request(messages, tools):
        for item in answers[sum(m["role"] == "assistant" for m in messages)]:
            yield item
    return request


def run_on_worker(loop, request, bridge):
    """The loop on a worker thread's event loop; its sync work served here until it ends."""
    return {"text": bridge.run_blocking(lambda: loop.run(request, [{"role": "user", "content": "go"}]))}


def interrupted_run(loop, request, bridge, when: threading.Event) -> None:
    """Run it; once ``when`` is set, a SIGINT to this (the cell's) thread, as the kernel's interrupt lands.
    The run must end in KeyboardInterrupt."""
    main = threading.get_ident()

    def interrupt():
        if when.wait(60):
            signal.pthread_kill(main, signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    killer = threading.Thread(target=interrupt)
    killer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_on_worker(loop, request, bridge)
    finally:
        when.set()
        killer.join(60)
        signal.signal(signal.SIGINT, previous)


def test_sync_tools_and_asking_run_on_the_serving_thread():
    here = threading.get_ident()
    seen = []

    def where(label: str) -> str:
        seen.append(("tool", threading.get_ident()))
        return label

    def ask(tool, shown):
        seen.append(("ask", threading.get_ident()))
        return "y"

    bridge = CellThread()
    request = scripted([ToolCallPart(0, "a", "where", '{"label": "x"}'),
                        ToolCallPart(1, "b", "run_python", '{"code": "import threading\\nthreading.get_ident()"}')],
                       ["done"])
    loop = ToolLoop([function_tool(where), python_tool(Shell())], Policy("ask", ask), run_sync=bridge.run)
    outcome = run_on_worker(loop, request, bridge)
    assert outcome == {"text": "done"} and loop.outcome == DONE
    assert seen == [("tool", here), ("ask", here)]
    assert loop.steps[1].result == f"result: {here}"


def test_a_sigint_during_run_python_stops_the_loop_and_keeps_the_steps():
    started = threading.Event()
    # short sleeps: a signal that lands just before a long sleep's system call waits for its end (CPython)
    code = "started.set()\nimport time\nwhile True:\n    time.sleep(0.05)"
    request = scripted([ToolCallPart(0, "a", "run_python", '{"code": "1 + 1"}')],
                       [ToolCallPart(0, "b", "run_python", __import__("json").dumps({"code": code}))],
                       ["never"])
    bridge = CellThread()
    loop = ToolLoop([python_tool(Shell(started=started))], Policy("auto"), run_sync=bridge.run)
    interrupted_run(loop, request, bridge, started)
    assert loop.outcome == INTERRUPTED
    assert [s.result for s in loop.steps] == ["result: 2", "interrupted by the user"]
    assert loop.messages[-1] == {"role": "tool", "tool_call_id": "b", "content": "interrupted by the user"}


def test_a_function_that_exits_is_an_error_for_the_model_not_the_end_of_the_loop():
    def leave() -> str:
        raise SystemExit("bye")

    bridge = CellThread()
    request = scripted([ToolCallPart(0, "a", "leave", "{}")], ["ok"])
    loop = ToolLoop([function_tool(leave)], run_sync=bridge.run)
    assert run_on_worker(loop, request, bridge) == {"text": "ok"}
    assert loop.steps[0].result == "error: RuntimeError: SystemExit: bye"


def test_a_sigint_while_the_answer_streams_cancels_the_run_and_keeps_what_came():
    streaming = threading.Event()

    async def request(messages, tools):
        if len(messages) == 1:
            yield ToolCallPart(0, "a", "run_python", '{"code": "1"}')
            return
        yield "half an "
        streaming.set()
        await asyncio.Event().wait()  # a stalled service: only the interrupt ends it
        yield "answer"

    bridge = CellThread()
    loop = ToolLoop([python_tool(Shell())], Policy("auto"), run_sync=bridge.run)
    interrupted_run(loop, request, bridge, streaming)
    assert loop.outcome == INTERRUPTED and loop.text == "half an " and [s.result for s in loop.steps] == ["result: 1"]
