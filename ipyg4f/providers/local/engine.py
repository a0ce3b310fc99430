"""The llama.cpp engine behind ``Local``: one loaded model per process, one generation at a time.

The only module (beside :mod:`ipyg4f.gguf`'s pure-Python header check) that
touches ``xllamacpp``, and it imports it only when a model is first loaded.
How a request runs (see ``docs/local.md``):

* :func:`stream` starts a worker thread (``ipyg4f-local``, not a daemon); it
  waits its turn for the process-wide generation lock, never on the event loop;
* the worker loads the model if needed (once per process; another model or
  thread count replaces it) and runs the request;
* tokens go from llama.cpp's callback to the event loop with
  ``loop.call_soon_threadsafe`` into an :class:`asyncio.Queue`;
* closing or cancelling the stream sets :attr:`Job.stop`, which the callback
  checks at the next token, which makes llama.cpp cancel the request.

Public API: :class:`Job`, :func:`stream`, :func:`loaded`, :func:`busy`,
:func:`unload`, :func:`gguf_info`, :func:`default_threads`.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import MissingExtraError, ProviderError, ProviderTimeoutError, describe
from ...events import Note, ToolCalls, Usage
from ...gguf import GGUFInfo
from ..base import FinishReason
from . import bundled
from .common import INSTALL_HINT, NAME
from .job import (FALLBACK_CONTEXT, Job, chunk_error, context_for, default_threads, drop_oldest_exchange, gguf_info,
                  max_tokens_for, too_long)
from .tools import calls_in_text, first_call, may_be_a_call, repeats, results_as_question

__all__ = ["INSTALL_HINT", "NAME", "THREAD_NAME", "Job", "Loaded", "busy", "context_for", "default_threads",
           "gguf_info", "loaded", "max_tokens_for", "stream", "unload"]

#: the name of every worker thread
THREAD_NAME = "ipyg4f-local"

_GENERATION_LOCK = threading.Lock()
#: a demo model's answer shorter than this many tokens gets a note on how to get a real model
DEMO_SHORT_ANSWER = 24


@dataclass(frozen=True)
class Loaded:
    """What the model in memory was loaded with; a new object for every load."""

    path: Path
    n_threads: int
    n_ctx: int


# -- the public API -----------------------------------------------------------------------------


async def stream(job: Job, timeout: float | None = None) -> AsyncIterator[str | FinishReason | Usage | Note]:
    """Run ``job`` in a worker thread: yield its text, then its :class:`Usage`, notes and :class:`FinishReason`.

    ``timeout``: seconds without a token before a :class:`ProviderTimeoutError`;
    loading the model is work, not silence, and does not count.  Closing or cancelling the
    stream stops the worker at its next token.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def emit(kind: str, value: Any = None) -> None:
        if job.stop.is_set():
            return  # nobody is listening any more
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed
            job.stop.set()

    threading.Thread(target=_work, args=(job, emit), name=THREAD_NAME, daemon=False).start()
    started = False
    waiting = timeout
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), waiting)
            except TimeoutError:
                what = "stopped generating" if started else "produced nothing"
                raise ProviderTimeoutError(f"the local model {what} for {timeout:g} s",
                                           provider=NAME) from None
            if kind in ("loading", "ready"):  # the timeout counts from when the model is ready
                waiting = None if kind == "loading" else timeout
                continue
            started = True
            if kind == "text":
                yield value
            elif kind == "usage":
                yield Usage(*value)
            elif kind == "note":
                yield Note(value)
            elif kind == "tools":
                yield ToolCalls(tuple(name for name, _ in value), tuple(arguments for _, arguments in value))
            elif kind == "error":
                raise value
            else:  # "finish"
                yield FinishReason(value)
                return
    finally:
        job.stop.set()  # the worker's next token callback stops llama.cpp


def loaded() -> Loaded | None:
    """What is loaded now (the same object until the model is reloaded), or None."""
    return _MODEL.loaded


def busy() -> bool:
    """Whether a worker holds the generation lock (loading or generating) right now."""
    return _GENERATION_LOCK.locked()


def unload(timeout: float | None = None) -> bool:
    """Free the loaded model once the running generation (if any) ends; False on timeout."""
    if not _GENERATION_LOCK.acquire(timeout=-1 if timeout is None else timeout):
        return False
    try:
        _MODEL.drop()
    finally:
        _GENERATION_LOCK.release()
    return True


# -- the loaded model ---------------------------------------------------------------------------


