"""One stored exchange (and one stored batch item) as the history hands them out.

An exchange is a cell's prompt and answer, with what went with them: the
model's thinking, the attachments' block, and, as JSON text, the agent's tool
exchange (``tool_messages``: the assistant turns with ``tool_calls`` and the
``tool`` results, OpenAI format; ``steps``: each call as the user saw it), the
answer's ``usage`` (tokens, cost, context) and the ``variants`` of a
``--compare`` cell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .messages import Messages

#: statuses of an exchange (``streaming``: saved while it streams, ``owner`` says by which process)
OK, INTERRUPTED, ERROR, STREAMING = "ok", "interrupted", "error", "streaming"
#: the error of an exchange whose process stopped while it streamed
DIED = "partial: the process stopped while this answer streamed"

@dataclass(frozen=True)
class BatchRow:
    """One stored batch item: ``status`` is ``ok`` or ``error`` (``error`` says why)."""

    key: str
    prompt: str
    answer: str
    provider: str = ""
    model: str = ""
    status: str = OK
    error: str = ""
    elapsed: float = 0.0
    updated: float = 0.0


_BATCH_COLUMNS = "key, prompt, answer, provider, model, status, error, elapsed, updated"


@dataclass(frozen=True)
class Exchange:
    notebook: str
    thread: str
    cell_id: str
    seq: int
    prompt: str
    answer: str
    provider: str = ""
    model: str = ""
    status: str = OK
    error: str = ""
    created: float = 0.0
    updated: float = 0.0
    reasoning: str = ""  #: the model's thinking: shown, kept, never sent back as context
    context: str = ""  #: the attachments' block sent before the prompt (--with, --error; images named only)
    tool_messages: str = ""  #: JSON: the agent's assistant ``tool_calls`` turns and ``tool`` results, in order
    steps: str = ""  #: JSON: each tool call as shown (:meth:`ipyg4f.events.ToolStep.as_dict`)
    usage: str = ""  #: JSON: ``{"input": n, "output": n, "cost": usd, "context": n, "window": n}`` (those known)
    variants: str = ""  #: JSON: a ``--compare`` cell's answers, ``[{"provider", "model", "answer", ...}]``

    @property
    def partial(self) -> bool:
        """The answer stopped before its end (interrupted, failed, or its process died)."""
        return self.status != OK and bool(self.answer)

    def tool_exchange(self) -> list[dict[str, Any]]:
        return _json(self.tool_messages, [])

    def step_list(self) -> list[dict[str, Any]]:
        return _json(self.steps, [])

    def usage_dict(self) -> dict[str, Any]:
        return _json(self.usage, {})

    def variant_list(self) -> list[dict[str, Any]]:
        return _json(self.variants, [])

    def as_messages(self, tools: bool = True) -> Messages:
        """The exchange as context; an answer that stopped early says so to the model.

        With ``tools`` (the provider takes them) the agent's tool turns go between the prompt and the
        answer as they were sent; without, the answer alone stands for them."""
        content = f"{self.context}\n\n{self.prompt}" if self.context else self.prompt
        out: Messages = [{"role": "user", "content": content}]
        if tools:
            out.extend(self.tool_exchange())
        if self.answer:
            answer = self.answer
            if self.partial:
                answer += f"\n\n[incomplete answer: {'it failed' if self.status == ERROR else 'interrupted'}]"
            out.append({"role": "assistant", "content": answer})
        return out


_COLUMNS = ("notebook, thread, cell_id, seq, prompt, answer, provider, model, status, error, created, updated, "
            "reasoning, context, tool_messages, steps, usage, variants")
#: the text columns added since the first version (an older file gets them, empty)
_ADDED = ("reasoning", "context", "owner", "tool_messages", "steps", "usage", "variants")


def _json(text: str, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:  # a hand-edited file: the exchange stays readable
        return default
