"""Units of the HTTP layer and of request construction/parsing, with aioresponses (no sockets)."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import aiohttp
import pytest
from aioresponses import aioresponses
from yarl import URL

from ipyg4f import errors, http
from ipyg4f.providers import FinishReason
from ipyg4f.providers.acytoo import Acytoo
from ipyg4f.providers.ai365vip import AI365VIP
from ipyg4f.providers.chatgptt import ChatGptt
from ipyg4f.providers.pizzagpt import Pizzagpt
from protocol_server import CLOUDFLARE_PAGE, collect

BASE = "http://seed.test"
ONE = [{"role": "user", "content": "Hi"}]


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` aiohttp 3.14 requires."""

    def __init__(self, method, url, *, stream_writer=None, **kwargs):
        super().__init__(method, url, stream_writer=stream_writer or SimpleNamespace(output_size=0), **kwargs)


@pytest.fixture(autouse=True)
def _aioresponses_compat(monkeypatch):
    if "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters:
        monkeypatch.setattr("aioresponses.core.ClientResponse", _CompatResponse)


@pytest.fixture
def mocked(monkeypatch):
    for provider in (Pizzagpt, ChatGptt, AI365VIP, Acytoo):
        monkeypatch.setattr(provider, "url", BASE)
    with aioresponses() as m:
        yield m


def sent(m, method, url):
    [call] = m.requests[(method, URL(url))]
    return call.kwargs


async def fetch(url="http://svc.test/x", method="GET", **kw):
    async with http.session({}, timeout=5) as session:
        async with http.request(session, method, url, provider="Svc", **kw) as response:
            return await http.read_json(response, "Svc")


# --- request construction and parsing ------------------------------------------------

async def test_pizzagpt_posts_the_question_and_reads_answer_content(mocked):
    mocked.post(f"{BASE}/api/chatx-completion", payload={"answer": {"content": "Ciao"}})
    assert await collect(Pizzagpt.create_async_generator("", ONE, proxy="http://proxy.test:3128")) == \
        ["Ciao", FinishReason("stop")]
    kw = sent(mocked, "POST", f"{BASE}/api/chatx-completion")
    assert kw["json"] == {"question": "Hi"} and kw["proxy"] == "http://proxy.test:3128"


async def test_pizzagpt_falls_back_to_top_level_content(mocked):
    mocked.post(f"{BASE}/api/chatx-completion", payload={"content": "top level"})
    assert await collect(Pizzagpt.create_async_generator("", ONE)) == ["top level", FinishReason("stop")]


async def test_pizzagpt_json_without_an_answer(mocked):
    mocked.post(f"{BASE}/api/chatx-completion", payload={"error": "quota"})
    with pytest.raises(errors.ResponseFormatError, match="sent JSON without an answer"):
        await collect(Pizzagpt.create_async_generator("", ONE))


async def test_pizzagpt_json_that_is_not_an_object(mocked):
    mocked.post(f"{BASE}/api/chatx-completion", payload=["a", "list"])
    with pytest.raises(errors.ResponseFormatError, match="where a JSON object was expected"):
        await collect(Pizzagpt.create_async_generator("", ONE))


@pytest.mark.parametrize("text", ["misuse detected. please get in touch",
                                  "MISUSE DETECTED. PLEASE GET IN TOUCH, we can talk."])
async def test_pizzagpt_misuse_any_case(mocked, text):
    mocked.post(f"{BASE}/api/chatx-completion", payload={"answer": {"content": text}})
    with pytest.raises(ValueError):
        await collect(Pizzagpt.create_async_generator("", ONE))


async def test_chatgptt_reads_single_quoted_tokens_and_posts_a_form(mocked):
    mocked.get(BASE, body="<div data-nonce='n0nce' data-post-id=\"42\"></div>", content_type="text/html")
    mocked.post(f"{BASE}/wp-admin/admin-ajax.php", payload={"data": "answer"})
    assert await collect(ChatGptt.create_async_generator("", ONE, proxy="http://p.test")) == ["answer"]
    assert sent(mocked, "GET", BASE)["proxy"] == "http://p.test"
    kw = sent(mocked, "POST", f"{BASE}/wp-admin/admin-ajax.php")
    assert kw["proxy"] == "http://p.test" and "json" not in kw
    assert (kw["data"]["_wpnonce"], kw["data"]["post_id"]) == ("n0nce", "42")


