"""A GGUF that carries a chat template is prompted through it, for real: the bundled model with a
template and an end-of-turn token added (tests/gguf_build.py), run by llama.cpp."""

from __future__ import annotations

import pytest

from gguf_build import START_OF_TURN, templated_gguf
from ipyg4f.events import Note, Usage
from ipyg4f.gguf import check_gguf
from ipyg4f.providers.base import FinishReason
from ipyg4f.providers.local import Local, engine

pytestmark = pytest.mark.local_model

SYSTEM = "Answer each question correctly, in one full sentence."
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "What is the capital of Italy?"},
    {"role": "assistant", "content": "Rome is the capital of Italy."},
    {"role": "user", "content": "What is the capital of France?"},
]
#: what TRANSCRIPT_TEMPLATE makes of CONVERSATION (llama.cpp adds the BOS token itself)
RENDERED = (f"{SYSTEM}\n\nQ: What is the capital of Italy?\nA: Rome is the capital of Italy.\n"
            "Q: What is the capital of France?\nA:")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    assert Local.is_available(), "needs ipyg4f[local]"
    return str(templated_gguf(tmp_path_factory))


async def _collect(model: str, messages=CONVERSATION, **kwargs) -> list:
    return [item async for item in Local.create_async_generator(model, messages, n_threads=1, **kwargs)]


def _text(items: list) -> str:
    return "".join(item for item in items if isinstance(item, str))


def _completion(prompt: str, **options) -> dict:
    """The loaded model run on a raw prompt (no template): its last chunk (usage, text)."""
    chunks: list[dict] = []
    engine._MODEL.server.handle_completions({"prompt": prompt, "temperature": 0, **options},
                                            lambda c: chunks.append(c) or False)
    return chunks[-1]


def test_the_file_says_its_template_and_stop_token(model):
    info = check_gguf(model)
    assert info.has_chat_template and "\n" in info.stop_texts
    assert (info.context_length, info.quantization) == (32768, "Q4_K_M")


async def test_the_template_shapes_the_prompt_and_its_stop_token_ends_the_answer(model):
    items = await _collect(model, max_tokens=40)
    answer = _text(items)
    assert answer == "Paris is the capital of France."  # one line, no newline: the end-of-turn token stopped it
    assert items[-1] == FinishReason("stop")
    usage = next(i for i in items if isinstance(i, Usage))
    assert usage.completion_tokens < 40
    # the same text, given as a raw prompt, is the same number of tokens: the template was applied, and
    # nothing else (llama.cpp's fallback template or our Q/A prompt would differ)
    raw = _completion(RENDERED, max_tokens=1)
    assert raw["usage"]["prompt_tokens"] == usage.prompt_tokens
    assert _completion(RENDERED.replace(SYSTEM + "\n\n", ""), max_tokens=1)["usage"]["prompt_tokens"] < usage.prompt_tokens
    # and without its stop token the model would have gone on to write the next question
    assert "\nQ:" in _completion(RENDERED, max_tokens=16, ignore_eos=True)["choices"][0]["text"]


async def test_special_tokens_never_reach_the_answer(model):
    job = Local.plan(model, CONVERSATION, {"max_tokens": 4, "n_threads": 1})
    job.options["logit_bias"] = [[START_OF_TURN, 100.0]]  # the model can only say <start_of_turn>
    items = [item async for item in engine.stream(job)]
    assert next(i for i in items if isinstance(i, Usage)).completion_tokens == 4  # it did say it, 4 times
    assert _text(items) == ""
    assert items[-1] == FinishReason("length")


async def test_an_over_long_history_loses_its_oldest_exchanges_with_a_note(model):
    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"Question {i}: " + "tell me more " * 12},
                    {"role": "assistant", "content": f"Answer {i}: " + "there is more " * 12}]
    messages = [{"role": "system", "content": SYSTEM}, *history,
                {"role": "user", "content": "What is the capital of France?"}]
    items = await _collect(model, messages, n_ctx=512, max_tokens=16)
    notes = [i.text for i in items if isinstance(i, Note)]
    assert len(notes) == 1 and "oldest exchanges did not fit in the model's context (512 tokens)" in notes[0]
    dropped = int(notes[0].split()[1])
    assert 1 <= dropped < 12  # not more than needed: the most recent exchanges stay
    assert _text(items) and items[-1] in (FinishReason("stop"), FinishReason("length"))
    assert engine.loaded().n_ctx == 512
    usage = next(i for i in items if isinstance(i, Usage))
    assert usage.prompt_tokens < 512


async def test_context_and_answer_length_default_from_the_model(model):
    job = Local.plan(model, CONVERSATION, {})
    assert job.n_ctx == 0 and job.options["max_tokens"] is None  # decided from the file
    info = check_gguf(model)
    assert engine.context_for(info) == 4096  # its own 32768, capped
    fmt, request = job.request(engine.context_for(info))
    assert fmt == "chat" and request["max_tokens"] == 1024 and request["stop"] == ["<eos>", "\n"]
    assert engine.max_tokens_for("chat", 512) == 256 and engine.max_tokens_for("qa", 4096) == 256
