"""gpt4free's response objects -> our typed stream events (see :mod:`ipyg4f.events`), at the border.

The adapter of a foreign provider (:mod:`ipyg4f.providers.adapter`) converts each item it yields.

Only attributes are read, never ``str()``: ``str()`` of a ``JsonResponse`` is
the raw JSON of the event (the bug this module exists for), and ``str()`` of
``RawResponse`` or ``MediaResponse`` raises.  Whatever is not mapped here
(``JsonResponse``, ``JsonRequest``, ``HeadersResponse``, ``RawResponse``,
``JsonConversation``, ``TitleGeneration``, ``ImagePreview``...) is ignored.
Checked against g4f 8.8.6's ``g4f.providers.response``.

Tool calls need the stream's state (:class:`ToolCallReader`, one per answer): gpt4free's
OpenaiTemplate yields one ``ToolCalls`` per streamed delta, its ``list`` the delta's
``tool_calls`` fragments in OpenAI's form (``index`` on each, ``id`` and ``function.name``
on a call's first, ``function.arguments`` cut anywhere; per delta, not cumulative), and for
a non-streamed answer one ``ToolCalls`` with the message's whole calls.
"""

from __future__ import annotations

from typing import Any

from ..events import (Event, FinishReason, LoginRequired, Media, ModelUsed, ProviderUsed, Reasoning, Sources,
                      ToolCalls, Usage)
from .openai_stream import ToolCallState


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def convert(item: Any, own: str = "") -> Any:
    """``item`` as one of our events when it is a gpt4free response we know; else ``item`` itself.

    ``own`` is the class name of the provider that yields it: its ``ProviderInfo``
    names only the model that answered.  An object that cannot be read (its
    attributes raise) is returned as it is: the runner ignores what it does not know.
    """
    if isinstance(item, str) or not (type(item).__module__ or "").startswith("g4f"):
        return item
    try:
        event = from_g4f(item, own)
    except Exception:
        return item
    return item if event is None else event


def from_g4f(item: Any, own: str = "") -> Event | None:
    """The event ``item`` stands for, or None (ignored). May raise on a broken object."""
    from g4f.providers import response as r

    if isinstance(item, r.Reasoning):
        token = _text(getattr(item, "token", None))
        return Reasoning(token) if token else None  # status-only objects mark the end of thinking
    if isinstance(item, r.Usage):
        return Usage(_int(getattr(item, "prompt_tokens", None)), _int(getattr(item, "completion_tokens", None)))
    if isinstance(item, r.FinishReason):
        reason = _text(getattr(item, "reason", None))
        return FinishReason(reason) if reason else None
    if isinstance(item, r.ProviderInfo):
        info = item.get_dict()  # OpenaiTemplate's carries the stream's "model" field
        name, model = _text(info.get("name")), _text(info.get("model"))
        if name and name != own:  # a gpt4free provider that hands the request on names who answered
            return ProviderUsed(name, model)
        return ModelUsed(model) if model else None
    if isinstance(item, r.Sources):
        found = []
        for source in getattr(item, "list", None) or []:
            if isinstance(source, dict) and _text(source.get("url")):
                found.append((source["url"], _text(source.get("title")) or _text(source.get("name"))))
        return Sources(tuple(found)) if found else None
    if isinstance(item, r.ImagePreview):  # an interim preview; the final image follows
        return None
    if isinstance(item, r.MediaResponse):
        urls = [u for u in item.get_list() if isinstance(u, str)]
        kind = "image" if isinstance(item, r.ImageResponse) else "video"
        return Media(kind, urls[0], _text(getattr(item, "alt", None))) if urls else None
    if isinstance(item, r.AudioResponse):
        if getattr(item, "data", None) is None:
            return None
        return Media("audio", item.to_uri(), _text(getattr(item, "transcript", None)))
    if isinstance(item, r.RequestLogin):
        url = _text(getattr(item, "login_url", None))
        return LoginRequired(url, _text(getattr(item, "label", None))) if url else None
    return None


class ToolCallReader:
    """gpt4free's ``ToolCalls`` of one answer -> :class:`~ipyg4f.events.ToolCallPart` events (ids and
    arguments kept), and a :class:`ToolCalls` naming each call as it begins (``Answer.tool_calls``)."""

    def __init__(self) -> None:
        self.state = ToolCallState()

    def read(self, item: Any) -> list[Event]:
        """The events of ``item`` when it is gpt4free's ``ToolCalls`` (``[]``: not one, or nothing in it)."""
        if isinstance(item, str) or not (type(item).__module__ or "").startswith("g4f"):
            return []
        from g4f.providers import response as r

        if not isinstance(item, r.ToolCalls):
            return []
        try:
            parts = self.state.feed(item.get_list())
        except Exception:  # a broken object: nothing of it
            return []
        names = tuple(p.name for p in parts if p.name)
        return [*parts, *([ToolCalls(names)] if names else [])]
