"""Typed stream events: the small closed set of things a provider stream may carry.

A provider yields ``str`` pieces of the answer and, besides, these events
(gpt4free's response objects are converted to them by the adapter of
foreign providers).  :func:`normalize` keeps text and events and gives
``None`` for anything else: it never calls ``str()`` on an object it does not
know, nor reads its attributes, so an object whose ``str()`` raises is ignored,
not fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

__all__ = ["Event", "Reasoning", "Usage", "FinishReason", "ProviderUsed", "Sources", "Media", "ToolCalls",
           "LoginRequired", "Note", "StreamItem", "ANSWER_EVENTS", "normalize", "kind_of"]


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
    """The model asked to call these tools (by name)."""

    names: tuple[str, ...]


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
ANSWER_EVENTS = (Media, ToolCalls, LoginRequired)


def normalize(item: Any) -> StreamItem | None:
    """``item`` as answer text or one of our events; ``None`` when it is neither (ignored)."""
    if isinstance(item, str):
        return item
    if isinstance(item, Event):
        return item
    return None  # foreign objects are converted where they enter (providers.adapter)


def kind_of(item: Any) -> str:
    """A short, safe name of what an ignored item was (for ``--debug``)."""
    try:
        return type(item).__qualname__
    except Exception:
        return "object"
