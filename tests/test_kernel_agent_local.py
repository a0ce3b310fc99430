"""Issue 20's end-to-end tool path: ``%%chat -p Local --tools notebook`` in a real kernel, the bundled
Qwen2.5-Coder-0.5B-Instruct (llama.cpp in process) asked about a DataFrame: it calls ``describe`` with
the frame's name, the real tool describes the real frame, and the model answers from that description."""

from __future__ import annotations

import json
import uuid

import pytest

from kernel_harness import Kernel

pytestmark = [pytest.mark.kernel, pytest.mark.local_model]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    data = tmp_path_factory.mktemp("agent-local")
    k = Kernel(env={"IPYG4F_DATA_DIR": str(data), "JPY_SESSION_NAME": str(data / "agent-local.ipynb"),
                    "IPYG4F_PROVIDER": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    k.ok("%load_ext ipyg4f")
    yield k
    k.shutdown()


@pytest.mark.timeout(900)  # two generations on one thread of a busy machine
def test_local_calls_describe_on_the_frame_and_answers_from_its_description(kernel):
    kernel.ok("import pandas as pd\n"
              "df = pd.DataFrame({'price': [1.0, 2.0, None, 7.0], 'item': ['a', 'b', 'c', 'd']})")
    thread = f"t{uuid.uuid4().hex[:8]}"
    ex = kernel.run(f"%%chat -p Local --tools notebook -c {thread}\n"
                    "How many null values does the price column of the DataFrame df have?", timeout=600)
    assert ex.status == "ok", ex.text()
    final = ex.final()
    html, answer = final["data"]["text/html"], final["data"]["text/plain"]
    assert html.count('<details class="ipyg4f-step"') == 1 and "describe" in html
    assert "1 null" in html, "the frame's description (the tool's real result) is in the step's block"
    assert not answer.lstrip().startswith(("{", "[", "<tool_call>")), f"prose, not a call written out: {answer!r}"
    assert "1" in answer and "null" in answer.lower(), answer
    kernel.ok(f"from ipyg4f.chat import get_chat; ex = get_chat().store.exchanges(get_chat().notebook, {thread!r})[0]")
    steps = json.loads(kernel.ok("import json; print(json.dumps(ex.step_list()))").stream())
    assert [(s["tool"], json.loads(s["arguments"]), s["error"]) for s in steps] == [("describe", {"name": "df"}, False)]