async def test_chatgptt_plugin_error_is_reported(mocked):
    mocked.get(BASE, body='<div data-nonce="a" data-post-id="1">', content_type="text/html")
    mocked.post(f"{BASE}/wp-admin/admin-ajax.php", payload={"status": "error", "msg": "Nonce expired"})
    with pytest.raises(errors.ResponseFormatError, match="sent no answer: Nonce expired"):
        await collect(ChatGptt.create_async_generator("", ONE))


async def test_chatgptt_cloudflare_page_with_status_200(mocked):
    mocked.get(BASE, body=CLOUDFLARE_PAGE, content_type="text/html")
    with pytest.raises(errors.CloudflareError):
        await collect(ChatGptt.create_async_generator("", ONE))


async def test_ai365vip_html_page_with_status_200_is_not_an_answer(mocked):
    mocked.post(f"{BASE}/api/chat", body="<html><title>Oops</title></html>", content_type="text/html")
    with pytest.raises(errors.ResponseFormatError, match=r"sent an HTML page \(Oops\) instead of an answer"):
        await collect(AI365VIP.create_async_generator("", ONE))


async def test_ai365vip_cloudflare_page_with_status_200(mocked):
    mocked.post(f"{BASE}/api/chat", body=CLOUDFLARE_PAGE, content_type="text/html")
    with pytest.raises(errors.CloudflareError):
        await collect(AI365VIP.create_async_generator("", ONE))


async def test_acytoo_passes_proxy_and_temperature_none_means_default(mocked):
    mocked.post(f"{BASE}/api/completions", body="ok")
    assert await collect(Acytoo.create_async_generator("", ONE, proxy="http://p.test", temperature=None)) == ["ok"]
    kw = sent(mocked, "POST", f"{BASE}/api/completions")
    assert kw["proxy"] == "http://p.test" and kw["json"]["temperature"] == 0.5


# --- status -> error ------------------------------------------------------------------

@pytest.mark.parametrize("status, body, exc_type, message", [
    (500, "<html><title>Boom</title></html>", errors.HTTPStatusError, "HTTP 500: Boom"),
    (502, "", errors.HTTPStatusError, "HTTP 502"),
    (402, '{"error": {"message": "Payment required"}}', errors.HTTPStatusError, "HTTP 402: Payment required"),
    (429, "slow down", errors.RateLimitError, "rate limited (HTTP 429)"),
    (401, '{"detail": "bad token"}', errors.AuthError, "not authorised (HTTP 401): bad token"),
    (403, "forbidden", errors.AuthError, "not authorised (HTTP 403): forbidden"),
    (403, CLOUDFLARE_PAGE, errors.CloudflareError, "blocked by a Cloudflare challenge (HTTP 403)"),
    (503, CLOUDFLARE_PAGE, errors.CloudflareError, "blocked by a Cloudflare challenge (HTTP 503)"),
])
async def test_status_mapping(status, body, exc_type, message):
    with aioresponses() as m:
        m.get("http://svc.test/x", status=status, body=body)
        with pytest.raises(errors.HTTPStatusError) as info:
            await fetch()
    assert type(info.value) is exc_type
    assert str(info.value) == message
    assert info.value.status == status and info.value.provider == "Svc"


def test_cloudflare_header_alone_is_recognised():
    exc = http.status_error(403, "", headers={"cf-mitigated": "challenge"})
    assert isinstance(exc, errors.CloudflareError)


def test_long_bodies_are_cut_to_one_line():
    exc = http.status_error(500, "word\n" * 200)
    assert len(str(exc)) < 200 and "\n" not in str(exc) and str(exc).endswith("…")


# --- transport failure -> error ---------------------------------------------------------

@pytest.mark.parametrize("raised, exc_type, message", [
    (asyncio.TimeoutError(), errors.ProviderTimeoutError, "svc.test did not answer within 5 s"),
    (aiohttp.ConnectionTimeoutError(), errors.ProviderTimeoutError, "svc.test could not be reached within 15 s"),
    (aiohttp.ServerDisconnectedError(), errors.ProviderConnectionError, "cannot reach svc.test"),
    (aiohttp.ClientPayloadError("cut"), errors.StreamBrokenError, "the answer from svc.test was cut off"),
    (aiohttp.ClientConnectorError(None, OSError(111, "refused")), errors.ProviderConnectionError,
     "cannot connect to svc.test"),
    (aiohttp.InvalidURL("x"), errors.ProviderError, "request to svc.test failed"),
])
async def test_transport_mapping(raised, exc_type, message):
    with aioresponses() as m:
        m.get("http://svc.test/x", exception=raised)
        with pytest.raises(errors.ProviderError) as info:
            await fetch()
    assert type(info.value) is exc_type
    assert message in str(info.value)
    assert info.value.__cause__ is raised


