"""The one HTTP layer: session factory, browser headers, decoding, error mapping.

Every provider request goes through :func:`request`, so aiohttp and HTTP
failures are turned into :mod:`ipyg4f.errors` in exactly one place, including
failures that happen while the provider is reading the body inside the
``async with`` block.  aiohttp is imported lazily (not at ``%load_ext``).
"""

from __future__ import annotations

import asyncio
import codecs
import contextvars
import json
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator
from urllib.parse import urlsplit

from . import errors

if TYPE_CHECKING:  # pragma: no cover
    import aiohttp

#: Default timeouts in seconds: to connect, and between two reads of the body.
CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 60.0

# One desktop Chromium, described once.  Providers pick the headers they need.
_CHROME = "131"
BROWSER_HEADERS: dict[str, str] = {
    "user-agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        f"(KHTML, like Gecko) Chrome/{_CHROME}.0.0.0 Safari/537.36"
    ),
    "accept-language": "en-US,en;q=0.9",
    "sec-ch-ua": f'"Google Chrome";v="{_CHROME}", "Chromium";v="{_CHROME}", "Not_A Brand";v="24"',
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Windows"',
    "sec-fetch-dest": "empty",
    "sec-fetch-mode": "cors",
    "sec-fetch-site": "same-origin",
}


def browser_headers(*names: str, **extra: str) -> dict[str, str]:
    """The named browser headers (all when none is named) plus ``extra``.

    ``extra`` keys use ``_`` for ``-``: ``browser_headers("user-agent", x_secret="...")``.
    """
    base = {k: v for k, v in BROWSER_HEADERS.items() if not names or k in names}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return base


# --- secrets -----------------------------------------------------------------

_secrets: set[str] = set()
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(?::[^/@\s]*)?@")


def register_secret(value: str | None) -> None:
    """Remember a secret (API key, password) so :func:`redact` masks it everywhere."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """Mask URL credentials (``user:pass@``) and every registered secret."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def proxy_url(proxy: str | None) -> str | None:
    if proxy:
        parts = urlsplit(proxy)
        if parts.password:
            register_secret(parts.password)
    return proxy or None


# --- sessions ----------------------------------------------------------------

def session(headers: dict[str, str] | None = None, *, timeout: float | None = None,
            connect_timeout: float | None = None, **kwargs: Any) -> "aiohttp.ClientSession":
    """A ClientSession with connect/read timeouts; use it with ``async with``.

    ``timeout`` is the longest silence allowed while reading (seconds).
    """
    import aiohttp

    client_timeout = aiohttp.ClientTimeout(
        total=None,
        connect=connect_timeout or CONNECT_TIMEOUT,
        sock_read=timeout or READ_TIMEOUT,
    )
    pool = _POOL.get()
    if pool is not None and not pool.closed and "connector" not in kwargs:
        kwargs.update(connector=pool, connector_owner=False)
    return aiohttp.ClientSession(headers=headers, timeout=client_timeout, **kwargs)


#: the connection pool that sessions share inside :func:`pooled` (None: each session has its own)
_POOL: contextvars.ContextVar[Any] = contextvars.ContextVar("ipyg4f_http_pool", default=None)


@asynccontextmanager
async def pooled() -> AsyncIterator[None]:
    """Inside this block (and the tasks it starts) every :func:`session` shares one connection pool.

    A batch of requests then reuses kept-alive connections instead of opening one
    per request.  The pool is closed when the block ends.
    """
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0)  # the caller bounds its concurrency
    token = _POOL.set(connector)
    try:
        yield
    finally:
        _POOL.reset(token)
        await connector.close()


# --- error mapping -----------------------------------------------------------

_CLOUDFLARE_MARKERS = (
    "<title>just a moment...</title>",
    "cf-browser-verification",
    "cf_chl_opt",
    "challenge-platform",
    "attention required! | cloudflare",
    "cf-error-details",
)


def is_cloudflare(body: str, headers: Any = None) -> bool:
    if headers is not None and headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    low = body.lower()
    return any(marker in low for marker in _CLOUDFLARE_MARKERS)


