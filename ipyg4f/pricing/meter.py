"""What one answer used: tokens in and out, its cost, and how much of the model's window the thread fills.

:func:`measure` reads the answer's ``usage`` (one :class:`~ipyg4f.events.Usage`; for an agent's
several requests, their sum: the cost is then right, and the context too when the sum carries the last
request's as ``context_tokens``, else it is an upper bound) with its
provider and model; the footer (:func:`ipyg4f.render.outcome.footer`) words it, and
:meth:`ipyg4f.chat.Chat.record` stores :meth:`Meter.as_dict` with the exchange.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rates import rate_for
from .window import window_for

__all__ = ["Meter", "measure", "FILLING", "compact", "money"]

#: the share of the window at which the footer says the thread is filling up
FILLING = 0.8


@dataclass(frozen=True)
class Meter:
    input: int | None = None
    output: int | None = None
    cost: float | None = None  #: USD; None: unknown, or free
    context: int | None = None  #: tokens the thread fills after this answer (its prompt and answer)
    window: int | None = None  #: the model's context window

    @property
    def filling(self) -> bool:
        return bool(self.context and self.window and self.context >= FILLING * self.window)

    def as_dict(self) -> dict[str, Any]:
        """The known figures, as stored in the exchange's ``usage`` column."""
        out = {"input": self.input, "output": self.output, "cost": self.cost, "context": self.context,
               "window": self.window}
        return {k: v for k, v in out.items() if v is not None}


def measure(answer: Any, base_url: str | None = None) -> Meter:
    """The answer's :class:`Meter` (what the service did not report stays None)."""
    usage = getattr(answer, "usage", None)
    tokens_in = getattr(usage, "prompt_tokens", None)
    tokens_out = getattr(usage, "completion_tokens", None)
    model = getattr(answer, "model_used", "") or answer.model
    cost = None
    if tokens_in is not None or tokens_out is not None:
        rate = rate_for(answer.provider, model, base_url) or (
            rate_for(answer.provider, answer.model, base_url) if model != answer.model else None)
        if rate is not None:
            try:
                cost = rate.cost(tokens_in or 0, tokens_out or 0)
            except Exception:  # a price the database cannot work out for these figures: none shown
                cost = None
    # the thread after this answer: its last request's prompt and answer; a summed usage (an agent's
    # requests) may say it as ``context_tokens``, else the sum stands for it (an upper bound)
    context = getattr(usage, "context_tokens", None)
    if not isinstance(context, int):
        context = (tokens_in or 0) + (tokens_out or 0) if tokens_in is not None else None
    window = window_for(answer.provider, model, base_url) or (
        window_for(answer.provider, answer.model, base_url) if model != answer.model else None)
    return Meter(tokens_in, tokens_out, cost, context, window)


def compact(n: int) -> str:
    """1234 -> ``1.2k``, 131072 -> ``131k``, 999 -> ``999``."""
    if n < 1000:
        return str(n)
    if n < 100_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.1f}M"


def money(usd: float) -> str:
    """A cost as read at a glance: ``$0.0012``, ``$0.31``, ``$12.40``; under a hundredth of a cent: ``<$0.0001``."""
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return "<$0.0001"
    if usd < 0.01:
        return f"${usd:.4f}"
    return f"${usd:.2f}"
