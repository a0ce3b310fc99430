"""Body readers shared by the four seed providers (Pizzagpt, ChatGptt, AI365VIP, Acytoo).

They turn what a retired gpt4free-style site sends into answer text, or into
an :mod:`ipyg4f.errors` exception whose message names the host and says what
was wrong.  Transport failures are mapped by :func:`ipyg4f.http.request`.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from .. import errors, http

__all__ = ["read_json_object", "iter_answer_text", "empty_answer"]


def empty_answer(response: Any, provider: str) -> errors.ResponseFormatError:
    return errors.ResponseFormatError(f"{http.host_of(response.url)} sent an empty answer", provider=provider)


async def read_json_object(response: Any, provider: str) -> dict:
    """The body as a JSON object; anything else is a :class:`~ipyg4f.errors.ResponseFormatError`."""
    data = await http.read_json(response, provider)
    if not isinstance(data, dict):
        raise errors.ResponseFormatError(
            f"{http.host_of(response.url)} sent {http.excerpt(repr(data), 80)} where a JSON object was expected",
            provider=provider)
    return data


async def iter_answer_text(response: Any, provider: str) -> AsyncIterator[str]:
    """A plain-text answer streamed in pieces, UTF-8 decoded incrementally.

    An HTML page (an error or maintenance page served with status 200) and an
    empty body are errors, not answers.
    """
    if response.content_type == "text/html":
        page = (await response.read()).decode("utf-8", errors="replace")
        if http.is_cloudflare(page, response.headers):
            raise errors.CloudflareError(response.status, http.excerpt(page), url=str(response.url),
                                         provider=provider)
        raise errors.ResponseFormatError(
            f"{http.host_of(response.url)} sent an HTML page ({http.excerpt(page, 80)}) instead of an answer",
            provider=provider)
    empty = True
    async for text in http.iter_text(response):
        empty = False
        yield text
    if empty:
        raise empty_answer(response, provider)
