"""The wording of an answer's outcome, in one place for every front end.

ok / cut (at the token limit) / empty / tools (the model asked to call tools) /
login / failed / interrupted: each gets one short line and a tone (a key of
:data:`~ipyg4f.render.html.COLOURS`); the footer says who answered, how fast
and how many tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from ..errors import ProviderError, describe
from ..http import redact

#: characters per token, for an estimate when the service reports no usage
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Outcome:
    kind: str  # ok | cut | empty | tools | login | failed | interrupted
    note: str  # "" when there is nothing to say
    tone: str  # info | ok | warn | error

    @property
    def failed(self) -> bool:
        return self.kind in ("failed", "interrupted")


def kept(answer: Any) -> str:
    return f"partial answer kept ({len(answer.text)} characters)" if answer.text else "nothing was received"


def outcome(answer: Any, extra: str = "") -> Outcome:
    """How ``answer`` ended, as one line; ``extra`` (e.g. a history problem) is appended."""
    notes = list(answer.notes)
    if answer.status == "interrupted":
        kind, tone, line = "interrupted", "warn", f"stopped by interrupt; {kept(answer)}"
    elif answer.status == "error":
        kind, tone = "failed", "error"
        line = f"{answer.provider} failed: {reason(answer)}; {kept(answer)}"
    elif answer.finish_reason == "length":
        kind, tone = "cut", "warn"
        line = "the answer was cut at the token limit (raise it with --max-tokens N)"
    elif answer.tool_calls and not answer.text:
        kind, tone = "tools", "info"
        line = f"the model asked to call tools: {', '.join(dict.fromkeys(answer.tool_calls))} (ipyg4f runs no tools)"
    elif answer.login is not None and not answer.text:
        kind, tone = "login", "warn"
        line = f"{answer.provider} wants you to log in first: {answer.login.url}"
    elif not answer.has_answer:
        kind, tone, line = "empty", "error", f"{answer.provider} sent an empty answer"
    else:
        kind, tone, line = "ok", "info", ""
    note = "; ".join(filter(None, [line, *notes, extra]))
    if note and tone == "info" and kind == "ok":
        tone = "warn"
    return Outcome(kind, note, tone)


def reason(answer: Any) -> str:
    """Why ``answer`` failed, in one line, without the provider's name in front (the caller says it):
    never ``g4f:Custom failed: g4f:Custom failed: …``."""
    text = redact(describe(answer.error))
    for prefix in (f"{answer.provider} failed: ", f"{answer.provider}: "):
        if answer.provider and text.startswith(prefix):
            return text[len(prefix):]
    return text


def failure_lines(answer: Any) -> list[str]:
    """What a failed cell shows in red: the failure, a hint, what was kept."""
    exc = answer.error
    lines = [f"✖ {answer.provider}: {reason(answer)}"]
    hint = exc.hint if isinstance(exc, ProviderError) else ""
    if hint:
        lines.append(f"  try: {hint}")
    if answer.text:
        lines.append(f"  the partial answer ({len(answer.text)} characters) is kept above and in history")
    lines.append("  (--debug shows the full traceback)")
    return lines


def label(provider: str, model: str) -> str:
    return f"{provider} ({model})" if model else provider


def model_name(model: str) -> str:
    """A model as the footer names it: a file path (llama.cpp answers with its GGUF's) by its file name."""
    if model.startswith(("/", "~", "./", "../")) or re.match(r"[A-Za-z]:[\\/]", model):
        return re.split(r"[\\/]", model.rstrip("/\\"))[-1] or model
    return model


def answered_by(answer: Any) -> str:
    """The provider and the model that answered, and the one asked for when the service named another."""
    used = getattr(answer, "model_used", "")
    if used and answer.model:
        return f"{answer.provider} ({model_name(used)}, asked for {answer.model})"
    return label(answer.provider, model_name(used or answer.model))


def tokens(answer: Any) -> tuple[str, str, bool]:
    """(tokens in, tokens out, estimated?) — from the service's usage, else ≈ characters / 4."""
    usage = answer.usage
    if usage is not None and usage.completion_tokens is not None:
        sent = "?" if usage.prompt_tokens is None else str(usage.prompt_tokens)
        return sent, str(usage.completion_tokens), False
    out = (len(answer.text) + len(answer.reasoning)) // CHARS_PER_TOKEN
    return "?", str(out), True


def footer(answer: Any) -> str:
    """One line: who answered (and who failed first), time to first token, total time, tokens, speed."""
    who = answered_by(answer)
    if answer.failed_first and any(f.endswith(": cancelled") for f in answer.failed_first):  # --race
        who += f" won the race ({', '.join(answer.failed_first)})"
    elif answer.failed_first:
        # each "name: reason in a word or two" (Fallback words them), the name whole: g4f:Custom, not g4f
        who += f" after {len(answer.failed_first)} failed ({', '.join(answer.failed_first)})"
    parts = [who]
    if answer.first_token is not None:
        parts.append(f"first token {answer.first_token - answer.started:.1f} s")
    total = answer.elapsed()
    parts.append(f"total {total:.1f} s")
    sent, out, estimated = tokens(answer)
    mark = "≈" if estimated else ""
    parts.append(f"{mark}{out} tokens out" if sent == "?" else f"{sent} in / {mark}{out} out tokens")
    streaming = total - ((answer.first_token or answer.started) - answer.started)
    if out.isdigit() and int(out) and streaming > 0.05:
        parts.append(f"{mark}{int(out) / streaming:.0f} tokens/s")
    return " · ".join(parts + spending(answer))


def spending(answer: Any) -> list[str]:
    """The answer's price where it is known, and the context it fills of the model's window where that is
    known (``context 1.2k/4.1k``); from 80 % on, what to do about it."""
    from ..pricing.meter import compact, measure, money

    try:
        meter = measure(answer)
    except Exception:  # a price or window that cannot be worked out is left out, never the footer
        return []
    parts = [money(meter.cost)] if meter.cost is not None else []
    if meter.context is not None and meter.window:
        used = f"context {compact(meter.context)}/{compact(meter.window)}"
        if meter.filling:
            share = min(100, round(100 * meter.context / meter.window))
            used += (f" ({share} %: the thread is filling up; %chat reset or --new starts afresh, "
                     "else its oldest exchanges are left out)")
        parts.append(used)
    return parts


def live_status(answer: Any, label_: str) -> str:
    """The status line while an answer is on its way."""
    seconds = answer.elapsed()
    if not answer.chunks and not answer.reasoning_parts:
        return f"… waiting for {label_}: {seconds:.1f} s"
    if not answer.chunks:
        return f"✍ {label_} is thinking… {seconds:.1f} s"
    return f"✍ {label_} answering… {seconds:.1f} s, {answer.chunks} chunks"


def final_status(answer: Any, result: Outcome) -> str:
    """The status line once the answer has ended."""
    seconds = answer.elapsed()
    who = label(answer.provider, answer.model)
    if result.kind == "interrupted":
        return f"■ stopped after {seconds:.1f} s; {kept(answer)}"
    if result.kind == "failed":
        exc = answer.error
        hint = exc.hint if isinstance(exc, ProviderError) else ""
        return result.note + (f" — try: {hint}" if hint else "")
    if result.kind == "empty":
        return f"⚠ {who} sent an empty answer ({seconds:.1f} s)"
    done = f"✔ {who} answered in {seconds:.1f} s ({answer.chunks} chunks)"
    return f"{done} — {result.note}" if result.note else done


def context_summary(attachments: list[Any]) -> str:
    """One line naming what was sent besides the prompt (empty when nothing was)."""
    if not attachments:
        return ""
    return "context sent: " + "; ".join(f"{a.name} ({a.kind}, {a.size})" for a in attachments)


def outcome_note(answer: Any, result: Outcome) -> str:
    """What the exchange says under its answer about how it ended (a failure: its reason and hint)."""
    return final_status(answer, result) if result.kind == "failed" else result.note


def ended_status(answer: Any, result: Outcome) -> tuple[str, str]:
    """The status line once an answer has ended, and its tone.  It names the ending; what went wrong
    (or what to note) is said once, under the answer in the transcript."""
    who = label(answer.provider, answer.model)
    seconds = answer.elapsed()
    if result.kind == "failed":
        return f"✖ {who} failed after {seconds:.1f} s (the reason is under the answer)", "error"
    if result.kind == "interrupted":
        return f"■ stopped after {seconds:.1f} s", "warn"
    if result.kind == "empty":
        return f"⚠ {who} sent nothing ({seconds:.1f} s)", result.tone
    text = final_status(answer, replace(result, note=""))
    if result.note:
        return f"{text} (note under the answer)", "warn"
    return text, "ok"
