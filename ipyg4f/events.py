"""Typed stream events: the small closed set of things a provider stream may carry.

A provider yields ``str`` pieces of the answer and, besides, these events
(gpt4free's response objects are converted to them by the adapter of
foreign providers).  :func:`normalize` keeps text and events and gives
``None`` for anything else: it never calls ``str()`` on an object it does not
know, nor reads its attributes, so an object whose ``str()`` raises is ignored,
not fatal.  :class:`ThinkSplitter` takes ``<think>`` blocks out of text, for
every provider alike (the :class:`~ipyg4f.answer.Answer` runs one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

__all__ = ["Event", "Reasoning", "Usage", "FinishReason", "ProviderUsed", "ModelUsed", "Sources", "Media",
           "ToolCalls", "ToolCallPart", "ToolStep", "LoginRequired", "Note", "StreamItem", "ANSWER_EVENTS", "normalize", "is_content",
           "kind_of", "ThinkSplitter"]


class Event:
    """A non-text item of a stream; ``str()`` of it is empty, so it can never become answer text."""

    def __str__(self) -> str:
        return ""


@dataclass(frozen=True)
class Reasoning(Event):
    """A piece of the model's thinking, shown apart from the answer and never sent back as context."""

    text: str


@dataclass(frozen=True)
class Usage(Event):
    """Token counts the service reported for this answer."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class FinishReason(Event):
    """Why the answer ended: ``"stop"``, ``"length"`` (cut at the token limit), ``"tool_calls"``..."""

    reason: str


@dataclass(frozen=True)
class ProviderUsed(Event):
    """Which provider (and model) actually answered; sent by the fallback provider."""

    name: str
    model: str = ""
    failed: tuple[str, ...] = ()  #: providers that failed before this one answered


@dataclass(frozen=True)
class ModelUsed(Event):
    """The model the service says answered (the ``model`` field of its chunks), which may differ from
    the one asked for: a server with one model loaded answers whatever name it is sent."""

    model: str


@dataclass(frozen=True)
class Sources(Event):
    """Web sources the answer used: ``(url, title)`` pairs."""

    items: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Media(Event):
    """An image, audio or video clip, by URL (``https:``/``data:``)."""

    kind: str  # "image" | "audio" | "video"
    url: str
    alt: str = ""


@dataclass(frozen=True)
class ToolCalls(Event):
    """The model asked to call these tools (by name; ``arguments``: each call's JSON, when the provider says)."""

    names: tuple[str, ...]
    arguments: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolCallPart(Event):
    """A piece of the ``index``-th tool call of an answer: an OpenAI streamed ``tool_calls`` delta as it
    comes (``id`` and ``name`` arrive once, ``arguments`` is cut anywhere), or a whole call in one part.
    The agent's loop (:mod:`ipyg4f.agent.calls`) joins them by ``index``."""

    index: int = 0
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class ToolStep(Event):
    """One tool call of the agent's loop as it went (sent by the loop, not by providers): what was asked,
    whether it ran, how long, what the model got back (bounded and redacted)."""

    request: int  #: which request of the run asked for it (1-based)
    call_id: str
    tool: str  #: as the user names it (``run_python``, ``db.query``, ``mcp:files/read``)
    kind: str  #: the tool's kind ("" for an unknown tool)
    arguments: str  #: as sent, redacted
    approved: bool = False
    asked: bool = False
    seconds: float = 0.0  #: the tool's own time (asking excluded)
    result: str = ""  #: what the model received: bounded, redacted
    error: bool = False
    #: what the tool displayed (``run_python``'s plots, tables): mime bundles, shown again in the step's block
    displays: tuple = ()

    @property
    def status(self) -> str:
        return "error" if self.error else ("ran" if self.approved else "refused")

    def line(self) -> str:
        """The step in one line (``%chat history``, a collapsed block's title)."""
        return (f"{self.tool}({_short(self.arguments, 60)}) {self.status} in {self.seconds:.2f} s: "
                f"{_short(self.result, 80)}")

    def as_dict(self) -> dict[str, Any]:
        """The step as stored in history (its displays are not: they stay in the notebook)."""
        return {k: v for k, v in self.__dict__.items() if k != "displays"}


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class LoginRequired(Event):
    """The service wants the user to log in at ``url`` first."""

    url: str
    label: str = ""


@dataclass(frozen=True)
class Note(Event):
    """A one-line note on how this answer was made (e.g. the oldest exchanges were left out to fit)."""

    text: str


StreamItem = Union[str, Event]
#: events that are an answer by themselves (with or without text)
ANSWER_EVENTS = (Media, ToolCalls, ToolCallPart, LoginRequired)


def normalize(item: Any) -> StreamItem | None:
    """``item`` as answer text or one of our events; ``None`` when it is neither (ignored)."""
    if isinstance(item, str):
        return item
    if isinstance(item, Event):
        return item
    return None  # foreign objects are converted where they enter (providers.adapter)


def is_content(item: Any) -> bool:
    """True for what makes an answer (text, thinking, tool calls, media, a login link): the provider
    has begun to answer.  Bookkeeping (usage, who answered, ignored objects) is not."""
    if isinstance(item, str):
        return bool(item)
    if isinstance(item, Reasoning):
        return bool(item.text)
    return isinstance(item, ANSWER_EVENTS)


def kind_of(item: Any) -> str:
    """A short, safe name of what an ignored item was (for ``--debug``)."""
    try:
        return type(item).__qualname__
    except Exception:
        return "object"


class ThinkSplitter:
    """Splits ``<think>...</think>`` out of a provider's text, incrementally.

    The runner's :class:`~ipyg4f.runner.Answer` passes every provider's text
    through one of these, so a model that thinks inside its text (DeepSeek R1,
    Qwen3 behind a server or a gpt4free class that does not split it off) gives
    :class:`Reasoning`, never answer text.  :meth:`feed` takes each piece and
    returns answer text (``str``) and :class:`Reasoning` for what is inside the
    tags; a tag split across pieces (``"<thi"`` + ``"nk>"``) is held back until
    it is complete, so nothing of a tag reaches the answer.  Whitespace right
    after a tag is dropped (``</think>\\n\\nAnswer`` answers ``"Answer"``).
    :meth:`close` at the end gives what was held back: a stream that never
    closes its ``<think>`` was all reasoning.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self.inside = False
        self._held = ""
        self._after_tag = False

    def plain(self, text: str) -> bool:
        """True when ``text`` is answer text as it is (no tag in or around it): the common case."""
        return not (self.inside or self._held or self._after_tag) and "<" not in text

    def feed(self, text: str) -> list[str | Reasoning]:
        out: list[str | Reasoning] = []
        held = self._held + text
        while True:
            tag = self.CLOSE if self.inside else self.OPEN
            at = held.find(tag)
            if at < 0:
                break
            self._emit(out, held[:at])
            held = held[at + len(tag):]
            self.inside = not self.inside
            self._after_tag = True
        keep = next((n for n in range(min(len(tag) - 1, len(held)), 0, -1) if held.endswith(tag[:n])), 0)
        self._emit(out, held[:len(held) - keep])
        self._held = held[len(held) - keep:]
        return out

    def close(self) -> list[str | Reasoning]:
        """What was held back (the start of a tag that never came), as what it is inside."""
        out: list[str | Reasoning] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[str | Reasoning], text: str) -> None:
        if self._after_tag:
            text = text.lstrip()
            self._after_tag = not text
        if text:
            out.append(Reasoning(text) if self.inside else text)
