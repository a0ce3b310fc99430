"""AI365VIP: chat.ai365vip.com, a ChatGPT-clone front end (seed 003).

POSTs a chatbot-ui style JSON body; the answer is plain text streamed in
chunks (not SSE, not JSON), decoded incrementally so a character split
between two network chunks survives.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import http
from . import _seed
from .base import AsyncGeneratorProvider, AsyncResult, Messages, ProviderModelMixin, format_prompt


class AI365VIP(AsyncGeneratorProvider, ProviderModelMixin):
    label = "chat.ai365vip.com, GPT-3.5 / GPT-4o, no key (site retired)"
    url = "https://chat.ai365vip.com"
    api_endpoint: ClassVar[str] = "/api/chat"
    supports_stream = True
    default_model = "gpt-3.5-turbo"
    models: ClassVar[list[str]] = ["gpt-3.5-turbo", "gpt-3.5-turbo-16k", "gpt-4o"]
    model_aliases: ClassVar[dict[str, str]] = {"gpt-3.5-turbo": "gpt-3.5-turbo-16k"}

    @classmethod
    def headers(cls) -> dict[str, str]:
        return http.browser_headers(  # every browser header: user-agent, sec-ch-ua*, sec-fetch-*
            accept="*/*", content_type="application/json", origin=cls.url, referer=f"{cls.url}/en",
        )

    @classmethod
    def body(cls, model: str, messages: Messages) -> dict[str, Any]:
        return {
            "model": {"id": model, "name": "GPT-3.5", "maxLength": 3000, "tokenLimit": 2048},
            "messages": [{"role": "user", "content": format_prompt(messages)}],
            "key": "",
            "prompt": "You are a helpful assistant.",
            "temperature": 1,
        }

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, timeout: float | None = None, **kwargs: Any) -> AsyncResult:
        body = cls.body(cls.get_model(model), messages)
        async with http.session(cls.headers(), timeout=timeout) as session:
            async with http.request(session, "POST", f"{cls.url}{cls.api_endpoint}", provider=cls.name,
                                    proxy=proxy, json=body) as response:
                async for text in _seed.iter_answer_text(response, cls.name):
                    yield text