class _Model:
    """The loaded llama.cpp server (in-process, no HTTP client involved); used under the lock."""

    def __init__(self) -> None:
        self.loaded: Loaded | None = None
        self.server: Any = None

    def drop(self) -> None:
        server, self.server, self.loaded = self.server, None, None
        del server  # the destructor stops llama.cpp's loop thread and frees the model

    def server_for(self, job: Job) -> tuple[Any, GGUFInfo]:
        """The server for ``job`` and its model's header, loading (or switching) the model only when needed."""
        # a bundled model is checked (stat calls; hashed when anything changed) before every load
        path = job.path.resolve() if job.path is not None else bundled_path(job.bundled)
        info = gguf_info(path)  # a clear error before llama.cpp sees a bad file
        same_model = self.loaded is not None and self.loaded.path == path
        threads = job.n_threads or (self.loaded.n_threads if same_model else default_threads())
        wanted = Loaded(path, threads, job.n_ctx or context_for(info))
        if self.loaded != wanted:
            self.drop()
            self.server = _load(wanted)
            self.loaded = wanted
        return self.server, info


_MODEL = _Model()


def bundled_path(name: str) -> Path:
    """The assembled and verified file of a bundled model (:func:`.bundled.path`)."""
    model = bundled.MODELS.get(name)
    if model is None:
        raise ProviderError(f"no bundled model {name!r}", provider=NAME)
    return bundled.path(model).resolve()


def _bundled_path() -> Path:
    """The tiny Gemma's file (the tests' fast model)."""
    return bundled_path(bundled.GEMMA.name)


def _load(model: Loaded) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise MissingExtraError(f"xllamacpp is not installed; {INSTALL_HINT}",
                                provider=NAME, hint=INSTALL_HINT) from None
    params = xllamacpp.CommonParams()
    params.model.path = str(model.path)
    params.n_ctx = model.n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = model.n_threads
    params.cpuparams_batch.n_threads = model.n_threads
    params.warmup = False
    params.verbosity = 0  # llama.cpp logs to fd 2, which ipykernel shows in the cell
    params.offline = True
    # The embedded server also listens on a random 127.0.0.1 port; nobody but this
    # process may use it: a random key, no web UI, no cross-origin requests.
    params.api_keys = [secrets.token_urlsafe(32)]
    params.cors_origins = "http://127.0.0.1"
    params.ui = False
    params.endpoint_slots = False
    try:
        return xllamacpp.Server(params)
    except Exception as exc:
        raise ProviderError(f"llama.cpp could not load {model.path} ({describe(exc)})", provider=NAME,
                            hint="is it a GGUF model of an architecture this llama.cpp supports?") from None


# -- the worker thread --------------------------------------------------------------------------


def _acquire(stop: threading.Event) -> bool:
    """Wait for the generation lock; give up (False) once the caller has gone away."""
    while not _GENERATION_LOCK.acquire(timeout=0.1):
        if stop.is_set():
            return False
    return True


def _work(job: Job, emit: Callable[..., None]) -> None:
    """The worker thread: load if needed, generate, hand every piece of text to ``emit``."""
    try:
        if not _acquire(job.stop):
            return
        try:
            if job.stop.is_set():
                return
            emit("loading")  # loading the model is work, not silence: the timeout waits (see stream)
            server, info = _MODEL.server_for(job)
            emit("ready")
            finish = _generate(server, job, emit, _MODEL.loaded.n_ctx, info)
        finally:
            _GENERATION_LOCK.release()
        if finish is not None:
            emit("finish", finish)
    except ProviderError as exc:
        emit("error", exc)
    except Exception as exc:  # never let the worker die silently
        emit("error", ProviderError(f"the local model failed: {describe(exc)}", provider=NAME))


def _generate(server: Any, job: Job, emit: Callable[..., None], n_ctx: int = FALLBACK_CONTEXT,
              info: GGUFInfo | None = None) -> str | None:
    """Run one request; the reason it finished, or None if it was stopped.

    A chat whose prompt does not fit in the context loses its oldest exchanges, one at a time
    (llama.cpp says so after tokenising, before any work), with a note for the user.
    """
    fmt, request = job.request(n_ctx, info)
    dropped = 0
    while True:
        state = _run(server, fmt, request, job, emit)
        if not (state["error"] and too_long(state["error"]) and fmt == "chat" and not state["sent"]):
            break
        shorter = drop_oldest_exchange(request["messages"])
        if shorter is None or job.stop.is_set():
            raise ProviderError(f"the question alone does not fit in the model's context ({n_ctx} tokens)",
                                provider=NAME, hint="ask a shorter question, or raise ChatConfig.local_context_size")
        request["messages"] = shorter
        dropped += 1
    if state["error"]:
        raise ProviderError(state["error"], provider=NAME,
                            hint="a shorter conversation may fit (clear the history)"
                            if "context" in state["error"] else None)
    if job.stop.is_set():
        return None
    if dropped:
        emit("note", f"the {dropped} oldest exchange{'s' if dropped > 1 else ''} did not fit in the model's "
                     f"context ({n_ctx} tokens) and {'were' if dropped > 1 else 'was'} left out")
    calls = _calls(request, state)
    if calls and repeats(calls, request["messages"]) and not job.stop.is_set():
        # A small model may ask again for what a tool already answered (the 0.5B Qwen does, whenever
        # tools are offered after a result): ask once more without tools, so it answers from the result.
        request = {key: value for key, value in request.items() if key not in ("tools", "tool_choice")}
        request["messages"] = results_as_question(request["messages"])
        state, calls = _run(server, fmt, request, job, emit), []
        if state["error"]:
            raise ProviderError(state["error"], provider=NAME)
        if job.stop.is_set():
            return None
    if state["usage"] is not None:
        emit("usage", state["usage"])
    if (note := _demo_note(job, state)) is not None:
        emit("note", note)
    if calls:
        emit("tools", calls)
        return "tool_calls"
    if state["hold"]:  # held back in case it was a call written as text: it was not
        emit("text", "".join(state["hold"]))
    return state["finish"] or "stop"


