"""Acytoo: chat.acytoo.com (seed 004); the site was dead when the seed was written.

The only seed provider that sends the structured message list.  The model
argument is ignored (the body always says ``gpt-3.5-turbo``); the answer is
raw text chunks, decoded incrementally.  The seed sends exactly two headers,
``accept`` and ``content-type``, and so does this class: no browser headers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import http
from . import _seed
from .base import AsyncGeneratorProvider, AsyncResult, Messages


class Acytoo(AsyncGeneratorProvider):
    label = "chat.acytoo.com, gpt-3.5-turbo, no key (dead; kept for reference)"
    url = "https://chat.acytoo.com"
    api_endpoint: ClassVar[str] = "/api/completions"
    working = False
    supports_message_history = True
    supports_gpt_35_turbo: ClassVar[bool] = True
    options = frozenset({"proxy", "temperature"})

    @classmethod
    def headers(cls) -> dict[str, str]:
        return {"accept": "*/*", "content-type": "application/json"}

    @classmethod
    def body(cls, messages: Messages, temperature: float | None = 0.5) -> dict[str, Any]:
        return {"key": "", "model": "gpt-3.5-turbo", "messages": list(messages),
                "temperature": 0.5 if temperature is None else temperature, "password": ""}

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, timeout: float | None = None, temperature: float | None = 0.5,
                                     **kwargs: Any) -> AsyncResult:
        async with http.session(cls.headers(), timeout=timeout) as session:
            async with http.request(session, "POST", f"{cls.url}{cls.api_endpoint}", provider=cls.name,
                                    proxy=proxy, json=cls.body(messages, temperature)) as response:
                async for text in _seed.iter_answer_text(response, cls.name):
                    yield text
