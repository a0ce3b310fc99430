"""Message types and the prompt builders that flatten a conversation into one text prompt.

:func:`format_prompt` is the one every gpt4free-style provider shares;
:func:`build_qa_prompt` is the question/answer transcript a base (not
chat-tuned) model continues.  A bottom layer: it imports nothing from the package.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

Role = Literal["system", "user", "assistant"]


class Message(TypedDict):
    role: str
    content: str | list[dict[str, Any]]  #: a list of OpenAI content parts when images go with the text


Messages = list[Message]

#: what a base model is told when the conversation has no system message
QA_PREAMBLE = "Answer each question correctly, in one full sentence."


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


def build_qa_prompt(messages: Messages, *, max_chars: int = 6000, preamble: str = QA_PREAMBLE) -> str:
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
    """A message's text: a string as is; of OpenAI-style content parts, the text ones."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = (p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        return "\n".join(parts)
    return "" if content is None else str(content)
