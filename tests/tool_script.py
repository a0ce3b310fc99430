"""Scripted multi-step tool-call conversations for the protocol server's OpenAI endpoint.

``srv.script = [Turn(calls=[Call("describe", {"name": "df"})]), Turn("It has one null.")]``:
the answer to a request is the script's turn number N, N being how many assistant turns with
``tool_calls`` the request carries after its last user message (so the first request of a
cell gets turn 0, the request that carries the results of turn 0's calls gets turn 1, and a
request beyond the script gets its last turn).  ``srv.script`` may also be a function
``(body) -> Turn``.

A turn streams its text first, then each call as OpenAI does: a head fragment (``index``,
``id``, ``type``, ``function.name``, empty arguments), then the arguments cut into ``cuts``
pieces at even character positions, wherever they fall (inside a string, a number, an
escape); ``interleave`` alternates the calls' pieces.  Arguments given as a ``dict`` are
written as JSON; a ``str`` is sent as it is (invalid JSON on purpose).  Non-streamed, the
turn is one ``message`` with ``content`` and ``tool_calls``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

__all__ = ["Call", "Turn", "step_of", "turn_for", "deltas", "message", "tool_results"]


@dataclass(frozen=True)
class Call:
    name: str
    arguments: Any = field(default_factory=dict)  #: a dict (sent as JSON) or the text sent as it is
    id: str = ""  #: "" -> ``call_<step>_<n>``
    cuts: int = 4  #: how many pieces the arguments are cut into

    @property
    def text(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments, ensure_ascii=False)


@dataclass(frozen=True)
class Turn:
    text: str = ""
    calls: Sequence[Call] = ()
    interleave: bool = False  #: the calls' argument pieces alternate (servers streaming calls in parallel)

    def ids(self, step: int) -> list[str]:
        return [c.id or f"call_{step}_{n}" for n, c in enumerate(self.calls)]


def step_of(messages: Any) -> int:
    """How many assistant turns with tool calls follow the last user message."""
    messages = [m for m in messages or [] if isinstance(m, dict)]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    after = messages[users[-1] + 1:] if users else messages
    return sum(1 for m in after if m.get("role") == "assistant" and m.get("tool_calls"))


def turn_for(script: Sequence[Turn | str] | Callable[[dict], Turn | str], body: dict) -> tuple[int, Turn]:
    """The step this request is at and the turn that answers it."""
    step = step_of(body.get("messages"))
    turn = script(body) if callable(script) else script[min(step, len(script) - 1)]
    return step, Turn(turn) if isinstance(turn, str) else turn


def _cut(text: str, n: int) -> list[str]:
    n = max(1, min(n, len(text) or 1))
    bounds = [len(text) * k // n for k in range(n + 1)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _words(text: str) -> list[str]:
    out, word = [], ""
    for ch in text:
        word += ch
        if ch == " ":
            out.append(word)
            word = ""
    return out + ([word] if word else [])


def deltas(turn: Turn, step: int) -> list[dict]:
    """The ``delta`` objects of a streamed answer (the finish reason is the server's to add)."""
    out: list[dict] = [{"role": "assistant", "content": piece} for piece in _words(turn.text)]
    heads, pieces = [], []
    for n, (call, ident) in enumerate(zip(turn.calls, turn.ids(step))):
        heads.append({"index": n, "id": ident, "type": "function", "function": {"name": call.name, "arguments": ""}})
        pieces.append([{"index": n, "function": {"arguments": p}} for p in _cut(call.text, call.cuts)])
    if turn.interleave:
        out += [{"tool_calls": [h]} for h in heads]
        longest = max((len(p) for p in pieces), default=0)
        out += [{"tool_calls": [p[k]]} for k in range(longest) for p in pieces if k < len(p)]
    else:
        for head, parts in zip(heads, pieces):
            out += [{"tool_calls": [head]}, *({"tool_calls": [p]} for p in parts)]
    if out and "role" not in out[0]:
        out[0] = {"role": "assistant", "content": None, **out[0]}
    return out


def message(turn: Turn, step: int) -> dict:
    """The ``message`` of a non-streamed answer."""
    msg: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
    if turn.calls:
        msg["tool_calls"] = [{"id": ident, "type": "function", "function": {"name": c.name, "arguments": c.text}}
                             for c, ident in zip(turn.calls, turn.ids(step))]
    return msg


def tool_results(body: dict) -> dict[str, str]:
    """What the model received back in a request: ``tool_call_id -> content`` of its ``tool`` messages."""
    return {m.get("tool_call_id"): m.get("content") for m in body.get("messages") or []
            if isinstance(m, dict) and m.get("role") == "tool"}
