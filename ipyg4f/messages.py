"""Message types and the one prompt formatter every provider shares."""

from __future__ import annotations

from typing import Literal, TypedDict

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    role: str
    content: str


Messages = list[Message]


def format_prompt(messages: Messages, *, add_special_tokens: bool = False) -> str:
    """Flatten a conversation into one prompt.

    One message gives its content unchanged; several give ``"Role: content"``
    lines (empty contents skipped) joined by newlines and a final
    ``"Assistant:"`` line, as gpt4free's providers expect.
    """
    if not add_special_tokens and len(messages) == 1:
        return messages[0]["content"]
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages if m["content"]]
    return "\n".join([*lines, "Assistant:"])
