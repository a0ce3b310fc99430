"""One exception tree for everything a provider call can meet.

Every class derives from ``Exception`` (never ``BaseException``) so that a plain
``except Exception`` in user code catches it.  Messages are short and meant to
be shown to a person as they are; they never contain secrets (see
:func:`ipyg4f.http.redact`).
"""

from __future__ import annotations


class ProviderError(Exception):
    """Base of every failure of a provider call."""

    #: a short hint on what the user may try; shown after the message
    hint: str = ""

    def __init__(self, message: str = "", *, provider: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.provider = provider
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class HTTPStatusError(ProviderError):
    """The server answered with an HTTP error status."""

    hint = "the service may be down; try another provider (-p)"
    #: seconds the server asked the client to wait (its ``Retry-After`` header, or "try again in 7s"
    #: in its message), when it said
    retry_after: float | None = None

    def __init__(self, status: int, body: str = "", *, url: str = "", provider: str | None = None,
                 message: str | None = None, retry_after: float | None = None):
        self.status = status
        self.body = body
        self.url = url
        self.retry_after = retry_after
        excerpt = f": {body}" if body else ""
        super().__init__(message or f"HTTP {status}{excerpt}", provider=provider)


class CloudflareError(HTTPStatusError):
    """A Cloudflare challenge page ('Just a moment...') instead of an answer."""

    hint = "the site is behind a browser check; try another provider (-p) or a --proxy"

    def __init__(self, status: int, body: str = "", **kw):
        super().__init__(status, body, message=f"blocked by a Cloudflare challenge (HTTP {status})", **kw)


class RateLimitError(HTTPStatusError):
    """HTTP 429; the message says how long to wait when the service said."""

    hint = "wait a little, or try another provider (-p)"

    def __init__(self, status: int = 429, body: str = "", *, retry_after: float | None = None, **kw):
        wait = "" if retry_after is None else f": try again in {wait_text(retry_after)}"
        super().__init__(status, body, message=f"rate limited (HTTP {status}){wait}", retry_after=retry_after, **kw)
        if retry_after is not None:
            self.hint = "try another provider (-p) meanwhile"


class AuthError(HTTPStatusError):
    """HTTP 401, or a 403 that is not a Cloudflare challenge."""

    hint = "check the API key (e.g. OPENAI_API_KEY)"

    def __init__(self, status: int, body: str = "", **kw):
        excerpt = f": {body}" if body else ""
        super().__init__(status, body, message=f"not authorised (HTTP {status}){excerpt}", **kw)


class ModelNotFoundError(ProviderError):
    """The provider does not know the requested model."""

    hint = "list the models with %chat models -p PROVIDER"


class ProviderTimeoutError(ProviderError):
    """No connection, or no data for longer than the read timeout."""

    hint = "raise --timeout, or try another provider (-p)"


class StreamBrokenError(ProviderError):
    """The connection broke after the answer had started."""

    hint = "the partial answer is kept; run the cell again"


class ProviderConnectionError(ProviderError):
    """The server could not be reached at all."""

    hint = "check the URL, your network or --proxy"


class ResponseFormatError(ProviderError):
    """The body was not what the protocol promises (HTML instead of JSON, truncated JSON...)."""

    hint = "the service changed or is broken; try another provider (-p)"


class RefusedError(ProviderError, ValueError):
    """The service answered with a refusal instead of an answer (Pizzagpt's "Misuse detected")."""

    hint = "the service refuses this client; try another provider (-p)"


class TokensNotFoundError(ResponseFormatError, RuntimeError):
    """A page that should carry the session tokens a protocol needs did not."""


class UnknownProviderError(ProviderError, KeyError):
    """No provider of that name is registered."""

    hint = "list them with %chat providers"

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class AllProvidersFailedError(ProviderError):
    """The fallback provider tried every candidate and each one failed."""

    def __init__(self, failures: list[tuple[str, BaseException]]):
        self.failures = failures
        lines = "; ".join(f"{name}: {describe(exc)}" for name, exc in failures) or "no provider to try"
        super().__init__(f"all providers failed ({lines})", hint="configure a working provider with %chat use -p ...")


class MissingExtraError(ProviderError, ImportError):
    """An optional dependency is not installed."""


class ContextLengthError(HTTPStatusError):
    """The prompt (with its history) does not fit in the model's context window."""

    hint = "start a shorter thread (--new), lower ChatConfig.max_context, or use a model with a larger context"

    def __init__(self, status: int = 400, body: str = "", **kw):
        super().__init__(status, body, message="the prompt is too long for the model's context", **kw)


class ChatFailed(Exception):
    """What a cell shows when its answer failed: a few short lines, no traceback wall."""

    def __init__(self, lines: list[str]):
        super().__init__("\n".join(lines))
        self.lines = lines

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{self.lines[0]}\x1b[0m", *self.lines[1:]]


def describe(exc: BaseException) -> str:
    """A one-line, user-facing description of an exception (its message's first line: a provider
    may put a browser's whole stderr in one; ``--debug`` shows all of it)."""
    if isinstance(exc, ProviderError):
        return one_line(exc.message) or type(exc).__name__
    text = one_line(str(exc))
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


#: longest line :func:`one_line` keeps
LINE_LIMIT = 240


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """The first non-empty line of ``text``, spaces collapsed, at most ``limit`` characters;
    `` …`` marks that more followed."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    first = " ".join(lines[0].split())
    if len(first) > limit:
        return first[:limit - 1] + "…"
    return f"{first} …" if len(lines) > 1 else first


def wait_text(seconds: float) -> str:
    """``7 s``, ``3 min``, ``2 h``: how long a service asked to wait, rounded up."""
    import math

    whole = max(1, math.ceil(seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 2 * 3600:
        return f"{math.ceil(whole / 60)} min"
    return f"{math.ceil(whole / 3600)} h"
