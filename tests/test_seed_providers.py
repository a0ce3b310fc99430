"""The four seed providers end to end against the local protocol server.

Each request is checked field by field against shared/spec/providers.md, and
every fault a provider can meet must surface as the specific ipyg4f error
with a message a person can act on.
"""

from __future__ import annotations

import asyncio

import pytest

from ipyg4f import errors
from ipyg4f.providers import FinishReason, format_prompt, get_provider
from ipyg4f.providers.acytoo import Acytoo
from ipyg4f.providers.ai365vip import AI365VIP
from ipyg4f.providers.chatgptt import ChatGptt
from ipyg4f.providers.pizzagpt import Pizzagpt
from protocol_server import (CHATGPTT_NONCE, CHATGPTT_POST_ID, MISUSE_TEXT, closed_port_url, collect,
                             collect_until_error)

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a colour."},
]
PROMPT = "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Name a colour.\nAssistant:"
ONE = [{"role": "user", "content": "Hi"}]

#: provider -> the path of the request that carries the answer
ANSWER_PATH = {
    Pizzagpt: "/api/chatx-completion",
    ChatGptt: "/wp-admin/admin-ajax.php",
    AI365VIP: "/api/chat",
    Acytoo: "/api/completions",
}
SEEDS = list(ANSWER_PATH)
STREAMED = [AI365VIP, Acytoo]
JSON_ANSWER = [Pizzagpt, ChatGptt]
CHROME_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"


def assert_headers(req, expected: dict[str, str], browser: bool = True) -> None:
    """Each expected header has exactly that value; a browser user-agent goes with them."""
    assert {name: req.headers.get(name) for name in expected} == expected
    assert req.headers["user-agent"].startswith(CHROME_UA) is browser


