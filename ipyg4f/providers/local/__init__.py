"""The ``Local`` provider: offline answers from a GGUF model run in this process (``ipyg4f[local]``).

This module declares the provider and turns a call into a checked
:class:`~.engine.Job`; :mod:`.engine` loads llama.cpp and runs the job in a
worker thread, and :func:`~ipyg4f.messages.build_qa_prompt` writes the prompt
of a base model.

``model`` is a bundled model (:mod:`.bundled`: ``"qwen2.5-coder-0.5b"``, the
default, Qwen2.5-Coder-0.5B-Instruct, a small instruct model; or
``"gemma-3-270m"``, a *tiny base model*, fast, often wrong: the tests' model),
a model pulled from the Hugging Face Hub
(``hf:OWNER/NAME[/FILE.gguf]``, see :mod:`.hub`; found on disk, never
downloaded here) or the path of any GGUF file, which is prompted through its
own embedded chat template.  See ``docs/local.md``.

Keyword arguments: ``temperature`` (default 0: greedy, reproducible),
``max_tokens`` (256 for a base model, else 1024 or half the context),
``n_ctx`` (the context; default: the model's own, at most 4096 tokens),
``seed``, ``stop`` (list of strings), ``n_threads``
(else ``$IPYG4F_LOCAL_THREADS``, else :func:`~.engine.default_threads`), ``timeout``
(seconds without a token before a :class:`~ipyg4f.errors.ProviderTimeoutError`;
loading the model does not count) and
``tools`` (OpenAI tool definitions, given to the model's chat template; a
call comes back as a :class:`~ipyg4f.events.ToolCalls` with its arguments,
also when the model wrote it as JSON or in ``<tool_call>`` tags), ``tool_choice`` and
``prompt_format`` (``"qa"`` or ``"chat"``; default ``"qa"`` for GGUF files
without a chat template, like the tiny Gemma's, ``"chat"`` otherwise).
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import aclosing
from pathlib import Path
from typing import Any, ClassVar

from ...errors import MissingExtraError, ModelNotFoundError, ProviderError
from ..base import AsyncGeneratorProvider, AsyncResult, Messages, ProviderModelMixin
from . import bundled, engine, hub
from .common import INSTALL_HINT, NAME
from .job import Job
from .tools import check_tools

__all__ = ["Local"]

BUNDLED_MODEL = bundled.DEFAULT
THREADS_ENV = "IPYG4F_LOCAL_THREADS"

_EXTRA_MODULES = ("xllamacpp",)


class Local(AsyncGeneratorProvider, ProviderModelMixin):
    """llama.cpp in this process: the bundled Qwen2.5-Coder-0.5B-Instruct (or tiny Gemma), or your own GGUF file."""

    label = ("offline llama.cpp: bundled Qwen2.5-Coder-0.5B-Instruct (a small instruct model) or Gemma 3 270M "
             "(a tiny demo model), a model pulled from the Hub (%chat pull REPO) or any GGUF file")
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    supports_tools = True
    default_model = BUNDLED_MODEL
    models: ClassVar[list[str]] = list(bundled.MODELS)
    options = frozenset({"temperature", "max_tokens", "seed", "stop"})
    max_concurrency = 1  # one generation at a time (the engine's lock)
    enforces_timeout = True  # the engine times silence itself, from when the model is loaded

    #: the question/answer prompt keeps the most recent turns that fit in this many characters
    max_prompt_chars: ClassVar[int] = 6000
    default_temperature: ClassVar[float] = 0.0

    @classmethod
    def is_available(cls) -> bool:
        return (cls.working and all(_find_spec(name) is not None for name in _EXTRA_MODULES)
                and bundled.installed(bundled.MODELS[cls.default_model]))

    @classmethod
    def endpoint(cls) -> str | None:
        return None  # in process

    @classmethod
    def get_model(cls, model: str | None) -> str:
        """``hf:OWNER/NAME[/FILE]`` and paths (anything ending in ``.gguf`` or containing a path separator)
        are taken as they are; whether the file is there is checked when it is used."""
        if model and model.startswith(hub.PREFIX):
            try:
                return hub.parse_ref(model).name
            except ValueError as exc:
                raise ModelNotFoundError(str(exc), provider=NAME) from None
        if model and _is_path(model):
            return model
        return super().get_model(model)

    @classmethod
    def available_models(cls) -> list[str]:
        """The bundled models and every model pulled into the Hub cache (read from disk only)."""
        return [*bundled.MODELS, *(p.name for p in hub.pulled())]

    @classmethod
    def model_table(cls) -> tuple[list[str], list[list[str]]]:
        """``%chat models -p Local``: (headers, rows) of every model on disk: size, quantisation, licence, source."""
        rows = []
        for model in bundled.MODELS.values():
            about = f"{model.title}; {'installed' if bundled.installed(model) else 'not installed'}"
            rows.append([model.name, _megabytes(model.size), model.quantization, model.licence,
                         f"{model.source} ({about})"])
        for model in hub.pulled():
            rows.append([model.name, _megabytes(model.size), model.quantization or "?", "see its model card",
                         f"Hugging Face Hub: {model.path}"])
        return ["model", "size", "quantisation", "licence", "from"], rows

    @classmethod
    def resolve_path(cls, model: str) -> Path | None:
        """The file ``model`` names (None: a bundled model); raises ModelNotFoundError when it is not on disk."""
        if model in bundled.MODELS:
            return None
        if model.startswith(hub.PREFIX):
            try:
                ref = hub.parse_ref(model)
                path = hub.local_path(ref)
            except ValueError as exc:
                raise ModelNotFoundError(str(exc), provider=NAME) from None
            if path is None:
                pull = f"%chat pull {ref.repo}" + (f" {ref.file}" if ref.file else "")
                raise ModelNotFoundError(f"{model} is not pulled yet (nothing is downloaded while chatting "
                                         "from the panel or a batch)", provider=NAME,
                                         hint=f"{pull}, or use it in a %%chat cell, which pulls it first")
            return path
        path = Path(model).expanduser()
        if not path.exists():
            raise ModelNotFoundError(f"no GGUF model file at {path}", provider=NAME,
                                     hint=f"check the path, or use the bundled model (-m {BUNDLED_MODEL})")
        if not path.is_file():
            raise ProviderError(f"{path} is not a file (a GGUF model file was expected)", provider=NAME)
        return path

    @classmethod
    def unload(cls, timeout: float | None = None) -> bool:
        """Free the loaded model once the running generation (if any) ends; False on timeout."""
        return engine.unload(timeout)

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     **kwargs: Any) -> AsyncResult:
        job = cls.plan(cls.get_model(model), messages, kwargs)
        async with aclosing(engine.stream(job, kwargs.get("timeout"))) as items:
            async for item in items:
                yield item

    @classmethod
    def plan(cls, model: str, messages: Messages, kwargs: dict[str, Any]) -> Job:
        """Check what can be checked cheaply, before a thread is started; the file is read later."""
        packaged = bundled.MODELS.get(model)
        _require_extra(packaged)
        path = cls.resolve_path(model)
        prompt_format = kwargs.get("prompt_format") or ("qa" if packaged is not None and packaged.demo else None)
        if prompt_format not in (None, "qa", "chat"):
            raise ProviderError(f"prompt_format must be 'qa' or 'chat', not {prompt_format!r}",
                                provider=NAME)
        stop = kwargs.get("stop")  # None: the format's default
        if stop is not None:
            stop = [stop] if isinstance(stop, str) else list(stop)
        options: dict[str, Any] = {
            "stream": True,
            # None: the format's default (engine.max_tokens_for), decided when the context is known
            "max_tokens": _positive_int(kwargs.get("max_tokens"), None, "max_tokens"),
            "temperature": _temperature(kwargs.get("temperature"), cls.default_temperature),
            "stop": stop,
        }
        if kwargs.get("seed") is not None:
            options["seed"] = _int(kwargs["seed"], "seed")
        if kwargs.get("tools"):  # passed to the model's chat template; calls come back as ToolCalls
            options["tools"] = check_tools(kwargs["tools"])
            if kwargs.get("tool_choice") is not None:
                options["tool_choice"] = kwargs["tool_choice"]
        threads = kwargs.get("n_threads")
        return Job(
            path=path,
            messages=[dict(m) for m in messages],
            prompt_format=prompt_format,
            options=options,
            max_prompt_chars=cls.max_prompt_chars,
            n_threads=_positive_int(threads, 0, "n_threads") if threads is not None else _threads_setting(),
            n_ctx=_positive_int(kwargs.get("n_ctx"), 0, "n_ctx"),
            bundled=packaged.name if packaged is not None else "",
        )


# -- checking a call's arguments ----------------------------------------------------------------


def _threads_setting() -> int:
    """0 means "decide when the model is loaded" (:func:`~.engine.default_threads`)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return 0
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ProviderError(f"${THREADS_ENV} must be a positive integer, not {value!r}", provider=NAME)
    return threads


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ProviderError(f"{name} must be an integer, not {value!r}", provider=NAME)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ProviderError(f"{name} must be an integer, not {value!r}", provider=NAME) from None


def _positive_int(value: Any, default: Any, name: str) -> Any:
    if value is None:
        return default
    number = _int(value, name)
    if number < 1:
        raise ProviderError(f"{name} must be at least 1, not {value!r}", provider=NAME)
    return number


def _temperature(value: Any, default: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number >= 0:  # also rejects NaN
        raise ProviderError(f"temperature must be a number >= 0, not {value!r}", provider=NAME)
    return number


def _find_spec(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _require_extra(model: bundled.Bundled | None) -> None:
    missing = [name for name in _EXTRA_MODULES if _find_spec(name) is None]
    if missing:
        raise MissingExtraError(f"the local model needs {', '.join(missing)}; {INSTALL_HINT}",
                                provider=NAME, hint=INSTALL_HINT)
    if model is not None and not bundled.installed(model):
        raise MissingExtraError(f"the packages of {model.name} ({model.source}) are not installed",
                                provider=NAME, hint=model.install)


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size < 1e9 else f"{size / 1e9:.2f} GB"


def _is_path(model: str) -> bool:
    return model.lower().endswith(".gguf") or "/" in model or "\\" in model or model.startswith("~")
