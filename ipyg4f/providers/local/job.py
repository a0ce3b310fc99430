"""What one ``Local`` request asks of llama.cpp (the checked :class:`Job`, the defaults it is completed
with), and how llama.cpp's errors are read.

Nothing here loads a model or starts a thread (that is :mod:`.engine`); a
user's GGUF file is read only for its header (:func:`gguf_info`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ProviderError
from ...gguf import GGUFInfo, check_gguf
from ...messages import Messages, build_qa_prompt
from .common import NAME

__all__ = ["CONTEXT_CAP", "FALLBACK_CONTEXT", "QA_MAX_TOKENS", "CHAT_MAX_TOKENS", "Job", "gguf_info",
           "context_for", "max_tokens_for", "default_threads", "too_long", "drop_oldest_exchange", "chunk_error"]

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

    path: Path | None  # None: the bundled model named by ``bundled``
    messages: Messages
    prompt_format: str | None  # None: "chat" if the file has a chat template, else "qa"
    options: dict[str, Any]  # the request's fields but the prompt; max_tokens None: max_tokens_for()
    max_prompt_chars: int
    n_threads: int  # 0: default_threads() at load time
    n_ctx: int  # 0: context_for() the model's file at load time
    #: the bundled model (:data:`.bundled.MODELS`) to assemble and check, when ``path`` is None
    bundled: str = ""
    #: set when nobody listens any more: the token callback then stops llama.cpp
    stop: threading.Event = field(default_factory=threading.Event)

    def request(self, n_ctx: int = FALLBACK_CONTEXT, info: GGUFInfo | None = None) -> tuple[str, dict[str, Any]]:
        """The prompt format and the llama.cpp request.

        ``n_ctx``: the context the model is loaded with (the default answer length depends on it);
        ``info``: the model file's header (read from ``path`` when not given).
        """
        if info is None and self.path is not None:
            info = gguf_info(self.path)
        fmt = self.prompt_format
        if fmt is None:
            fmt = "chat" if info is not None and info.has_chat_template else "qa"
        request = dict(self.options)
        if request["stop"] is None:
            # A chat model stops at its end-of-turn token.  llama.cpp does not print a *control* token,
            # but some files mark it as an ordinary (user-defined) one, whose text it would print:
            # stopping at that text as well keeps it out of the answer.
            request["stop"] = ["\n"] if fmt == "qa" else list(info.stop_texts if info is not None else ())
        if request.get("max_tokens") is None:
            request["max_tokens"] = max_tokens_for(fmt, n_ctx)
        if fmt == "qa" and request.get("tools"):
            raise ProviderError("this model has no chat template, so it cannot be offered tools", provider=NAME,
                                hint="use a chat model (the default, or a GGUF file with a chat template)")
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


# -- reading llama.cpp's answers -----------------------------------------------------------------


def too_long(error: str) -> bool:
    """llama.cpp's "the request exceeds the available context size" (type exceed_context_size_error)."""
    return "exceed" in error and "context" in error


def drop_oldest_exchange(messages: Messages) -> Messages | None:
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


def chunk_error(chunk: Any) -> str:
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