def excerpt(body: str, limit: int = 160) -> str:
    """A short, single-line, secret-free excerpt of a response body."""
    title = re.search(r"<title[^>]*>(.*?)</title>", body, re.I | re.S)
    if title and title.group(1).strip():
        text = title.group(1)
    elif "<" in body and ">" in body:
        text = re.sub(r"<[^>]+>", " ", body)
    else:
        text = body
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return redact(text)


def _error_message(body: str) -> str:
    """The message of a JSON error body (OpenAI style), else an excerpt."""
    try:
        data = json.loads(body)
    except ValueError:
        return excerpt(body)
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            err = err.get("message") or err.get("detail") or err
        return excerpt(str(err))
    return excerpt(body)


def status_error(status: int, body: str, *, headers: Any = None, url: str = "",
                 provider: str | None = None) -> errors.HTTPStatusError:
    """The right :class:`~ipyg4f.errors.HTTPStatusError` for an error response."""
    kw = {"url": url, "provider": provider}
    if status in (403, 429, 503) and is_cloudflare(body, headers):
        return errors.CloudflareError(status, excerpt(body), **kw)
    message = _error_message(body)
    if status in (401, 403):
        return errors.AuthError(status, message, **kw)
    cls = errors.RateLimitError if status == 429 else errors.HTTPStatusError
    wait = retry_after(headers)
    return cls(status, message, retry_after=retry_after_in(message) if wait is None else wait, **kw)


_UNITS = {"ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001, "": 1, "s": 1, "sec": 1, "secs": 1,
          "second": 1, "seconds": 1, "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
          "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600}
_NUMBER = r"\d+(?:\.\d+)?\s*[a-z]*"
_RETRY_IN = re.compile(rf"(?:try again|retry)(?: it)?\s+(?:in|after)\s+({_NUMBER}(?:\s*(?:and\s+)?{_NUMBER})*)(?![-/:\w])",
                       re.I)


def retry_after_in(text: str) -> float | None:
    """Seconds a service's message asks to wait: "Please try again in 7s", "try again in 1m30s",
    "retry after 20 seconds" (OpenAI, Groq and others say it there); None when it does not say."""
    found = _RETRY_IN.search(text or "")
    if found is None:
        return None
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", found.group(1), re.I):
        if unit.lower() not in _UNITS:
            return None
        total += float(number) * _UNITS[unit.lower()]
    return total


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date); None when absent or unreadable."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import datetime, timezone
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return None


async def raise_for_status(response: "aiohttp.ClientResponse", provider: str | None = None) -> None:
    if response.status < 400:
        return
    raw = await response.content.read(65536)
    body = raw.decode(response.get_encoding() if response.charset else "utf-8", errors="replace")
    raise status_error(response.status, body, headers=response.headers,
                       url=str(response.url), provider=provider)


def host_of(url: Any) -> str:
    """``chat.example.com`` of ``https://user:pw@chat.example.com/api`` (credentials dropped)."""
    return urlsplit(str(url)).netloc.rpartition("@")[2] or str(url)


def reachable(urls: dict[str, str], timeout: float = 2.0) -> dict[str, str]:
    """Whether a server answers at each URL (one plain GET, no key sent, all at once): ``name ->
    "yes (HTTP 200, 12 ms)" | "refused: nothing listens there" | "unknown host (offline?)" | "no answer in 2 s"``.
    Any HTTP status counts as an answer.  The whole check takes at most ``timeout`` seconds, a hanging
    name lookup included (its thread is left to finish on its own)."""
    import concurrent.futures
    import socket
    import time
    import urllib.error
    import urllib.request

    def probe(url: str) -> str:
        started = time.perf_counter()
        try:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers={"user-agent": "ipyg4f"}),
                                            timeout=timeout) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:  # an answer all the same
                status = exc.code
            except urllib.error.URLError as exc:
                raise exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason)) from None
        except ConnectionRefusedError:
            return "refused: nothing listens there"
        except socket.gaierror:
            return "unknown host (offline?)"
        except TimeoutError:
            return f"no answer in {timeout:g} s"
        except OSError as exc:
            return redact(exc.strerror or str(exc) or type(exc).__name__)
        return f"yes (HTTP {status}, {(time.perf_counter() - started) * 1000:.0f} ms)"

    if not urls:
        return {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(urls)), thread_name_prefix="ipyg4f-probe")
    futures = {name: pool.submit(probe, url) for name, url in urls.items()}
    concurrent.futures.wait(futures.values(), timeout=timeout + 0.2)
    pool.shutdown(wait=False, cancel_futures=True)
    return {name: f.result() if f.done() else f"no answer in {timeout:g} s" for name, f in futures.items()}