def test_prompt_formatting_matches_the_contract():
    assert format_prompt(MESSAGES) == PROMPT
    assert format_prompt(ONE) == "Hi"
    assert format_prompt([{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]) == \
        "User: a\nAssistant:"


# --- Pizzagpt ------------------------------------------------------------------

async def test_pizzagpt_request_is_wire_exact(seed_urls):
    srv = seed_urls
    srv.answer = "Blue."
    assert await collect(Pizzagpt.create_async_generator("gpt-4o-mini", MESSAGES)) == \
        ["Blue.", FinishReason("stop")]
    [req] = srv.requests
    assert (req.method, req.path) == ("POST", "/api/chatx-completion")
    assert_headers(req, {
        "accept": "application/json", "accept-language": "en-US,en;q=0.9",
        "content-type": "application/json", "origin": srv.base_url, "referer": f"{srv.base_url}/en",
        "x-secret": "Marinara",
    })
    assert req.json == {"question": PROMPT}  # the model is not sent


async def test_pizzagpt_single_message_is_sent_unchanged_and_finishes_with_stop(seed_urls):
    items = await collect(Pizzagpt.create_async_generator("", ONE))
    assert items == ["Hello world", FinishReason("stop")]
    assert str(items[-1]) == ""
    assert seed_urls.requests[0].json == {"question": "Hi"}


async def test_pizzagpt_misuse_text_raises_value_error_case_insensitively(seed_urls):
    seed_urls.fault = "misuse"  # the live server's capitalisation: "Misuse detected. Please get in touch"
    with pytest.raises(ValueError, match="(?i)misuse detected") as info:
        await collect(Pizzagpt.create_async_generator("", ONE))
    assert isinstance(info.value, errors.ProviderError)
    assert "refused" in str(info.value) and MISUSE_TEXT in str(info.value)


async def test_pizzagpt_unknown_model_is_an_error_listing_the_valid_one(seed_urls):
    with pytest.raises(errors.ModelNotFoundError, match="valid models: gpt-4o-mini"):
        await collect(Pizzagpt.create_async_generator("gpt-4", ONE))
    assert seed_urls.requests == []


# --- ChatGptt ------------------------------------------------------------------

async def test_chatgptt_fetches_tokens_then_posts_the_exact_form(seed_urls):
    srv = seed_urls
    srv.answer = "Green."
    assert await collect(ChatGptt.create_async_generator("gpt-4o", MESSAGES)) == ["Green."]
    page, post = srv.requests
    assert (page.method, page.path, page.body) == ("GET", "/", b"")
    assert (post.method, post.path) == ("POST", "/wp-admin/admin-ajax.php")
    host = srv.base_url.removeprefix("http://")
    for req in (page, post):
        assert_headers(req, {"authority": host, "accept": "application/json", "origin": srv.base_url,
                             "referer": f"{srv.base_url}/chat"})
    assert post.headers["content-type"] == "application/x-www-form-urlencoded"  # a form, not JSON
    assert post.json is None
    form = dict(post.form)
    client_id = form.pop("wpaicg_chat_client_id")
    assert len(client_id) == 10 and int(client_id, 16) >= 0
    assert form == {
        "_wpnonce": CHATGPTT_NONCE,
        "post_id": CHATGPTT_POST_ID,
        "url": srv.base_url,
        "action": "wpaicg_chat_shortcode_message",
        "message": PROMPT,
        "bot_id": "0",
        "chatbot_identity": "shortcode",
        "wpaicg_chat_history": "",
    }
    assert list(post.form) == ["_wpnonce", "post_id", "url", "action", "message", "bot_id",
                               "chatbot_identity", "wpaicg_chat_client_id", "wpaicg_chat_history"]


async def test_chatgptt_client_id_is_random(seed_urls):
    for _ in range(2):
        await collect(ChatGptt.create_async_generator("", ONE))
    ids = {r.form["wpaicg_chat_client_id"] for r in seed_urls.requests if r.form}
    assert len(ids) == 2


@pytest.mark.parametrize("fault, missing", [("no_nonce", "data-nonce"), ("no_post_id", "data-post-id")])
async def test_chatgptt_missing_tokens_raise_runtime_error(seed_urls, fault, missing):
    seed_urls.fault = fault
    with pytest.raises(RuntimeError, match="authentication tokens were not found in the page") as info:
        await collect(ChatGptt.create_async_generator("", ONE))
    assert missing in str(info.value)
    assert isinstance(info.value, errors.ProviderError) and info.value.provider == "ChatGptt"
    assert seed_urls.paths() == ["/"]  # nothing was posted


async def test_chatgptt_cloudflare_page_is_its_own_error(seed_urls):
    seed_urls.fault, seed_urls.fault_path = "cloudflare", "/"
    with pytest.raises(errors.CloudflareError, match="Cloudflare challenge") as info:
        await collect(ChatGptt.create_async_generator("", ONE))
    assert info.value.status == 403 and "try another provider" in info.value.hint
    assert seed_urls.paths() == ["/"]


async def test_chatgptt_page_errors_stop_before_posting(seed_urls):
    seed_urls.fault, seed_urls.fault_path = "http500", "/"
    with pytest.raises(errors.HTTPStatusError, match="HTTP 500"):
        await collect(ChatGptt.create_async_generator("", ONE))
    assert seed_urls.paths() == ["/"]


# --- AI365VIP ------------------------------------------------------------------

async def test_ai365vip_request_is_wire_exact(seed_urls):
    srv = seed_urls
    assert "".join(await collect(AI365VIP.create_async_generator("gpt-4o", MESSAGES))) == "Hello world"
    [req] = srv.requests
    assert (req.method, req.path) == ("POST", "/api/chat")
    assert_headers(req, {
        "accept": "*/*", "accept-language": "en-US,en;q=0.9", "content-type": "application/json",
        "origin": srv.base_url, "referer": f"{srv.base_url}/en", "sec-ch-ua-mobile": "?0",
        "sec-ch-ua-platform": '"Windows"', "sec-fetch-dest": "empty", "sec-fetch-mode": "cors",
        "sec-fetch-site": "same-origin",
    })
    assert '"Chromium";v="' in req.headers["sec-ch-ua"]
    assert req.json == {
        "model": {"id": "gpt-4o", "name": "GPT-3.5", "maxLength": 3000, "tokenLimit": 2048},
        "messages": [{"role": "user", "content": PROMPT}],
        "key": "",
        "prompt": "You are a helpful assistant.",
        "temperature": 1,
    }


@pytest.mark.parametrize("asked, sent", [("", "gpt-3.5-turbo"), ("gpt-3.5-turbo", "gpt-3.5-turbo-16k"),
                                         ("gpt-3.5-turbo-16k", "gpt-3.5-turbo-16k"), ("gpt-4o", "gpt-4o")])
async def test_ai365vip_resolves_the_model_before_sending_it(seed_urls, asked, sent):
    await collect(AI365VIP.create_async_generator(asked, ONE))
    assert seed_urls.requests[0].json["model"]["id"] == sent


async def test_ai365vip_unknown_model_lists_the_valid_ones(seed_urls):
    with pytest.raises(errors.ModelNotFoundError) as info:
        await collect(AI365VIP.create_async_generator("claude", ONE))
    assert "gpt-3.5-turbo, gpt-3.5-turbo-16k, gpt-4o" in str(info.value)
    assert seed_urls.requests == []


# --- Acytoo --------------------------------------------------------------------

async def test_acytoo_request_is_wire_exact_and_ignores_the_model(seed_urls):
    srv = seed_urls
    assert "".join(await collect(Acytoo.create_async_generator("gpt-4", MESSAGES))) == "Hello world"
    [req] = srv.requests
    assert (req.method, req.path) == ("POST", "/api/completions")
    assert_headers(req, {"accept": "*/*", "content-type": "application/json"}, browser=False)
    assert "x-secret" not in req.headers and "origin" not in req.headers
    assert req.json == {"key": "", "model": "gpt-3.5-turbo", "messages": MESSAGES,
                        "temperature": 0.5, "password": ""}


async def test_acytoo_sends_the_temperature_kwarg(seed_urls):
    await collect(Acytoo.create_async_generator("", ONE, temperature=0.9))
    assert seed_urls.requests[0].json["temperature"] == 0.9


def test_acytoo_is_marked_not_working():
    assert Acytoo.working is False and not Acytoo.is_available()
    assert Acytoo.supports_message_history and Acytoo.supports_gpt_35_turbo


# --- all four: flags, streaming, proxy -----------------------------------------

def test_declared_fields():
    assert (Pizzagpt.url, Pizzagpt.api_endpoint) == ("https://www.pizzagpt.it", "/api/chatx-completion")
    assert (Pizzagpt.default_model, Pizzagpt.models) == ("gpt-4o-mini", ["gpt-4o-mini"])
    assert ChatGptt.url == "https://chatgptt.me"
    assert (ChatGptt.default_model, ChatGptt.models) == ("gpt-4o", ["gpt-4", "gpt-4o", "gpt-4o-mini"])
    assert ChatGptt.supports_stream and ChatGptt.supports_system_message and ChatGptt.supports_message_history
    assert (AI365VIP.url, AI365VIP.api_endpoint) == ("https://chat.ai365vip.com", "/api/chat")
    assert AI365VIP.model_aliases == {"gpt-3.5-turbo": "gpt-3.5-turbo-16k"}
    assert Acytoo.url == "https://chat.acytoo.com"
    for provider in SEEDS:
        assert provider.label and get_provider(provider.__name__.lower()) is provider


@pytest.mark.parametrize("provider", STREAMED)
async def test_streamed_answers_arrive_before_the_body_ends(seed_urls, provider):
    srv = seed_urls
    srv.fault, srv.fault_after = "stall", 1  # the server holds the rest back until released
    agen = provider.create_async_generator("", ONE)
    assert await agen.__anext__() == "Hello "
    assert await asyncio.to_thread(srv.wait_stalled)
    srv.release_stall()
    assert await collect(agen) == ["world"]


@pytest.mark.parametrize("provider", STREAMED)
async def test_split_utf8_characters_survive(seed_urls, provider):
    srv = seed_urls
    srv.answer = "Привет, мир! 😀 naïve — ok"
    srv.fault, srv.chunk_delay = "split_utf8", 0.01  # every multi-byte character cut between writes
    text = "".join(await collect(provider.create_async_generator("", ONE)))
    assert text == srv.answer and "\ufffd" not in text


@pytest.mark.parametrize("provider", STREAMED)
async def test_explicit_chunks_stream_through(seed_urls, provider):
    seed_urls.chunks = ["Ро", "бот ", b"\xf0\x9f", b"\xa4\x96"]
    assert "".join(await collect(provider.create_async_generator("", ONE))) == "Робот 🤖"


@pytest.mark.parametrize("provider", SEEDS)
async def test_proxy_is_used_for_every_request(seed_urls, provider, monkeypatch):
    # the provider points at a host that does not exist; only the proxy (our server) can answer
    monkeypatch.setattr(provider, "url", "http://seed-site.invalid")
    items = await collect(provider.create_async_generator("", ONE, proxy=seed_urls.base_url))
    assert "".join(map(str, items)) == "Hello world"
    assert seed_urls.requests and {r.headers["host"] for r in seed_urls.requests} == {"seed-site.invalid"}


# --- every fault -> the specific error, with a readable message --------------------

COMMON_FAULTS = [
    ("http500", errors.HTTPStatusError, "HTTP 500: 500 Internal Server Error"),
    ("http404", errors.HTTPStatusError, "HTTP 404: 404 Not Found"),
    ("http429", errors.RateLimitError, "rate limited (HTTP 429)"),
    ("http401", errors.AuthError, "not authorised (HTTP 401)"),
    ("cloudflare", errors.CloudflareError, "blocked by a Cloudflare challenge (HTTP 403)"),
    ("html", errors.ResponseFormatError, "sent an HTML page (Site under maintenance)"),
    ("empty", errors.ResponseFormatError, "sent an empty"),
    ("reset", errors.StreamBrokenError, "was cut off: the connection closed before the end"),
    ("stall", errors.ProviderTimeoutError, "stopped sending: nothing arrived for 3 s"),
]
JSON_FAULTS = [
    ("truncated_json", errors.ResponseFormatError, "sent truncated or invalid JSON where JSON was expected"),
    ("garbage", errors.ResponseFormatError, "text that is not JSON"),
]
CASES = [(p, *case) for p in SEEDS for case in COMMON_FAULTS] + \
        [(p, *case) for p in JSON_ANSWER for case in JSON_FAULTS]


@pytest.mark.parametrize("provider, fault, exc_type, message", CASES,
                         ids=[f"{c[0].__name__}-{c[1]}" for c in CASES])
async def test_fault_becomes_a_specific_readable_error(seed_urls, provider, fault, exc_type, message):
    srv = seed_urls
    srv.fault, srv.fault_path, srv.fault_after = fault, ANSWER_PATH[provider], 1
    # a stall never ends (3 s of silence, then the timeout); any other fault must not meet the timeout
    timeout = 3 if fault == "stall" else 60
    items, exc = await collect_until_error(provider.create_async_generator("", ONE, timeout=timeout))
    assert type(exc) is exc_type
    assert message in str(exc)
    assert exc.provider == provider.__name__ and exc.hint
    assert not any(word in str(exc) for word in ("aiohttp", "Traceback", "<html", "<title"))
    if fault in ("reset", "stall") and provider in STREAMED:
        assert items == ["Hello "]  # what arrived before the fault was streamed
    if fault == "stall":
        assert srv.stalls == 1


@pytest.mark.parametrize("provider", SEEDS)
async def test_connection_refused(provider, monkeypatch):
    url = closed_port_url()
    monkeypatch.setattr(provider, "url", url)
    _, exc = await collect_until_error(provider.create_async_generator("", ONE))
    assert type(exc) is errors.ProviderConnectionError
    assert str(exc) == f"cannot connect to {url.removeprefix('http://')}"
    assert "--proxy" in exc.hint


@pytest.mark.parametrize("provider", JSON_ANSWER)
async def test_empty_answer_text_is_an_error(seed_urls, provider):
    seed_urls.answer = ""
    with pytest.raises(errors.ResponseFormatError, match="sent an empty answer"):
        await collect(provider.create_async_generator("", ONE))

