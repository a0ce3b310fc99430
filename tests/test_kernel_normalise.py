"""Issue 18 §3 in a real ipykernel, as the issue found it: ``-p OpenAI --base-url <llama.cpp>`` names the
model that answered (xllamacpp's real llama.cpp HTTP server), and a gpt4free class's ``<think>`` text
(gpt4free's own ``Custom`` against the local protocol server) stays out of the answer, ``-o VAR`` and the
next request."""

from __future__ import annotations

import pytest

from kernel_harness import Kernel
from protocol_server import ProtocolServer
from test_llamacpp_server import KEY, llama_server  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.kernel, pytest.mark.local_model]


@pytest.fixture(scope="module")
def server():
    with ProtocolServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ipyg4f-data")
    k = Kernel(env={"IPYG4F_DATA_DIR": str(data_dir), "JPY_SESSION_NAME": str(data_dir / "notebook.ipynb"),
                    "LLAMA_TEST_KEY": KEY, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": ""})
    k.ok("%load_ext ipyg4f")
    yield k
    k.shutdown()


def test_the_cell_names_the_model_that_answered_and_the_one_asked_for(kernel, llama_server):  # noqa: F811
    ex = kernel.run(f"%%chat -p OpenAI --base-url {llama_server.url} --api-key-env LLAMA_TEST_KEY "
                    "--max-tokens 3 -c served\nSay hello.", timeout=180)
    assert ex.status == "ok", ex.text()
    final = ex.final()
    meta = final["metadata"]["ipyg4f"]
    assert (meta["provider"], meta["model"], meta["requested_model"]) == ("OpenAI", llama_server.model, "gpt-4o-mini")
    gguf = llama_server.model.rsplit("/", 1)[-1]
    assert meta["footer"].startswith(f"OpenAI ({gguf}, asked for gpt-4o-mini) · ")
    assert meta["footer"] in final["data"]["text/html"]


def test_a_gpt4free_class_thinking_in_its_text_is_thinking(kernel, server):
    server.reasoning, server.think_tags = "Let me think", True
    cell = f"%%chat -p g4f:Custom --base-url {server.base_url}/v1 -m test-model -c thinks"
    ex = kernel.run(f"{cell} -o reply\nhi")
    assert ex.status == "ok", ex.text()
    final = ex.final()
    assert final["data"]["text/plain"] == "Hello world"
    assert 'class="ipyg4f-thinking"' in final["data"]["text/html"] and "Let me think" in final["data"]["text/html"]
    assert kernel.ok("print(repr(reply))").stream().strip() == "'Hello world'"
    server.reset()
    assert kernel.run(f"{cell}\nand then?").status == "ok"
    sent = str(server.requests[-1].json["messages"])
    assert "Hello world" in sent and "Let me" not in sent and "think>" not in sent
