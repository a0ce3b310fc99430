"""ChatGptt: chatgptt.me, a WordPress AI-chat plugin (seed 002).

Two steps: GET the chat page and read the ``data-nonce`` / ``data-post-id``
tokens from its HTML, then POST the prompt form-encoded to WordPress'
``admin-ajax.php``; the JSON answer's ``data`` is the whole reply.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar

from .. import errors, http
from . import _seed
from .base import AsyncGeneratorProvider, AsyncResult, Messages, ProviderModelMixin, format_prompt

_NONCE = re.compile(r'data-nonce=["\']([^"\']+)["\']')
_POST_ID = re.compile(r'data-post-id=["\']([^"\']+)["\']')


class ChatGptt(AsyncGeneratorProvider, ProviderModelMixin):
    label = "chatgptt.me, a WordPress chat page, no key (site retired)"
    url = "https://chatgptt.me"
    api_endpoint: ClassVar[str] = "/wp-admin/admin-ajax.php"
    supports_stream = True
    supports_system_message = True
    supports_message_history = True
    default_model = "gpt-4o"
    models: ClassVar[list[str]] = ["gpt-4", "gpt-4o", "gpt-4o-mini"]

    @classmethod
    def headers(cls) -> dict[str, str]:
        return http.browser_headers(
            "user-agent", authority=http.host_of(cls.url), accept="application/json",
            origin=cls.url, referer=f"{cls.url}/chat",
        )

    @classmethod
    def form(cls, nonce: str, post_id: str, messages: Messages) -> dict[str, str]:
        return {
            "_wpnonce": nonce,
            "post_id": post_id,
            "url": cls.url,
            "action": "wpaicg_chat_shortcode_message",
            "message": format_prompt(messages),
            "bot_id": "0",
            "chatbot_identity": "shortcode",
            "wpaicg_chat_client_id": secrets.token_hex(5),
            "wpaicg_chat_history": "",
        }

    @classmethod
    async def create_async_generator(cls, model: str, messages: Messages, proxy: str | None = None,
                                     *, timeout: float | None = None, **kwargs: Any) -> AsyncResult:
        cls.get_model(model)  # the plugin picks its own model; an unknown name is still an error
        name = cls.name
        async with http.session(cls.headers(), timeout=timeout) as session:
            async with http.request(session, "GET", cls.url, provider=name, proxy=proxy) as response:
                page = (await response.read()).decode("utf-8", errors="replace")
                nonce, post_id = _NONCE.search(page), _POST_ID.search(page)
                if not (nonce and post_id):
                    raise cls._tokens_error(response, page, nonce, post_id)
            form = cls.form(nonce.group(1), post_id.group(1), messages)
            async with http.request(session, "POST", f"{cls.url}{cls.api_endpoint}", provider=name,
                                    proxy=proxy, data=form) as response:
                data = await _seed.read_json_object(response, name)
        answer = data.get("data")
        if data.get("status") == "error" or not isinstance(answer, str):
            reason = data.get("msg") or data.get("message") or str(data)
            raise errors.ResponseFormatError(
                f"{http.host_of(response.url)} sent no answer: {http.excerpt(str(reason), 120)}", provider=name)
        if not answer:
            raise _seed.empty_answer(response, name)
        yield answer

    @classmethod
    def _tokens_error(cls, response: Any, page: str, nonce: Any, post_id: Any) -> errors.ProviderError:
        if http.is_cloudflare(page, response.headers):
            return errors.CloudflareError(response.status, http.excerpt(page), url=str(response.url),
                                          provider=cls.name)
        missing = " and ".join(n for n, m in (("data-nonce", nonce), ("data-post-id", post_id)) if not m)
        return errors.TokensNotFoundError(
            f"the authentication tokens were not found in the page {cls.url} (no {missing}); "
            "the site has changed or is down", provider=cls.name)
