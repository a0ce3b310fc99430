"""``--compare`` / ``--race`` / ``%chat pick`` in a real kernel driven like JupyterLab (cell ids), against
real software where it runs offline: xllamacpp's llama.cpp HTTP server beside ``Local`` (the bundled tiny
Gemma), gpt4free's own ``g4f:Custom`` racing a silent answer against a live one; and the protocol server for
what must be counted (one display, every column in the saved output, an interrupt)."""

from __future__ import annotations

import json
import uuid

import pytest

from kernel_harness import Kernel
from llama_server import KEY, llama_server
from protocol_server import ProtocolServer

pytestmark = [pytest.mark.kernel]


@pytest.fixture(scope="module")
def srv():
    with ProtocolServer() as server:
        yield server


@pytest.fixture(scope="module")
def kernel(srv, tmp_path_factory):
    data = tmp_path_factory.mktemp("compare-kernel")
    k = Kernel(env={"IPYG4F_DATA_DIR": str(data), "JPY_SESSION_NAME": str(data / "compare.ipynb"),
                    "IPYG4F_PROVIDER": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    k.ok("%load_ext ipyg4f\nimport json\n%config ChatConfig.provider_options = "
         + repr({"Ollama": {"base_url": f"{srv.base_url}/v1"}, "g4f:Custom": {"base_url": f"{srv.base_url}/v1"}}))
    yield k
    k.shutdown()


@pytest.fixture
def server(srv):
    srv.reset()
    return srv


def thread() -> str:
    return f"cmp-{uuid.uuid4().hex[:8]}"


def value(kernel: Kernel, expr: str):
    return json.loads(kernel.ok(f"print(json.dumps({expr}))").stream())


def test_columns_stream_in_one_display_and_the_saved_output_keeps_every_column(kernel, server):
    server.answer = " ".join(f"word{i}" for i in range(60))
    server.chunk_delay = 0.01  # pacing, so that the answers are seen while they stream
    t = thread()
    ex = kernel.run(f"%%chat -c {t} --compare Ollama=alpha,Ollama=beta,g4f:Custom=gamma\nSay many words.",
                    timeout=120)
    assert ex.status == "ok", ex.text()
    streaming = [m for m in ex.updates if m["content"]["metadata"].get("ipyg4f", {}).get("status") == "streaming"]
    assert streaming, "the columns were shown while they streamed"
    grid = [m for m in ex.displays if 'class="ipyg4f-columns"' in m["content"]["data"].get("text/html", "")][0]
    assert {m["content"]["transient"]["display_id"] for m in streaming} == \
        {grid["content"]["transient"]["display_id"]}, "one display, updated in place"
    assert all("<style>" not in m["content"]["data"]["text/html"] for m in streaming), "the CSS is sent once"
    saved, buttons = ex.outputs  # what the notebook keeps: one output with every column, then the pick buttons
    assert "application/vnd.jupyter.widget-view+json" in buttons["data"]
    assert buttons["data"]["text/plain"] == f"(pick a column: %chat pick N -c {t})"
    html = saved["data"]["text/html"]
    for n, who in enumerate(["Ollama (alpha)", "Ollama (beta)", "g4f:Custom (gamma)"], 1):
        assert f'data-column="{n}"' in html and f"{n}. {who}" in html
    assert html.count('class="ipyg4f-footer"') == 3 and "word59" in html
    columns = saved["metadata"]["ipyg4f"]["columns"]
    assert [c["status"] for c in columns] == ["ok"] * 3 and all("first token" in c["footer"] for c in columns)
    assert "word59" in saved["data"]["text/markdown"] and "### 3. g4f:Custom (gamma)" in saved["data"]["text/markdown"]
    # the bytes sent while streaming stay a small multiple of the final grid (not every column resent per chunk)
    sent = sum(len(m["content"]["data"]["text/html"]) for m in ex.updates)
    assert len(ex.updates) < 60 * 3 and sent < 40 * len(html), (len(ex.updates), sent, len(html))


def test_pick_in_a_kernel_continues_the_thread_with_that_column(kernel, server):
    server.echo = True
    t = thread()
    kernel.ok(f"%%chat -c {t} --compare Ollama=alpha,Ollama=beta\nFirst question", cell_id=f"{t}-1")
    assert "continues with column 2: Ollama (beta)" in kernel.ok(f"%chat pick 2 -c {t}").stream()
    kernel.ok(f"%%chat -c {t} -p Ollama -m alpha\nFollow-up", cell_id=f"{t}-2")
    sent = server.requests[-1].json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "First question"), ("assistant", "First question"), ("user", "Follow-up")]
    # re-running the compared cell replaces every answer and the pick
    kernel.ok(f"%%chat -c {t} --compare Ollama=beta,Ollama=alpha,Ollama=gamma\nAgain", cell_id=f"{t}-1")
    kernel.ok("from ipyg4f.chat import get_chat\n_c = get_chat()")
    rows = value(kernel, f"[(e.prompt, e.answer, [v['model'] for v in e.variant_list()]) "
                         f"for e in _c.store.exchanges(_c.notebook, {t!r})]")
    assert rows[0] == ["Again", "", ["beta", "alpha", "gamma"]]


