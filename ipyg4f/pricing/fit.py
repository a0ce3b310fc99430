"""Before a request goes: the thread cut to the model's window, and the answer kept within the budget.

:func:`fit` is what :meth:`ipyg4f.chat.Chat.request` does with the messages it built:

* a thread that no longer fits the model's window (where it is known: :mod:`.window`) loses its
  oldest exchanges, one at a time, with a note; room is kept for the answer (``max_tokens``, at most
  half the window; else a quarter of the window, at most 1024 tokens).  ``Local`` does this itself, with the model's own
  tokenizer (:mod:`ipyg4f.providers.local.engine`); here tokens are estimated (4 characters each);
* ``ChatConfig.budget`` (USD) is a ceiling for each answer whose price is known: a prompt whose
  estimate alone reaches it is refused before anything is sent (:class:`OverBudget`), otherwise the
  answer's ``max_tokens`` is capped at what the rest of the budget buys, so the service itself stops
  the stream where the budget is reached (the footer then says it was cut at the token limit).
"""

from __future__ import annotations

from typing import Any, Mapping

from IPython.core.error import UsageError

from .meter import money
from .rates import rate_for, remember
from .window import ASKS_WINDOW, prefetch, wait_served, window_for

__all__ = ["OverBudget", "fit", "estimate_tokens", "CHARS_PER_TOKEN"]

CHARS_PER_TOKEN = 4
#: tokens counted for each message's framing, and for an image
PER_MESSAGE, PER_IMAGE = 4, 800
#: room kept for the answer when no max_tokens is set: a quarter of the window, at most this
ANSWER_ROOM = 1024
#: longest wait (seconds) for a nearby server's first answer about its window, when there is a thread to cut
#: (it answers in milliseconds; a server that does not is not waited for again).  0.5 s was too short on a
#: busy machine (two CPU hogs beside the tests): the thread went uncut and llama.cpp answered HTTP 400
FIRST_ASK = 3.0
#: a budget's cap on the answer is said under it when it is below this many tokens
QUIET_CAP = 4096


class OverBudget(UsageError):
    """The prompt alone would cost more than the budget: nothing was sent."""


def estimate_tokens(messages: list[Mapping[str, Any]]) -> int:
    """Tokens of ``messages``, estimated: 4 characters a token, a little per message, more per image."""
    total = 0
    for message in messages:
        total += PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += len(content) // CHARS_PER_TOKEN
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and part.get("type") == "text":
                    total += len(str(part.get("text", ""))) // CHARS_PER_TOKEN
                else:
                    total += PER_IMAGE
        if message.get("tool_calls"):
            total += len(str(message["tool_calls"])) // CHARS_PER_TOKEN
    return total


def fit(messages: list[dict[str, Any]], *, provider: Any, model: str, base_url: str | None = None,
        api_key: str | None = None, prices: Mapping[str, Any] | None = None, budget: float | None = None,
        max_tokens: int | None = None, members: list[Any] | None = None
        ) -> tuple[list[dict[str, Any]], list[str], int | None]:
    """(the messages that fit, notes for the user, the answer's token cap from the budget or None).
    ``members``: a Fallback's candidates (set-ups), whose base URLs price the one that answers."""
    from ..providers.fallback import Fallback

    name = provider.name
    remember(name, base_url, prices)
    if issubclass(provider, Fallback):  # each candidate has its own window and price
        for member in members or ():
            if hasattr(member, "provider"):  # a set-up (a name that could not be resolved is left as it is)
                remember(member.provider.name, member.base_url)
        return messages, [], None
    if name in ASKS_WINDOW:
        prefetch(base_url, api_key)  # a nearby server's window, for this footer and the next request
    notes: list[str] = []
    window = None if name == "Local" else window_for(name, model, base_url)
    if window is None and name != "Local" and base_url and _has_history(messages) and wait_served(base_url, FIRST_ASK):
        window = window_for(name, model, base_url)  # a thread to a server asked for the first time: its answer
    if window:
        room = min(max_tokens, window // 2) if max_tokens else min(ANSWER_ROOM, window // 4)  # for the answer
        messages, dropped = _trim(messages, window - room)
        if dropped:
            notes.append(f"the {dropped} oldest exchange{'s' if dropped > 1 else ''} did not fit in the model's "
                         f"context ({window} tokens) and {'were' if dropped > 1 else 'was'} left out")
    cap = None
    rate = rate_for(name, model, base_url) if budget is not None else None
    if rate is not None:
        spent = rate.cost(estimate_tokens(messages), 0)
        per_out = rate.cost(0, 1_000_000) / 1_000_000
        left = budget - spent
        affordable = int(left / per_out) if per_out > 0 else None
        if left <= 0 or affordable == 0:
            raise OverBudget(f"the prompt alone is estimated at {money(spent)}, over the budget of {money(budget)} "
                             "(ChatConfig.budget); nothing was sent: shorten the thread (%chat reset, --new) or "
                             "raise the budget")
        if affordable is not None and (max_tokens is None or affordable < max_tokens):
            cap = affordable
        if cap is not None and cap < QUIET_CAP:  # a cap that may cut the answer is said
            notes.append(f"the answer may use at most {affordable} tokens: the budget of {money(budget)} "
                         f"(ChatConfig.budget) buys no more")
    return messages, notes, cap


def _has_history(messages: list[dict[str, Any]]) -> bool:
    return sum(1 for m in messages if m.get("role") == "user") > 1


def _trim(messages: list[dict[str, Any]], room: int) -> tuple[list[dict[str, Any]], int]:
    from ..providers.local.job import drop_oldest_exchange

    dropped = 0
    while estimate_tokens(messages) > room:
        shorter = drop_oldest_exchange(messages)
        if shorter is None:  # the question alone: sent as it is, the service says if it is too long
            break
        messages, dropped = shorter, dropped + 1
    return messages, dropped
