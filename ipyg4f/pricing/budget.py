"""A batch's budget (``--map … --budget USD``): the estimate shown before anything is sent, and the
running count that stops the batch once it reaches the budget.

The estimate counts the items that will be sent (not those answered before, which a re-run takes
from the store): their prompts' tokens (estimated, 4 characters a token) times the model's input
price, and says what the answers cost per million tokens (at most, when ``max_tokens`` is set).
While the batch runs, each answer's cost (from the usage the service reports, else estimated from
its length) is added up; once the sum reaches the budget no further item is started, the ones in
flight finish and are kept, and a re-run with a new budget goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from .fit import CHARS_PER_TOKEN, estimate_tokens
from .meter import compact, money
from .rates import Rate, rate_for

__all__ = ["Estimate", "estimate", "answer_cost", "batch_rate"]


def batch_rate(plan: Any) -> Rate | None:
    """The price of the batch's model where it is sent (None: unknown or free)."""
    return rate_for(plan.provider.name, plan.model, plan.kwargs.get("base_url"))


@dataclass(frozen=True)
class Estimate:
    items: int  #: items in the batch
    to_send: int  #: of which not answered before
    tokens_in: int
    rate: Rate | None
    max_tokens: int | None
    budget: float | None

    @property
    def cost_in(self) -> float | None:
        return self.rate.cost(self.tokens_in, 0) if self.rate is not None and self.tokens_in else (
            0.0 if self.rate is not None else None)

    def line(self) -> str:
        """What is said before the batch starts."""
        stored = self.items - self.to_send
        head = f"--map: {self.to_send} of {self.items} items to send" + (f" ({stored} answered before)" if stored else "")
        head += f", ≈{compact(self.tokens_in)} tokens in"
        budget = f"; budget {money(self.budget)}" if self.budget is not None else ""
        if self.rate is None:
            return f"{head}; no price known for this model, so nothing is counted against the budget" \
                if self.budget is not None else head
        per_out = self.rate.per_million()[1]
        answers = f"answers {money(per_out)} per million tokens out"
        if self.max_tokens:
            answers += f" (at most {money(self.rate.cost(0, self.max_tokens * self.to_send))} at --max-tokens " \
                       f"{self.max_tokens})"
        return f"{head} ≈ {money(self.cost_in or 0.0)} + {answers}{budget}"


def estimate(plan: Any, fields: Iterable[dict[str, Any]], stored: Any, budget: float | None) -> Estimate:
    """The estimate of a batch: ``fields`` are its items' fields, ``stored(key)`` says whether an item was
    answered before (its answer is reused, nothing is sent)."""
    items = to_send = tokens = 0
    for item in fields:
        items += 1
        messages = plan.messages(plan.prompt(item))
        if stored(plan.key(messages)):
            continue
        to_send += 1
        tokens += estimate_tokens(messages)
    return Estimate(items, to_send, tokens, batch_rate(plan), plan.kwargs.get("max_tokens"), budget)


def answer_cost(answer: Any, rate: Rate | None, prompt_tokens: int) -> float:
    """What ``answer`` cost at ``rate``: its usage where reported, else the prompt's estimate and its length."""
    if rate is None:
        return 0.0
    usage = answer.usage
    tokens_in = getattr(usage, "prompt_tokens", None)
    tokens_out = getattr(usage, "completion_tokens", None)
    if tokens_in is None:
        tokens_in = prompt_tokens
    if tokens_out is None:
        tokens_out = (len(answer.text) + len(answer.reasoning)) // CHARS_PER_TOKEN
    return rate.cost(tokens_in, tokens_out)
