"""What a model's tokens cost: ``ChatConfig.prices`` first, else the ``genai-prices`` database.

A price is shown only where it is right:

* the user's figure (``ChatConfig.prices = {"MODEL": {"input": …, "output": …}}``, USD per million
  tokens) applies to a provider the user may pay: one of ours that takes a base URL or needs a key;
  never to ``Local`` (in this process), to gpt4free-style free sites nor to gpt4free's classes, whatever
  model name they answer to;
* the database (pydantic's ``genai-prices``, a snapshot shipped in the package: no network) applies only
  when the request's base URL is one of the paid APIs it knows (``api.openai.com``, ``api.groq.com``...):
  a local server that calls its model ``gpt-4o-mini`` costs nothing, and a free site is no paid API.

The base URL and the user's prices are those of the latest request of each provider
(:func:`remember`, called by :meth:`ipyg4f.chat.Chat.request`), so a footer, which sees only the
answer, prices it as it was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Rate", "remember", "rate_for", "endpoint_of", "user_figure", "may_cost"]

PER = 1_000_000  #: prices are per million tokens

_ENDPOINTS: dict[str, str] = {}  #: provider name -> base URL of its latest request
_PRICES: dict[str, dict[str, Any]] = {}  #: ChatConfig.prices as of the latest request, keys lower-cased


def remember(provider: str, base_url: str | None, prices: Mapping[str, Any] | None = None) -> None:
    """The base URL ``provider``'s latest request went to, and the user's prices then in force."""
    if base_url:
        _ENDPOINTS[provider] = base_url.rstrip("/")
    if prices is not None:
        _PRICES.clear()
        _PRICES.update({str(k).lower(): v for k, v in prices.items() if isinstance(v, Mapping)})


def endpoint_of(provider: str) -> str | None:
    """Where ``provider``'s requests go: its latest request's base URL, else its class default."""
    if provider in _ENDPOINTS:
        return _ENDPOINTS[provider]
    cls = _provider_class(provider)
    return cls.default_base_url() if cls is not None else None


def _provider_class(provider: str) -> Any:
    from ..providers import get_provider

    try:
        return get_provider(provider)
    except Exception:  # a name no longer registered (an old exchange): no class, no price
        return None


def may_cost(provider: str, user: bool = False) -> bool:
    """Whether ``provider`` may be a paid service (never Local, in this process).  ``user``: whether the
    user's prices, which name a model only, apply: to our classes that take a base URL or a key, not to
    free sites nor to gpt4free's classes (whose free providers answer to paid models' names)."""
    cls = _provider_class(provider)
    if cls is None or cls.name == "Local":
        return False
    if not user:
        return True
    foreign = getattr(cls, "target", None) is not None
    return not foreign and ("base_url" in getattr(cls, "options", ()) or bool(getattr(cls, "needs_auth", False)))


def user_figure(model: str, key: str) -> float | None:
    """``ChatConfig.prices[model][key]`` as a number (None when not set)."""
    entry = _PRICES.get(model.lower()) or _PRICES.get(model.rsplit("/", 1)[-1].lower())
    value = entry.get(key) if entry else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Rate:
    """A model's price as sent: ``cost(tokens in, tokens out)`` in USD."""

    model: str
    source: str  #: "ChatConfig.prices" or "genai-prices"
    input: float = 0.0  #: USD per million tokens in (the user's figure)
    output: float = 0.0  #: USD per million tokens out
    url: str = ""  #: the paid API's base URL (the database's prices)

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        if self.source == "genai-prices":
            from genai_prices import Usage, calc_price

            price = calc_price(Usage(input_tokens=tokens_in, output_tokens=tokens_out), self.model,
                               provider_api_url=self.url)
            return float(price.total_price)
        return (tokens_in * self.input + tokens_out * self.output) / PER

    def per_million(self) -> tuple[float, float]:
        """(USD per million tokens in, per million out), for estimates."""
        if self.source == "genai-prices":
            return self.cost(PER, 0), self.cost(0, PER)
        return self.input, self.output


def rate_for(provider: str, model: str, base_url: str | None = None) -> Rate | None:
    """The price of ``model`` at ``provider`` (``base_url``: where it was sent), or None when unknown or free."""
    if not model or not may_cost(provider):
        return None
    tokens_in, tokens_out = user_figure(model, "input"), user_figure(model, "output")
    if (tokens_in is not None or tokens_out is not None) and may_cost(provider, user=True):
        return Rate(model, "ChatConfig.prices", tokens_in or 0.0, tokens_out or 0.0)
    url = base_url or endpoint_of(provider)
    if url and known_model(model, url):
        return Rate(model, "genai-prices", url=url)
    return None


_KNOWN: dict[tuple[str, str], Any] = {}


def known_model(model: str, url: str) -> Any:
    """The database's entry for ``model`` at the paid API ``url`` (None: not a paid API it knows, or not
    its model).  Only an ``https`` URL is looked up: the database is imported (0.3 s) for paid APIs only."""
    if not url.startswith("https://"):
        return None
    key = (model, url)
    if key not in _KNOWN:
        _KNOWN[key] = _lookup(model, url)
    return _KNOWN[key]


def _lookup(model: str, url: str) -> Any:
    try:
        from genai_prices import data_snapshot
    except ImportError:  # the optional dependency is not installed: ChatConfig.prices only
        return None
    try:
        found = data_snapshot.get_snapshot().find_provider_model(model, None, None, url)
    except LookupError:
        return None
    return found[1] if isinstance(found, tuple) else found


def database_window(provider: str, model: str, base_url: str | None = None) -> int | None:
    """The context window the database gives ``model`` at the paid API it was sent to."""
    url = base_url or endpoint_of(provider)
    entry = known_model(model, url) if url and may_cost(provider) else None
    window = getattr(entry, "context_window", None)
    return window if isinstance(window, int) and window > 0 else None