def test_an_interrupt_stops_every_column_and_keeps_what_came(kernel, server):
    server.answer, server.fault, server.fault_after = "one two three four", "stall", 3
    server.fault_path = "/v1/chat/completions"
    ex = kernel.send(f"%%chat -c {thread()} --compare Ollama=alpha,g4f:Custom=beta\nq")
    assert server.wait_stalled(2, 60)
    kernel.wait_for(ex, lambda m: any("two" in (u["content"]["data"]["text/html"]) and
                                      u["content"]["data"]["text/html"].count("two") >= 2 for u in ex.updates),
                    timeout=60)
    kernel.interrupt()
    kernel.wait(ex, timeout=60)
    assert ex.status == "error" and ex.error["ename"] == "ChatFailed", ex.text()
    assert server.wait_dropped(2, 60), "both connections closed"
    saved = [o for o in ex.outputs if o["output_type"] == "display_data"][0]
    columns = saved["metadata"]["ipyg4f"]["columns"]
    assert [c["status"] for c in columns] == ["interrupted"] * 2
    assert saved["data"]["text/plain"].count("stopped by interrupt; partial answer kept") == 2
    assert kernel.ok("print('alive')").stream() == "alive\n"


def test_race_with_g4f_custom_a_silent_answer_loses_and_its_connection_closes(kernel, server):
    server.fault, server.fault_path, server.fault_match = "stall", "/v1/chat/completions", '"model": "silent"'
    server.answer = "the live one answered"
    ex = kernel.run(f"%%chat -c {thread()} --race g4f:Custom=silent,g4f:Custom=live -o won\nWho is first?",
                    timeout=120)
    assert ex.status == "ok", ex.text()
    assert value(kernel, "won") == "the live one answered"
    footer = ex.final()["metadata"]["ipyg4f"]["footer"]
    assert footer.startswith("g4f:Custom (live) won the race (g4f:Custom: cancelled)"), footer
    assert server.wait_dropped(1, 60) and server.dropped[0].json["model"] == "silent"


@pytest.mark.local_model
def test_compare_llamacpp_server_and_local_side_by_side(kernel):
    with llama_server(n_ctx=1024, api_key=KEY) as llama:
        kernel.ok(f"import os\nos.environ['LLAMACPP_BASE_URL'] = {llama.url!r}\n"
                  f"os.environ['LLAMACPP_API_KEY'] = {KEY!r}")
        ex = kernel.run(f"%%chat -c {thread()} --compare LlamaCppServer,Local --max-tokens 8\nName a colour.",
                        timeout=300)
    assert ex.status == "ok", ex.text()
    saved = ex.outputs[0]
    columns = saved["metadata"]["ipyg4f"]["columns"]
    assert [c["provider"] for c in columns] == ["LlamaCppServer", "Local"]
    assert [c["status"] for c in columns] == ["ok", "ok"], columns
    plain = saved["data"]["text/plain"]
    assert "1. LlamaCppServer" in plain and "2. Local" in plain
    texts = [part.split("\n", 1)[1] for part in plain.split("── ")[1:] if "\n" in part]
    assert all(text.strip() for text in texts), plain