def _calls(request: dict[str, Any], state: dict[str, Any]) -> list[tuple[str, str]]:
    """The answer's tool calls: llama.cpp's structured ones, else those written as JSON or in tags."""
    calls = [(name, arguments) for _, (name, arguments) in sorted(state["calls"].items()) if name]
    if not calls and state["hold"]:
        calls = calls_in_text("".join(state["hold"]), {tool["function"]["name"] for tool in request.get("tools") or ()})
    return calls


def _demo_note(job: Job, state: dict[str, Any]) -> str | None:
    """A demo model that stopped after a handful of tokens: say what it is and how to get a real model."""
    model = bundled.MODELS.get(job.bundled)
    if model is None or not model.demo or (state["finish"] or "stop") != "stop":
        return None
    tokens = state["usage"][1] if state["usage"] is not None else state["pieces"]
    if tokens >= DEMO_SHORT_ANSWER:
        return None
    return (f"{model.name} is a tiny demo model (one-line answers, often wrong): drop -m for "
            f"{bundled.DEFAULT}, or %chat pull Qwen/Qwen2.5-1.5B-Instruct-GGUF for a bigger one")


def _run(server: Any, fmt: str, request: dict[str, Any], job: Job, emit: Callable[..., None]) -> dict[str, Any]:
    """One llama.cpp call; what it said (finish reason, error, usage, whether text was sent)."""
    state: dict[str, Any] = {"finish": None, "error": None, "started": False, "sent": False, "usage": None,
                             "pieces": 0, "calls": {},
                             # with tools offered, text that may still be a call written as text is held back
                             "hold": [] if request.get("tools") else None, "called": False,
                             "names": {tool["function"]["name"] for tool in request.get("tools") or ()}}

    def on_chunk(chunk: Any) -> bool:  # True stops llama.cpp; exceptions here would be swallowed
        try:
            if job.stop.is_set() or state["called"]:
                return True
            error = chunk_error(chunk)
            if error:
                state["error"] = error
                return True
            usage = chunk.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                state["usage"] = (usage.get("prompt_tokens"), usage["completion_tokens"])
            for choice in chunk.get("choices") or ():
                text = choice.get("text")
                if text is None:
                    text = (choice.get("delta") or {}).get("content")
                if text and not state["started"]:  # e.g. the Q/A prompt ends in "A:": drop the space
                    text = text.lstrip()
                    state["started"] = bool(text)
                if text:
                    state["sent"] = True
                    state["pieces"] += 1
                    _text(text, state, emit)
                for call in (choice.get("delta") or {}).get("tool_calls") or ():
                    function = call.get("function") or {}
                    name, arguments = state["calls"].get(call.get("index", 0), ("", ""))
                    state["calls"][call.get("index", 0)] = (name or function.get("name") or "",
                                                            arguments + (function.get("arguments") or ""))
                if choice.get("finish_reason"):
                    state["finish"] = choice["finish_reason"]
            return False
        except Exception as exc:
            state["error"] = f"unexpected chunk from llama.cpp ({describe(exc)})"
            return True

    if fmt == "qa":
        server.handle_completions(request, on_chunk)
    else:
        server.handle_chat_completions(request, on_chunk)
    return state


def _text(text: str, state: dict[str, Any], emit: Callable[..., None]) -> None:
    if state["hold"] is None:
        emit("text", text)
        return
    state["hold"].append(text)
    held = "".join(state["hold"])
    if ("}" in text or "]" in text) and first_call(held, state["names"]):
        state["called"] = True  # a whole call written as text: stop there (what follows is not needed)
        return
    if held.strip() and not may_be_a_call(held):  # an answer, not a call: stream from here on
        state["hold"] = None
        emit("text", held)
