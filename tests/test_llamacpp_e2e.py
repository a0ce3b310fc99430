"""``-p LlamaCppServer`` end to end against xllamacpp's real llama.cpp HTTP server and the bundled GGUF.

What the protocol tests check against ``tests/protocol_server.py``, here against the real
server: ``%%chat`` in a real kernel (driven like JupyterLab), ``--map``, an interrupt in the
middle of an answer, ``--timeout`` while llama.cpp reads a long prompt, the panel (in
process), and a server that answers plain JSON to a streamed request.

The bundled model has no chat template: it writes until ``max_tokens`` (it never stops by
itself), which makes "an answer still being written" a state the tests can wait for rather
than a race.  The server runs one request at a time (``n_parallel`` 1): a request the client
gave up on must be cancelled by llama.cpp, or the next one would wait for it to end.
"""

from __future__ import annotations

import json
import random
import uuid

import pytest

from ipyg4f.events import FinishReason, Usage
from ipyg4f.providers import get_provider
from kernel_harness import Kernel
from llama_server import KEY, llama_server
from protocol_server import collect

pytestmark = [pytest.mark.kernel, pytest.mark.local_model]

N_CTX = 2048
LONG = 1500  # max tokens of an answer that is interrupted: minutes of writing on one thread


@pytest.fixture(scope="module")
def server():
    with llama_server(n_ctx=N_CTX, api_key=KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def kernel(server, tmp_path_factory):
    data = tmp_path_factory.mktemp("llamacpp-e2e")
    k = Kernel(env={"LLAMACPP_BASE_URL": server.url, "LLAMACPP_API_KEY": KEY, "IPYG4F_DATA_DIR": str(data),
                    "JPY_SESSION_NAME": str(data / "llamacpp.ipynb"), "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    k.ok("%load_ext ipyg4f\nimport json")
    yield k
    k.shutdown()


def thread() -> str:
    return f"llama-{uuid.uuid4().hex[:8]}"


def value(kernel: Kernel, expr: str):
    return json.loads(kernel.ok(f"print(json.dumps({expr}))").stream())


def answers_again(kernel: Kernel) -> None:
    """The kernel runs cells, and llama.cpp (one request at a time) answers a new request to its end."""
    assert "2" in kernel.ok("print(1 + 1)").stream()
    ex = kernel.run(f"%%chat -p LlamaCppServer -c {thread()} --max-tokens 3\nSay hi.", timeout=300)
    assert ex.status == "ok", ex.text()
    assert ex.final()["metadata"]["ipyg4f"]["status"] == "ok"


def test_a_chat_cell_streams_an_answer_from_llamacpp(kernel):
    ex = kernel.run(f"%%chat -p LlamaCppServer -c {thread()} --max-tokens 12\nSay hello.", timeout=300)
    assert ex.status == "ok", ex.text()
    final = ex.final()
    assert final["metadata"]["ipyg4f"]["status"] == "ok"
    assert final["metadata"]["ipyg4f"]["provider"] == "LlamaCppServer"
    assert final["data"]["text/plain"].strip()
    assert len(ex.updates) >= 1, "streamed: the waiting display was updated before the end"
    assert [o["output_type"] for o in ex.outputs] == ["display_data"]


def test_an_interrupt_mid_answer_keeps_the_partial_answer_and_llamacpp_answers_again(kernel):
    t = thread()
    ex = kernel.send(f"%%chat -p LlamaCppServer -c {t} --max-tokens {LONG}\nCount from one to a thousand.",
                     cell_id=f"int-{t}")
    # a few updates in: llama.cpp is writing, far from its last token
    kernel.wait_for(ex, lambda m: len(ex.updates) >= 3, timeout=300)
    kernel.interrupt()
    kernel.wait(ex, timeout=120)
    assert ex.status == "error" and ex.error["ename"] == "ChatFailed", ex.text()
    final = ex.final()
    assert final["metadata"]["ipyg4f"]["status"] == "interrupted"
    partial = final["data"]["text/plain"]
    assert "interrupt" in partial and partial.split("\n")[0].strip(), "the partial answer is kept"
    history = kernel.ok(f"%chat history -c {t}").text()
    assert "interrupted" in history
    answers_again(kernel)


def test_a_timeout_while_llamacpp_reads_a_long_prompt_is_said_and_llamacpp_answers_again(kernel):
    """About 1000 new tokens of prompt (never seen before, so not in llama.cpp's prompt cache) take
    llama.cpp seconds on one thread before a first token: far beyond a 0.2 s ``--timeout``."""
    rng = random.Random(uuid.uuid4().int)
    prompt = " ".join(rng.choice(["river", "stone", "cloud", "amber", "violet", "copper", "maple", "harbor"])
                      + str(rng.randrange(100)) for _ in range(500))
    ex = kernel.run(f"%%chat -p LlamaCppServer -c {thread()} --timeout 0.2 --max-tokens 4\n{prompt}", timeout=300)
    assert ex.status == "error" and ex.error["ename"] == "ChatFailed", ex.text()
    message = "\n".join(ex.error["traceback"])
    assert "LlamaCppServer" in message and "0.2 s" in message, message
    assert ex.final()["metadata"]["ipyg4f"]["status"] == "error"
    answers_again(kernel)


def test_map_labels_every_item_through_llamacpp(kernel):
    t = uuid.uuid4().hex[:6]
    kernel.ok(f"items = ['{t} red', '{t} green', '{t} blue']")
    ex = kernel.run("%%chat --map items -p LlamaCppServer --max-tokens 3 -o out -j 2\nName a fruit that is {item}.",
                    timeout=300)
    assert ex.status == "ok", ex.text()
    out = value(kernel, "[list(out), out.errors, out.status, out.sent]")
    assert out[1:] == [{}, "ok", 3], out
    assert len(out[0]) == 3 and all(isinstance(a, str) and a for a in out[0]), out
    assert "3/3 answered, 0 from the store, 3 sent" in ex.stream()
    rerun = kernel.ok("%%chat --map items -p LlamaCppServer --max-tokens 3 -o again\nName a fruit that is {item}.")
    assert value(kernel, "list(again) == list(out)") is True
    assert "3/3 answered, 3 from the store, 0 sent" in rerun.stream()


def test_the_panel_streams_an_answer_from_llamacpp(server, tmp_path, monkeypatch):
    from ipyg4f.chat import Chat
    from ipyg4f.config import ChatConfig
    from ipyg4f.panel import ChatPanel

    monkeypatch.setenv("LLAMACPP_BASE_URL", server.url)
    monkeypatch.setenv("LLAMACPP_API_KEY", KEY)
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    chat = Chat(None, ChatConfig(provider="LlamaCppServer", history_path=str(tmp_path / "history.sqlite3"),
                                 provider_options={"LlamaCppServer": {"max_tokens": 12}}))  # the panel has no field
    panel = ChatPanel(chat=chat)
    try:
        assert panel.wait(120), "the model list was fetched"
        assert server.model in [value for _, value in panel.model.options], panel.model.options
        exchange = panel.submit("Say hello.")
        assert exchange is not None
        assert panel.wait(300)
        answer = exchange.answer
        assert (answer.status, answer.provider) == ("ok", "LlamaCppServer"), answer.error
        assert answer.text.strip() and answer.usage is not None and answer.usage.completion_tokens == 12
        [stored] = chat.store.exchanges(chat.notebook, panel.thread_name)
        assert stored.answer == answer.text
    finally:
        panel.close()
        chat.close()


@pytest.fixture
def json_only(server):
    """A proxy in front of llama.cpp that turns every streamed request into ``"stream": false``: a server
    that answers plain JSON to a request for a stream, with llama.cpp's own JSON."""
    import threading

    import aiohttp
    from aiohttp import web

    async def forward(request: web.Request) -> web.Response:
        body = await request.json()
        body["stream"] = False
        body.pop("stream_options", None)
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{server.url}/chat/completions", json=body,
                                    headers={"authorization": request.headers.get("authorization", "")}) as r:
                return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    import asyncio

    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", forward)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread_ = threading.Thread(target=loop.run_forever, daemon=True)
    thread_.start()
    yield f"http://127.0.0.1:{port}/v1"
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread_.join(timeout=30)
    loop.close()


async def test_a_plain_json_answer_to_a_streamed_request_is_read(json_only, monkeypatch):
    monkeypatch.setenv("LLAMACPP_BASE_URL", json_only)
    monkeypatch.setenv("LLAMACPP_API_KEY", KEY)
    provider = get_provider("LlamaCppServer")
    items = await collect(provider.create_async_generator("", [{"role": "user", "content": "Say hello."}],
                                                          max_tokens=4))
    text = [i for i in items if isinstance(i, str)]
    assert len(text) == 1 and text[0], items  # one piece: the whole answer at once
    assert items[-2:] == [FinishReason("length"), Usage(items[-1].prompt_tokens, 4)], items
