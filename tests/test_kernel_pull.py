"""A model pulled from a (local, Hub-like) server in a real kernel: %%chat -m hf:REPO pulls it with a
progress bar, %chat models lists it, %chat use makes it the default, and it answers with the Hub gone."""

from __future__ import annotations

import pytest

from gguf_build import templated_gguf
from hub_server import HubServer
from kernel_harness import Kernel

pytestmark = [pytest.mark.kernel, pytest.mark.local_model]

REPO = "acme/Transcript-GGUF"
NAME = f"hf:{REPO}/transcript-q4_k_m.gguf"


@pytest.fixture(scope="module")
def hub_and_kernel(tmp_path_factory):
    model = templated_gguf(tmp_path_factory)
    data = tmp_path_factory.mktemp("pull-data")
    server = HubServer({REPO: {model.name: model}})
    server.__enter__()
    k = Kernel(env={"IPYG4F_DATA_DIR": str(data), "JPY_SESSION_NAME": str(data / "pull.ipynb"),
                    "IPYG4F_PROVIDER": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": "",
                    "HF_ENDPOINT": server.url, "HF_HOME": str(data / "hf"), "HF_HUB_OFFLINE": "",
                    "HF_HUB_CACHE": "", "HF_TOKEN": "", "IPYG4F_LOCAL_THREADS": "1"})
    k.ok("%load_ext ipyg4f")
    try:
        yield server, k
    finally:
        k.shutdown()
        server.__exit__(None, None, None)


def test_pull_use_then_chat_offline(hub_and_kernel):
    server, kernel = hub_and_kernel
    first = kernel.run(f"%%chat -p Local -m hf:{REPO} -c one\nWhat is the capital of France?", timeout=240)
    assert first.status == "ok", first.text()
    bars = [m for m in first.displays if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
    assert bars, "a progress widget was shown while pulling"
    assert f"✔ {NAME} (253.1 MB, Q4_K_M)" in first.stream()
    assert "Paris" in first.final()["data"]["text/plain"]
    assert len(server.gets("transcript-q4_k_m.gguf")) == 1

    server.__exit__(None, None, None)  # the Hub is gone from here on

    listed = kernel.ok("%chat models -p Local").text()
    assert NAME in listed and "253 MB" in listed and "Q4_K_M" in listed and "gemma-3-270m" in listed
    assert "default: Local" in kernel.ok(f"%chat use -p Local -m {NAME}").stream()
    again = kernel.ok("%chat pull " + REPO).stream()  # already on disk: said at once, nothing asked
    assert f"✔ {NAME}" in again

    ex = kernel.run("%%chat -c two -s \"Answer each question correctly, in one full sentence.\"\nWhat is the capital of France?", timeout=240)
    assert ex.status == "ok", ex.text()
    final = ex.final()
    assert final["metadata"]["ipyg4f"]["model"] == NAME
    assert "Paris" in final["data"]["text/plain"] and "\n" not in final["data"]["text/plain"].strip()
    assert len(ex.displays) >= 3, "streamed in several updates"
    footer = final["metadata"]["ipyg4f"]["footer"]
    assert "tokens/s" in footer and "≈" not in footer, footer  # counted by llama.cpp, not estimated
