"""The agent's core in a real ipykernel: approval through the kernel's stdin channel (yes, no,
all; no stdin), the model's code run in the user's namespace with its output in the cell, and a
kernel interrupt during that code.  The loop is driven the way ``%%chat --tools`` will drive it
(stream on a worker loop, tools and asking on the cell's thread); the model is scripted."""

from __future__ import annotations

import json
import textwrap

import pytest

from ipyg4f.agent.approval import QUESTION
from kernel_harness import Execution, Kernel

pytestmark = pytest.mark.kernel

SETUP = textwrap.dedent('''
    import json
    from ipyg4f.agent.approval import Policy, input_asker
    from ipyg4f.agent.bridge import CellThread
    from ipyg4f.agent.calls import ToolCallPart
    from ipyg4f.agent.loop import ToolLoop
    from ipyg4f.agent.toolsets import local_tools

    def agent(codes, approve="ask"):
        """Run a scripted model that asks run_python for each code in turn, then says 'done'."""
        answers = [[ToolCallPart(0, f"c{i}", "run_python", json.dumps({"code": c}))] for i, c in enumerate(codes)]
        answers.append(["done"])

        async def request(messages, tools):
            for item in answers[sum(m["role"] == "assistant" for m in messages)]:
                yield item

        global loop
        tools, _ = local_tools(["notebook", "python"], get_ipython())
        bridge = CellThread()
        ask = input_asker(lambda tool, shown: print("the model wants to run:", shown))
        loop = ToolLoop(tools, Policy(approve, ask), run_sync=bridge.run)
        try:
            bridge.run_blocking(lambda: loop.run(request, [{"role": "user", "content": "go"}]))
        finally:
            print("RESULTS", json.dumps([s.result for s in loop.steps]))
''')


@pytest.fixture(scope="module")
def kernel():
    k = Kernel()
    k.ok(SETUP)
    yield k
    k.shutdown()






def results(ex: Execution) -> list[str]:
    line = next(line for line in ex.stream().splitlines() if line.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


def test_yes_no_and_all_through_the_kernels_stdin(kernel):
    codes = ["n = 6\nprint('ran in the cell')\nn * 7", "gone = 1", "k = 2", "k + 1"]
    ex = kernel.send(f"agent({codes!r})", allow_stdin=True)
    assert [kernel.reply(ex, reply) for reply in ("y", "no", "a")] == [QUESTION] * 3
    kernel.wait(ex)
    assert ex.status == "ok", ex.text()
    assert results(ex) == ["printed:\nran in the cell\nresult: 42", "refused by the user", "done (no output, no value)",
                           "result: 3"]
    out = ex.stream()
    assert "the model wants to run: n = 6\nprint('ran in the cell')\nn * 7" in out
    assert "ran in the cell" in out and "the model wants to run: k + 1" not in out  # "all" covered it
    check = kernel.ok("print(n, k, 'gone' in globals())")
    assert check.stream().strip() == "6 2 False"


def test_without_stdin_the_call_is_refused_and_the_model_told_how_to_allow_it(kernel):
    ex = kernel.wait(kernel.send("agent(['never_run = 1'])", allow_stdin=False))
    assert ex.status == "ok", ex.text()
    [result] = results(ex)
    assert result.startswith("refused: the user could not be asked") and "--approve auto" in result
    assert kernel.ok("print('never_run' in globals())").stream().strip() == "False"


def test_an_interrupt_during_the_models_code_stops_the_cell_and_the_kernel_works(kernel):
    code = "print('started', flush=True)\nimport time\nwhile True:\n    time.sleep(0.05)"
    ex = kernel.send(f"agent([{code!r}], approve='auto')", allow_stdin=False)
    kernel.wait_for(ex, lambda m: m["msg_type"] == "stream" and "started" in m["content"]["text"])
    kernel.interrupt()
    kernel.wait(ex)
    assert ex.error and ex.error["ename"] == "KeyboardInterrupt"
    assert results(ex) == ["interrupted by the user"]
    assert kernel.ok("print(loop.outcome, 6 * 7)").stream().strip() == "interrupted 42"
