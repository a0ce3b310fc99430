"""Pizzagpt: pizzagpt.it's free gpt-4o-mini (seeds 000, 001).

One POST of ``{"question": prompt}`` with the site's ``x-secret`` header; the
answer comes back whole as JSON (``answer.content``), so it is one chunk
followed by ``FinishReason("stop")``.  The model is not sent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import errors, http
from . import _seed
from .base import (AsyncGeneratorProvider, AsyncResult, FinishReason, Messages, ProviderModelMixin,
                   format_prompt)


class Pizzagpt(AsyncGeneratorProvider, ProviderModelMixin):
    label = "pizzagpt.it, free gpt-4o-mini, no key (site retired)"
    url = "https://www.pizzagpt.it"
    api_endpoint: ClassVar[str] = "/api/chatx-completion"
    default_model = "gpt-4o-mini"
    models: ClassVar[list[str]] = ["gpt-4o-mini"]
    #: the site's refusal, matched case-insensitively
    misuse_text: ClassVar[str] = "misuse detected. please get in touch"

    @classmethod
    def headers(cls) -> dict[str, str]:
        return http.browser_headers(
            "user-agent", "accept-language",
            accept="application/json", content_type="application/json",
            origin=cls.url, referer=f"{cls.url}/en", x_secret="Marinara",
        )

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, timeout: float | None = None, **kwargs: Any) -> AsyncResult:
        cls.get_model(model)  # only one model: an unknown name is an error, not ignored
        name = cls.name
        async with http.session(cls.headers(), timeout=timeout) as session:
            async with http.request(session, "POST", f"{cls.url}{cls.api_endpoint}", provider=name,
                                    proxy=proxy, json={"question": format_prompt(messages)}) as response:
                data = await _seed.read_json_object(response, name)
        answer = data.get("answer", data)
        content = answer.get("content") if isinstance(answer, dict) else None
        if not isinstance(content, str):
            raise errors.ResponseFormatError(
                f"{http.host_of(response.url)} sent JSON without an answer: {http.excerpt(str(data), 80)}",
                provider=name)
        if not content:
            raise _seed.empty_answer(response, name)
        if cls.misuse_text in content.lower():
            raise errors.RefusedError(f"Pizzagpt refused the request: {content}", provider=name)
        yield content
        yield FinishReason("stop")