async def test_errors_while_reading_inside_the_block_are_mapped():
    with aioresponses() as m:
        m.get("http://svc.test/x", body="x")
        with pytest.raises(errors.StreamBrokenError, match="broke mid-answer"):
            async with http.session() as session:
                async with http.request(session, "GET", "http://svc.test/x") as response:
                    await response.read()
                    raise ConnectionResetError("peer reset")


async def test_provider_errors_raised_in_the_block_get_the_provider_name():
    with aioresponses() as m:
        m.get("http://svc.test/x", body="x")
        with pytest.raises(errors.ResponseFormatError) as info:
            async with http.session() as session:
                async with http.request(session, "GET", "http://svc.test/x", provider="Svc"):
                    raise errors.ResponseFormatError("bad")
    assert info.value.provider == "Svc"


# --- body helpers -------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ("", "svc.test sent an empty body where JSON was expected"),
    ("<!doctype html><title>Login</title>", "svc.test sent an HTML page (Login) where JSON was expected"),
    ('{"answer": {"cont', "svc.test sent truncated or invalid JSON where JSON was expected"),
    ("plain words", "svc.test sent text that is not JSON (plain words) where JSON was expected"),
])
async def test_read_json_says_what_came_instead(body, message):
    with aioresponses() as m:
        m.get("http://svc.test/x", body=body)
        with pytest.raises(errors.ResponseFormatError) as info:
            await fetch()
    assert str(info.value) == message


async def test_read_json_reads_json():
    with aioresponses() as m:
        m.get("http://svc.test/x", payload={"a": [1, "é"]})
        assert await fetch() == {"a": [1, "é"]}


class FakeContent:
    def __init__(self, chunks):
        self.chunks = chunks

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk


class FakeResponse:
    def __init__(self, chunks):
        self.content = FakeContent(chunks)


async def test_iter_text_decodes_characters_split_between_chunks():
    data = "Привет 😀!".encode()
    chunks = [data[i:i + 1] for i in range(len(data))]  # one byte per network chunk
    pieces = [t async for t in http.iter_text(FakeResponse(chunks))]
    assert "".join(pieces) == "Привет 😀!" and "\ufffd" not in "".join(pieces)


async def test_iter_text_flushes_an_incomplete_tail_as_a_replacement():
    pieces = [t async for t in http.iter_text(FakeResponse([b"ok", b"\xe2\x82"]))]
    assert pieces == ["ok", "\ufffd"]


def test_browser_headers_come_from_one_place():
    all_headers = http.browser_headers()
    assert all_headers == http.BROWSER_HEADERS and all_headers is not http.BROWSER_HEADERS
    picked = http.browser_headers("user-agent", x_secret="Marinara", content_type="application/json")
    assert picked == {"user-agent": http.BROWSER_HEADERS["user-agent"], "x-secret": "Marinara",
                      "content-type": "application/json"}
    version = http._CHROME
    assert f"Chrome/{version}." in all_headers["user-agent"] and f'v="{version}"' in all_headers["sec-ch-ua"]


def test_redact_masks_url_credentials_and_registered_secrets():
    assert http.redact("via http://bob:hunter2@proxy.test:8080/") == "via http://***@proxy.test:8080/"
    http.register_secret("sk-unit-secret-42")
    http.register_secret("abc")  # too short to mask safely
    assert http.redact("key sk-unit-secret-42 and abc") == "key *** and abc"
    assert http.proxy_url("http://u:pr0xy-pass@p.test") == "http://u:pr0xy-pass@p.test"
    assert http.redact("pr0xy-pass") == "***"
    assert http.proxy_url("") is None


def test_session_timeouts():
    async def make():
        async with http.session(timeout=7) as session:
            return session.timeout

    timeout = asyncio.run(make())
    assert (timeout.total, timeout.connect, timeout.sock_read) == (None, http.CONNECT_TIMEOUT, 7)