@asynccontextmanager
async def request(session: "aiohttp.ClientSession", method: str, url: str, *,
                  provider: str | None = None, proxy: str | None = None,
                  **kwargs: Any) -> AsyncIterator["aiohttp.ClientResponse"]:
    """``session.request`` with status checking and error mapping.

    Errors raised while the caller reads the response inside the block are
    mapped too: a break after the headers arrived is a
    :class:`~ipyg4f.errors.StreamBrokenError`.
    """
    import aiohttp

    host = host_of(url)
    timeout = session.timeout.sock_read
    started = False
    response = None
    try:
        async with session.request(method, url, proxy=proxy_url(proxy), **kwargs) as response:
            await raise_for_status(response, provider)
            started = True
            yield response
    except errors.ProviderError as exc:
        if exc.provider is None:
            exc.provider = provider
        raise
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:  # TimeoutError on 3.11+
        if isinstance(exc, getattr(aiohttp, "ConnectionTimeoutError", ())):  # aiohttp >= 3.10
            message = f"{host} could not be reached within {session.timeout.connect:g} s"
        elif started and getattr(response.content, "total_bytes", 1):  # headers alone are no answer
            message = f"{host} stopped sending: nothing arrived for {timeout:g} s"
        else:
            message = f"{host} did not answer within {timeout:g} s"
        raise errors.ProviderTimeoutError(message, provider=provider) from exc
    except aiohttp.ClientConnectorError as exc:
        raise errors.ProviderConnectionError(f"cannot connect to {host}", provider=provider) from exc
    except aiohttp.ClientPayloadError as exc:
        raise errors.StreamBrokenError(f"the answer from {host} was cut off: the connection closed "
                                       "before the end", provider=provider) from exc
    except (aiohttp.ServerDisconnectedError, ConnectionResetError, aiohttp.ClientOSError) as exc:
        if started:
            raise errors.StreamBrokenError(f"the connection to {host} broke mid-answer",
                                           provider=provider) from exc
        raise errors.ProviderConnectionError(f"cannot reach {host} ({_short(exc)})",
                                             provider=provider) from exc
    except aiohttp.ClientError as exc:
        raise errors.ProviderError(f"request to {host} failed ({_short(exc)})", provider=provider) from exc


def _short(exc: BaseException) -> str:
    return redact(errors.describe(exc).splitlines()[0][:160]) if str(exc) else type(exc).__name__


# --- body helpers ------------------------------------------------------------

async def iter_text(response: "aiohttp.ClientResponse") -> AsyncIterator[str]:
    """The body as text pieces, UTF-8 decoded incrementally (split characters survive)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    async for chunk in response.content.iter_any():
        if text := decoder.decode(chunk):
            yield text
    if tail := decoder.decode(b"", final=True):
        yield tail


async def read_json(response: "aiohttp.ClientResponse", provider: str | None = None) -> Any:
    """The body parsed as JSON, or a :class:`~ipyg4f.errors.ResponseFormatError` saying why not."""
    raw = await response.read()
    body = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(body)
    except ValueError:
        pass
    host = host_of(response.url)
    if is_cloudflare(body, response.headers):
        raise errors.CloudflareError(response.status, excerpt(body), url=str(response.url), provider=provider)
    stripped = body.lstrip()
    if not stripped:
        what = "an empty body"
    elif stripped[:1] == "<":
        what = f"an HTML page ({excerpt(body, 80)})"
    elif stripped[:1] in "{[":
        what = "truncated or invalid JSON"
    else:
        what = f"text that is not JSON ({excerpt(body, 80)})"
    raise errors.ResponseFormatError(f"{host} sent {what} where JSON was expected", provider=provider)
