"""``%chat fix`` in a real ipykernel (cell ids as JupyterLab sends them), against the local protocol server:
an interrupted chat cell does not hide the error, the fix has a thread of its own, and ``-f code`` offers
a cell only when the answer has code."""

from __future__ import annotations

import pytest

from kernel_harness import Kernel
from test_kernel_chat import fresh, server  # noqa: F401  (the protocol server, reset before each test)

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ipyg4f-fix")
    k = Kernel(env={"OPENAI_BASE_URL": server.base_url + "/v1", "OPENAI_API_KEY": "sk-test-fix",
                    "IPYG4F_DATA_DIR": str(data_dir), "JPY_SESSION_NAME": str(data_dir / "fix.ipynb")})
    k.ok("%load_ext ipyg4f")
    k.ok("%chat use -p OpenAI")
    yield k
    k.shutdown()


def last_request(server) -> list[dict]:
    return [r for r in server.requests if r.path.endswith("/chat/completions")][-1].json["messages"]


def next_inputs(ex) -> list[str]:
    return [p["text"] for p in ex.reply["content"]["payload"] if p["source"] == "set_next_input"]


def test_fix_after_an_interrupted_chat_cell_finds_the_error_and_keeps_to_its_own_thread(kernel, server):
    server.answer = "An earlier answer in the default thread."
    kernel.ok("%%chat\nWhat is a quartile?", cell_id="question")
    kernel.ok("def ratio(a, b):\n    return a / b", cell_id="define")
    failed = kernel.run("ratio(1, 0)", cell_id="fails")
    assert failed.status == "error" and failed.error["ename"] == "ZeroDivisionError"

    server.reset()
    server.chunks = [f"part{i} " for i in range(400)]
    server.chunk_delay = 0.05
    chat = kernel.send("%%chat\nA long answer, please", cell_id="interrupted")
    kernel.wait_for(chat, lambda m: m["msg_type"] == "update_display_data"
                    and "part2" in m["content"]["data"].get("text/html", ""))
    kernel.interrupt()
    kernel.wait(chat, timeout=30)
    assert chat.status == "error" and chat.error["ename"] == "ChatFailed"

    server.reset()
    server.answer = "You divided by zero: b is 0."
    fix = kernel.run("%chat fix", cell_id="fix")
    assert fix.status == "ok", fix.text()
    messages = last_request(server)
    assert [m["role"] for m in messages] == ["user"], "the default thread's exchanges are not sent along"
    content = messages[0]["content"]
    assert '<attachment name="last error" kind="ZeroDivisionError">' in content
    assert "return a / b" in content and "ratio(1, 0)" in content
    assert fix.final()["metadata"]["ipyg4f"]["thread"] == "fix"
    default = kernel.ok("%chat history").text()
    assert "What is a quartile?" in default and "last error" not in default and "fix" not in default


def test_fix_f_code_offers_a_cell_only_when_the_answer_has_code(kernel, server):
    kernel.ok("def ratio(a, b):\n    return a / b", cell_id="define2")
    assert kernel.run("ratio(2, 0)", cell_id="fails2").status == "error"
    server.answer = "You divided by zero; make sure b is not 0 before you call ratio."
    prose = kernel.ok("%chat fix -f code", cell_id="fix-prose")
    assert next_inputs(prose) == [], "prose is not offered as a code cell"
    assert prose.final()["data"]["text/plain"].startswith("You divided by zero")

    server.answer = "b is zero.\n\n```python\nratio(2, 1)\n```\n"
    code = kernel.ok("%chat fix -f code", cell_id="fix-code")
    assert next_inputs(code) == ["ratio(2, 1)"]
    assert code.final()["data"]["text/plain"].startswith("b is zero."), "the explanation is shown too"
    assert [m["role"] for m in last_request(server)] == ["user"], "each fix starts its thread afresh"

    server.answer = "Check b first."
    follow = kernel.ok("%%chat -c fix\nHow do I avoid it next time?", cell_id="follow")
    assert [m["role"] for m in last_request(server)] == ["user", "assistant", "user"], follow.text()
