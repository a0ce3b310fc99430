"""Cost and context in a real ipykernel (issue 22): the answer's footer shows its price (the user's, for a
llama.cpp server they pay for) and the context it fills of the window the server reported at ``/props``,
and warns at 80 %; ``%chat cost`` and ``%chat export`` read what was stored."""

from __future__ import annotations

import json
import uuid

import pytest

from kernel_harness import Kernel

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def kernel(_protocol_server_session, tmp_path_factory):
    server = _protocol_server_session  # conftest's: the tests get it reset as protocol_server
    data_dir = tmp_path_factory.mktemp("ipyg4f-cost")
    k = Kernel(env={
        "LLAMACPP_BASE_URL": server.base_url + "/v1",
        "IPYG4F_DATA_DIR": str(data_dir),
        "JPY_SESSION_NAME": str(data_dir / "notebook.ipynb"),
    }, cwd=str(data_dir))
    k.ok("%load_ext ipyg4f")
    k.ok("%chat use -p LlamaCppServer -m test-model")
    k.ok("%config ChatConfig.prices = {'test-model': {'input': 2.0, 'output': 8.0}}")
    yield k
    k.shutdown()


def footer_of(ex) -> str:
    return ex.final()["data"]["text/html"]


def test_the_footer_shows_the_price_and_the_context_and_warns_when_full(kernel, protocol_server):
    server = protocol_server
    server.props_n_ctx = 4096
    server.prompt_tokens, server.completion_tokens = 1000, 200
    thread = f"t{uuid.uuid4().hex[:8]}"
    first = kernel.run(f"%%chat -c {thread}\nfirst question")
    assert first.status == "ok", first.text()
    assert "$0.0036" in footer_of(first)  # 1000 x $2/M + 200 x $8/M
    # the window is asked for on a thread of its own, never on the answer's path: wait until it has come
    kernel.ok(f"from ipyg4f.pricing.window import wait_served\nassert wait_served({server.base_url!r}, 60)")
    assert [r.path for r in server.requests].count("/props") == 1
    second = kernel.run(f"%%chat -c {thread}\nsecond question")
    html = footer_of(second)
    assert "$0.0036" in html and "context 1.2k/4.1k" in html and "filling up" not in html
    server.prompt_tokens = 3300
    third = kernel.run(f"%%chat -c {thread}\nthird question")
    assert "context 3.5k/4.1k (85 %: the thread is filling up; %chat reset or --new starts afresh" in footer_of(third)
    assert [r.path for r in server.requests].count("/props") == 1  # once per base URL
    cost = kernel.ok(f"%chat cost -c {thread}").text()
    row = [" ".join(line.split()) for line in cost.splitlines() if line.startswith("LlamaCppServer")]
    assert row == ["LlamaCppServer test-model 3 5,300 600 $0.02"]  # $0.0036 + $0.0036 + $0.0082
    kernel.ok(f"%chat export {thread}.json -c {thread}")
    exported = json.loads(kernel.ok(f"print(open({thread + '.json'!r}).read())").stream())
    assert exported["exchanges"][-1]["usage"] == {"input": 3300, "output": 200, "cost": pytest.approx(0.0082),
                                                  "context": 3500, "window": 4096}
