"""The answer as it accumulates, item by item: the one place where what any provider sends is normalised.

:meth:`Answer.feed` takes every stream item of every provider (ours,
gpt4free's, plugins') through :func:`ipyg4f.events.normalize` (unknown objects
are counted, never turned into text) and passes all text through one
:class:`~ipyg4f.events.ThinkSplitter`: a ``<think>`` block becomes thinking
whoever sent it, so it never reaches the answer, ``-o VAR``, history or the
next request.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from .events import (ANSWER_EVENTS, FinishReason, LoginRequired, Media, ModelUsed, ProviderUsed, Reasoning,
                     Sources, Note, ThinkSplitter, ToolCalls, ToolStep, Usage, kind_of, normalize)

__all__ = ["Answer"]


class Answer:
    """The answer as it accumulates: text, thinking, who answered, usage, how it ended.

    ``status`` goes ``streaming`` -> ``ok`` | ``error`` | ``interrupted``, only
    through :meth:`end`.  ``model`` is the model asked for (or, when none was,
    the one that answered); ``model_used`` the one the service says answered,
    when it named another (else ``""``).
    """

    def __init__(self, provider: str = "", model: str = ""):
        self.provider = provider
        self.model = model
        self.model_used = ""
        self.status = "streaming"
        self.error: BaseException | None = None
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.chunks = 0
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.failed_first: tuple[str, ...] = ()
        self.sources: list[tuple[str, str]] = []
        self.media: list[Media] = []
        self.tool_calls: list[str] = []
        #: the agent's tool calls as they went, and what the model said before each request's calls
        #: (``remarks[request]``); :attr:`text` is then the text since the last step: the answer
        self.steps: list[ToolStep] = []
        self.remarks: dict[int, str] = {}
        self.login: LoginRequired | None = None
        self.ignored: collections.Counter[str] = collections.Counter()
        self.notes: list[str] = []  #: one-line notes for the user (ignored options...)
        self.started = time.monotonic()
        self.first_token: float | None = None
        self.ended: float | None = None
        self._text: str | None = ""
        self.size = 0  #: characters of text and thinking so far (counted as they come: no join)
        self._think = ThinkSplitter()

    def feed(self, item: Any) -> bool:
        """Take one stream item; True when what the user sees changed."""
        event = normalize(item)
        if isinstance(event, str):
            if not event:
                return False
            if self._think.plain(event):  # the common case: no tag in or around it
                return self._add_text(event)
            return self._add_all(self._think.feed(event))
        if isinstance(event, Reasoning):
            return self._add_reasoning(event.text)
        if isinstance(event, ToolStep):
            return self._add_step(event)
        if isinstance(event, FinishReason):
            self.finish_reason = event.reason
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, ModelUsed):
            if not self.model:  # none asked for: the one that answered is the model
                self.model = event.model
            elif event.model != self.model:
                self.model_used = event.model
        elif isinstance(event, ProviderUsed):  # another provider answers from here on (Fallback)
            flushed = self.settle()  # the previous one's text is not glued to this one's tags
            self._think = ThinkSplitter()
            self.provider, self.model, self.model_used = event.name, event.model or self.model, ""
            self.failed_first = event.failed or self.failed_first
            return flushed
        elif isinstance(event, Sources):
            self.sources.extend(u for u in event.items if u not in self.sources)
        elif isinstance(event, Media):
            self.media.append(event)
        elif isinstance(event, ToolCalls):
            self.tool_calls.extend(event.names)
        elif isinstance(event, LoginRequired):
            self.login = event
        elif isinstance(event, Note):
            if event.text not in self.notes:
                self.notes.append(event.text)
        elif event is None and item is not None:
            self.ignored[kind_of(item)] += 1
            return False
        if isinstance(event, ANSWER_EVENTS):
            self._first()
            return True
        return False

    def _add_text(self, text: str) -> bool:
        self.parts.append(text)
        self.size += len(text)
        self.chunks += 1
        self._text = None
        self._first()
        return True

    def _add_reasoning(self, text: str) -> bool:
        if text:
            self.reasoning_parts.append(text)
            self.size += len(text)
            self._first()
        return bool(text)

    def _add_all(self, pieces: list[str | Reasoning]) -> bool:
        changed = False
        for piece in pieces:
            changed = (self._add_reasoning(piece.text) if isinstance(piece, Reasoning)
                       else self._add_text(piece)) or changed
        return changed

    def _add_step(self, step: ToolStep) -> bool:
        if step.request not in self.remarks:  # the first call of its request: what was said so far is a remark
            self.settle()
            self.remarks[step.request] = self.text
            self.parts, self._text = [], ""
        self.steps.append(step)
        self._first()
        return True

    def settle(self) -> bool:
        """The stream is over: what was held back as maybe the start of a ``<think>`` tag is what
        it is (text, or thinking inside an unclosed tag).  :meth:`end` calls it; idempotent."""
        return self._add_all(self._think.close())

    def _first(self) -> None:
        if self.first_token is None:
            self.first_token = time.monotonic()

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "".join(self.parts)
            self.parts = [self._text]
        return self._text

    @property
    def reasoning(self) -> str:
        if len(self.reasoning_parts) > 1:  # joined once per change, as the text is
            self.reasoning_parts = ["".join(self.reasoning_parts)]
        return self.reasoning_parts[0] if self.reasoning_parts else ""

    @property
    def has_answer(self) -> bool:
        """Text, or something that stands for an answer (tool calls, media, a login link)."""
        return bool(self.text or self.tool_calls or self.media or self.login or self.steps)

    def end(self, status: str, error: BaseException | None = None) -> None:
        """``ok``, ``error`` (with the exception) or ``interrupted``; the first call wins."""
        if self.status != "streaming":
            return
        self.settle()
        self.status, self.error = status, error
        self.ended = time.monotonic()

    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started
