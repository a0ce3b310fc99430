"""One local server that speaks every protocol ipyg4f talks, and misbehaves on demand.

It answers like the four retired seed sites (Pizzagpt, ChatGptt, AI365VIP,
Acytoo; see ``shared/spec/providers.md``) and like an OpenAI-compatible API,
records every request, and can fail in the ways real services fail.  It runs
in a background thread with its own event loop, so sync tests (driving a
kernel in another process) and async tests can both use it::

    srv = ProtocolServer(); srv.start()
    Pizzagpt.url = srv.base_url          # or base_url=f"{srv.base_url}/v1" for OpenAI
    ...
    srv.stop()

Endpoints (method, path -> body kind):

=====  ===========================  =====================================================
POST   /api/chatx-completion        Pizzagpt: json ``{"answer": {"content": ...}}``
GET    /                            ChatGptt page: html with ``data-nonce`` / ``data-post-id``
POST   /wp-admin/admin-ajax.php     ChatGptt: json ``{"status": "success", "data": ...}``
POST   /api/chat                    AI365VIP: plain text in chunks
POST   /api/completions             Acytoo: plain text in chunks
POST   /v1/chat/completions         OpenAI: sse deltas + ``[DONE]``; json when stream is false
GET    /v1/models                   OpenAI: json model list (``models``)
GET    /props                       llama.cpp: json ``{"default_generation_settings": {"n_ctx": props_n_ctx}}``
                                    (404 while ``props_n_ctx`` is None)
=====  ===========================  =====================================================

Anything else is recorded and answered with a 404 page.

Settings (plain attributes, read when a request arrives; :meth:`reset` restores them):

``answer``        the text every protocol answers with
``chunks``        explicit pieces for streamed bodies: ``str`` is one OpenAI delta event or
                  one text piece; ``bytes`` is written as is (raw SSE framing included)
``chunk_delay``   seconds between two streamed pieces (pacing, not synchronisation)
``fault``         one of :data:`FAULTS` (``None``: behave)
``fault_after``   for ``reset``/``stall``/``sse_error_event``/``truncated_json`` on a
                  stream: how many pieces are sent before the fault hits
``fault_path``    only requests to this path meet the fault (``None``: every path)
``models``        what ``GET /v1/models`` lists
``api_key``       when set, ``/v1/*`` wants ``Authorization: Bearer <api_key>`` (else 401)
``ignore_stream`` the OpenAI endpoint answers JSON even when a stream was asked for
``echo``          the OpenAI endpoint answers with the last message's content instead of ``answer``
``latency``       seconds before a response starts: a number, or ``f(RecordedRequest) -> seconds``
                  (per-request latencies; the server handles requests concurrently)
``fault_match``   only requests whose body contains this text meet the fault (``None``: all)
``fault_times``   only the next N requests that would meet the fault do (``None``: every one)
``retry_after``   the ``Retry-After`` header of the http429/http500 faults (``None``: none)
``error_message`` the ``message`` of the OpenAI error object of a status fault (``None``: the usual)

What ``POST /v1/chat/completions`` streams, like reasoning and other OpenAI-compatible
servers (vLLM, llama.cpp, Ollama, DeepSeek) do; the JSON answer only follows ``finish_reason``:

==========================  ===================================================================
``reasoning``               text (``str``: split into words; or a list of pieces) streamed before
                            the answer as ``{"content": null, <reasoning_field>: piece}`` deltas
``reasoning_field``         ``"reasoning_content"`` (DeepSeek, llama.cpp) or ``"reasoning"``
                            (Ollama, OpenRouter)
``think_tags``              the reasoning goes inside the content instead, as
                            ``<think>{reasoning}</think>\\n\\n{answer}``, both tags split inside
                            their text (``"<thi"``, ``"nk>"``, ..., ``"</"``, ``"think>\\n\\n"``)
``finish_reason``           of the last delta (``"stop"``; e.g. ``"length"``)
``tool_calls``              function names: ``delta.tool_calls`` instead of any content, per call
                            index, id, type and name, then :data:`TOOL_ARGUMENTS` as JSON in
                            pieces; the last delta has ``finish_reason`` ``"tool_calls"``
``prompt_tokens``           the usage numbers; ``None``: the words in the request's messages
``completion_tokens``       (prompt) or in the reasoning and the answer (completion)
``reject_stream_options``   a request with ``stream_options`` gets HTTP 400 and an OpenAI error:
                            "Unrecognized request argument supplied: stream_options"
``context_overflow``        HTTP 400 with llama.cpp's ``exceed_context_size_error`` body
                            (:data:`CONTEXT_OVERFLOW_ERROR`)
``script``                  a multi-step tool-call conversation (:mod:`tool_script`: a list of
                            ``Turn`` / text, or ``f(body) -> Turn``): each request is answered by
                            the turn its step calls for (how many assistant ``tool_calls`` turns
                            follow the last user message), streamed or as one JSON answer;
                            :meth:`ProtocolServer.chat_bodies` gives the request bodies received
==========================  ===================================================================

Usage, as OpenAI sends it: when the request has ``stream_options: {"include_usage": true}``,
every chunk carries ``"usage": null`` and one last chunk ``{"choices": [], "usage":
{"prompt_tokens", "completion_tokens", "total_tokens"}}`` comes before ``[DONE]``.

Every request is kept in :attr:`ProtocolServer.requests`; a JSON body is parsed into
``RecordedRequest.json`` (e.g. ``srv.requests[0].json["stream_options"]``).

Faults, by body kind (``-``: that kind ignores the fault):

===============  ============================================================================
http500/404      an error page; on ``/v1`` an OpenAI error object (404: ``model_not_found``)
http429/401      429 rate limit / 401 unauthorised (on ``/v1`` echoing the bearer token sent)
cloudflare       403 Cloudflare challenge page (``<title>Just a moment...</title>``)
html             json/text/sse: a 200 HTML maintenance page instead; html: -
truncated_json   json: the body cut in half; sse: a cut event after ``fault_after`` events
garbage          json/text/sse: bytes that are neither UTF-8 nor JSON nor SSE; html: -
split_utf8       every multi-byte character is cut between two writes
reset            the connection is aborted after ``fault_after`` pieces
stall            nothing more is sent after ``fault_after`` pieces until :meth:`release_stall`,
                 :meth:`reset` or :meth:`stop`; then the rest follows
misuse           the answer is Pizzagpt's "Misuse detected..." text (every protocol)
no_nonce         the ChatGptt page lacks ``data-nonce`` (``no_post_id``: lacks ``data-post-id``)
sse_error_event  sse: an ``{"error": ...}`` event after ``fault_after`` deltas, then the end
empty            status 200 and an empty body
===============  ============================================================================

A request whose client closes the connection before its response has ended (a cancelled
stream) is added to :attr:`ProtocolServer.dropped`.

Tests count, they do not sleep: :meth:`wait_for_requests`, :meth:`wait_dropped` and
:meth:`wait_stalled` block (with a timeout) until the server has seen that
much.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

__all__ = ["ProtocolServer", "RecordedRequest", "FAULTS", "MISUSE_TEXT", "TOOL_ARGUMENTS",
           "CONTEXT_OVERFLOW_ERROR", "STREAM_OPTIONS_ERROR"]

STATUS_FAULTS = ("http500", "http404", "http429", "http401", "cloudflare")
FAULTS = frozenset({
    *STATUS_FAULTS, "html", "truncated_json", "garbage", "split_utf8", "reset", "stall",
    "misuse", "no_nonce", "no_post_id", "sse_error_event", "empty",
})

MISUSE_TEXT = "Misuse detected. Please get in touch, we can come up with a solution for your use case."
CHATGPTT_NONCE = "4f2a9c61be"
CHATGPTT_POST_ID = "106"
GARBAGE = b"\xff\xfe\x00\x9c garbage \xc3(\xa0\xa1 {not: json\n\x00\r\n"
CLOUDFLARE_PAGE = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title>"
    "<meta http-equiv=\"refresh\" content=\"390\"></head><body><div id=\"challenge-platform\">"
    "<noscript>Enable JavaScript and cookies to continue</noscript></div>"
    "<script>window._cf_chl_opt={cvId: '3'};</script></body></html>"
)
TOOL_ARGUMENTS = {"city": "Paris", "unit": "celsius"}
CONTEXT_OVERFLOW_ERROR = {"error": {  # llama.cpp's llama-server, word for word (test_llamacpp_server checks)
    "code": 400, "message": "request (5000 tokens) exceeds the available context size (4096 tokens), try increasing it",
    "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}}
STREAM_OPTIONS_ERROR = {"error": {
    "message": "Unrecognized request argument supplied: stream_options",
    "type": "invalid_request_error", "param": None, "code": None}}
MAINTENANCE_PAGE = ("<!doctype html><html><head><title>Site under maintenance</title></head>"
                    "<body><h1>We'll be back soon</h1></body></html>")

_DEFAULTS: dict[str, Any] = {
    "answer": "Hello world",
    "chunks": None,
    "chunk_delay": 0.0,
    "fault": None,
    "fault_after": 0,
    "fault_path": None,
    "models": ("gpt-4o-mini", "test-model"),
    "api_key": None,
    "ignore_stream": False,
    "reasoning": None,
    "reasoning_field": "reasoning_content",
    "think_tags": False,
    "finish_reason": "stop",
    "tool_calls": None,
    "prompt_tokens": None,
    "completion_tokens": None,
    "reject_stream_options": False,
    "context_overflow": False,
    "echo": False,
    "latency": 0.0,
    "fault_match": None,
    "fault_times": None,
    "retry_after": None,
    "error_message": None,
    "script": None,
    "props_n_ctx": None,
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: CIMultiDict  # case-insensitive: headers["Content-Type"] == headers["content-type"]
    body: bytes
    json: Any = None
    form: dict[str, str] | None = None
    query: dict[str, str] = field(default_factory=dict)


@dataclass
class _Reply:
    """What a protocol sends when nothing goes wrong; faults are applied to it."""

    kind: str  # "json" | "text" | "sse" | "html"
    pieces: list[bytes]
    content_type: str
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


def _words(text: str) -> list[str]:
    """``"Hello big world"`` -> ``["Hello ", "big ", "world"]`` (joins back exactly)."""
    return re.findall(r"\S+\s*|\s+", text)


def _split_utf8(data: bytes) -> list[bytes]:
    """Cut ``data`` inside every multi-byte UTF-8 character."""
    cuts, i = [], 0
    while i < len(data):
        lead = data[i]
        size = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2 if lead >= 0xC0 else 1
        if size > 1:
            cuts.append(i + 1)
        i += size
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def _sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else _json(data)) + b"\n\n"


def _n_words(texts: Any) -> int:
    return sum(len(t.split()) for t in texts if isinstance(t, str))


def _usage(s: Any, body: dict, spoken: int) -> dict[str, int]:
    """The ``usage`` object: the settings, else word counts of the messages and of the answer."""
    messages = [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    prompt = s.prompt_tokens if s.prompt_tokens is not None else _n_words(messages)
    completion = s.completion_tokens if s.completion_tokens is not None else spoken
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _tool_call_deltas(names: list[str]) -> list[dict]:
    """OpenAI's ``delta.tool_calls``: per call a head (id, type, name), then the arguments in pieces."""
    deltas: list[dict] = []
    for i, name in enumerate(names):
        head = {"index": i, "id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": ""}}
        deltas.append({"role": "assistant", "content": None, "tool_calls": [head]} if i == 0
                      else {"tool_calls": [head]})
        deltas += [{"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                   for piece in _words(json.dumps(TOOL_ARGUMENTS))]
    return deltas


class ProtocolServer:
    """See the module docstring.  Thread-safe to configure between requests."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port: int | None = None
        self.requests: list[RecordedRequest] = []
        self.stalls = 0  # how many responses have entered a stall
        self.dropped: list[RecordedRequest] = []  # requests whose client closed the connection mid-response
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.BaseRunner | None = None
        self._stalled: set[asyncio.Future] = set()
        self._closing = False
        self._endpoints: dict[tuple[str, str], Callable[[RecordedRequest, Any], _Reply]] = {
            ("POST", "/api/chatx-completion"): self._pizzagpt,
            ("GET", "/"): self._chatgptt_page,
            ("POST", "/wp-admin/admin-ajax.php"): self._chatgptt_ajax,
            ("POST", "/api/chat"): self._text_stream,
            ("POST", "/api/completions"): self._text_stream,
            ("POST", "/v1/chat/completions"): self._openai_chat,
            ("GET", "/v1/models"): self._openai_models,
            ("GET", "/props"): self._props,
        }
        self.reset()

    # --- settings ------------------------------------------------------------

    @property
    def fault(self) -> str | None:
        return self._fault

    @fault.setter
    def fault(self, value: str | None) -> None:
        if value is not None and value not in FAULTS:
            raise ValueError(f"unknown fault {value!r}; known: {', '.join(sorted(FAULTS))}")
        self._fault = value

    def reset(self) -> None:
        """Forget the recorded requests, restore every setting, release stalled responses."""
        for name, value in _DEFAULTS.items():
            setattr(self, name, list(value) if isinstance(value, tuple) else value)
        with self._cond:
            self.requests = []
            self.stalls = 0
            self.dropped = []
        self.release_stall()

    def release_stall(self) -> None:
        """Let every response stalled so far go on."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._release_all)

    def _release_all(self) -> None:
        for waiter in self._stalled:
            if not waiter.done():
                waiter.set_result(None)
        self._stalled.clear()

    # --- counting, not sleeping ------------------------------------------------

    def wait_for_requests(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``n`` requests have been recorded (False after ``timeout``)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= n, timeout)

    def wait_stalled(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``n`` responses have entered a stall (False after ``timeout``)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.stalls >= n, timeout)

    def wait_dropped(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Block until the clients of ``n`` requests have closed their connections before the response
        ended (:attr:`dropped` holds those requests; False after ``timeout``)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.dropped) >= n, timeout)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def chat_bodies(self) -> list[dict]:
        """The JSON bodies of the chat requests received, in order (what the model was sent)."""
        with self._cond:
            return [r.json for r in self.requests
                    if r.path == "/v1/chat/completions" and isinstance(r.json, dict)]

    # --- life cycle ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the ProtocolServer is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> "ProtocolServer":
        if self._thread is not None:
            return self
        self._closing = False
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        started = asyncio.run_coroutine_threadsafe(self._serve(sock), self._loop)
        self._thread = threading.Thread(target=self._run, name="ProtocolServer", daemon=True)
        self._thread.start()
        started.result(timeout=10)
        return self

    def _run(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        # a low-level server: every request reaches _dispatch, proxy-style absolute URLs included
        server = web.Server(self._dispatch, handler_cancellation=True)
        self._runner = web.ServerRunner(server, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        """Release stalls, close every connection, end the thread."""
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=15)
        self._thread = None
        self.port = None

    async def _shutdown(self) -> None:
        self._closing = True
        self._release_all()
        await self._runner.cleanup()

    def __enter__(self) -> "ProtocolServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- request handling ----------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        try:
            return await self._answer(request, rec)
        except asyncio.CancelledError:  # handler_cancellation: the client closed the connection
            with self._cond:
                self.dropped.append(rec)
                self._cond.notify_all()
            raise

    async def _answer(self, request: web.Request, rec: RecordedRequest) -> web.StreamResponse:
        s = self._settings(rec.path)
        if s.fault and (self.fault_match is not None and self.fault_match.encode() not in rec.body
                        or self.fault_times is not None and self.fault_times <= 0):
            s.fault = None
        elif s.fault and self.fault_times is not None:
            self.fault_times -= 1
        latency = s.latency(rec) if callable(s.latency) else s.latency
        if latency:
            await asyncio.sleep(latency)
        build = self._endpoints.get((rec.method, rec.path))
        if build is None:
            return web.Response(status=404, content_type="text/html",
                                text="<html><head><title>404 Not Found</title></head></html>")
        openai = rec.path.startswith("/v1/")
        if openai and self.api_key and rec.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._status_reply("http401", openai, rec)
        if s.fault in STATUS_FAULTS:
            return self._status_reply(s.fault, openai, rec)
        reply = build(rec, s)
        self._apply_body_fault(reply, s.fault)
        return await self._send(request, reply, s)

    async def _record(self, request: web.Request) -> RecordedRequest:
        body = await request.read()
        parsed, form = None, None
        if request.content_type == "application/json":
            try:
                parsed = json.loads(body)
            except ValueError:
                pass
        elif request.content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        path = request.path or "/"  # a proxy request for "http://host" has an empty path
        rec = RecordedRequest(request.method, path, CIMultiDict(request.headers), body,
                              parsed, form, dict(request.query))
        with self._cond:
            self.requests.append(rec)
            self._cond.notify_all()
        return rec

    def _settings(self, path: str) -> Any:
        """A snapshot of the settings for one request (the fault only if it targets ``path``)."""
        s = {name: getattr(self, name) for name in _DEFAULTS}
        s["fault"] = self.fault if self.fault_path in (None, path) else None
        if s["fault"] == "misuse":
            s["answer"], s["chunks"] = MISUSE_TEXT, None
        return SimpleNamespace(**s)

    def _status_reply(self, fault: str, openai: bool, rec: RecordedRequest) -> web.Response:
        if fault == "cloudflare":
            return web.Response(status=403, content_type="text/html", text=CLOUDFLARE_PAGE,
                                headers={"cf-mitigated": "challenge", "server": "cloudflare"})
        status = int(fault[4:])
        if openai:
            sent = rec.headers.get("authorization", "").removeprefix("Bearer ")
            model = (rec.json or {}).get("model", "") if isinstance(rec.json, dict) else ""
            error = {
                500: {"message": "The server had an error while processing your request.",
                      "type": "server_error"},
                404: {"message": f"The model `{model}` does not exist or you do not have access to it.",
                      "type": "invalid_request_error", "code": "model_not_found"},
                429: {"message": "Rate limit reached for requests", "type": "requests",
                      "code": "rate_limit_exceeded"},
                401: {"message": f"Incorrect API key provided: {sent}.", "type": "invalid_request_error",
                      "code": "invalid_api_key"},
            }[status]
            if self.error_message is not None:
                error["message"] = self.error_message
            headers = {"retry-after": str(self.retry_after)} if self.retry_after is not None else None
            return web.json_response({"error": error}, status=status, headers=headers)
        title = {500: "500 Internal Server Error", 404: "404 Not Found", 429: "429 Too Many Requests",
                 401: "401 Unauthorized"}[status]
        return web.Response(status=status, content_type="text/html",
                            text=f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>")

    @staticmethod
    def _apply_body_fault(reply: _Reply, fault: str | None) -> None:
        if fault == "empty":
            reply.pieces = []
        elif reply.kind == "html":
            return
        elif fault == "html":
            reply.pieces, reply.content_type = [MAINTENANCE_PAGE.encode()], "text/html"
        elif fault == "garbage":
            reply.pieces = [GARBAGE]
        elif fault == "truncated_json" and reply.kind == "json":
            body = b"".join(reply.pieces)
            reply.pieces = [body[: len(body) // 2]]
        if fault == "split_utf8":
            reply.pieces = _split_utf8(b"".join(reply.pieces))

    async def _send(self, request: web.Request, reply: _Reply, s: Any) -> web.StreamResponse:
        resp = web.StreamResponse(status=reply.status, headers=reply.headers)
        resp.content_type = reply.content_type
        if reply.content_type.startswith("text/") or reply.content_type == "application/json":
            resp.charset = "utf-8"
        if reply.kind in ("json", "html") and s.fault not in ("reset", "stall"):
            resp.content_length = sum(map(len, reply.pieces))
        await resp.prepare(request)
        pieces = reply.pieces
        hit = min(s.fault_after, len(pieces)) if s.fault in ("reset", "stall") else -1
        try:
            for i in range(len(pieces) + 1):
                if i == hit and (s.fault == "reset" or not await self._stall()):
                    request.transport.abort()  # the client sees the connection die mid-body
                    return resp
                if i == len(pieces):
                    break
                if i and s.chunk_delay:
                    await asyncio.sleep(s.chunk_delay)
                await resp.write(pieces[i])
            await resp.write_eof()
        except ConnectionError:
            pass  # the client went away
        return resp

    async def _stall(self) -> bool:
        """Wait for a release; False when the server is stopping."""
        waiter = asyncio.get_running_loop().create_future()
        self._stalled.add(waiter)
        with self._cond:
            self.stalls += 1
            self._cond.notify_all()
        try:
            await waiter
        finally:
            self._stalled.discard(waiter)
        return not self._closing

    # --- the protocols ---------------------------------------------------------

    @staticmethod
    def _text_pieces(s: Any) -> list[bytes]:
        chunks = s.chunks if s.chunks is not None else _words(s.answer)
        return [c if isinstance(c, bytes) else c.encode() for c in chunks]

    def _pizzagpt(self, rec: RecordedRequest, s: Any) -> _Reply:
        return _Reply("json", [_json({"answer": {"content": s.answer}})], "application/json")

    def _chatgptt_page(self, rec: RecordedRequest, s: Any) -> _Reply:
        nonce = "" if s.fault == "no_nonce" else f' data-nonce="{CHATGPTT_NONCE}"'
        post_id = "" if s.fault == "no_post_id" else f" data-post-id='{CHATGPTT_POST_ID}'"
        page = (f"<!DOCTYPE html><html><head><title>ChatGPT Free</title></head><body>"
                f'<div class="wpaicg-chat-shortcode" data-bot-id="0"{nonce}{post_id} '
                f'data-url="/chat" data-type="shortcode"></div></body></html>')
        return _Reply("html", [page.encode()], "text/html")

    def _chatgptt_ajax(self, rec: RecordedRequest, s: Any) -> _Reply:
        return _Reply("json", [_json({"status": "success", "msg": "", "data": s.answer})], "application/json")

    def _text_stream(self, rec: RecordedRequest, s: Any) -> _Reply:
        return _Reply("text", self._text_pieces(s), "text/plain")

    def _openai_chat(self, rec: RecordedRequest, s: Any) -> _Reply:
        body = rec.json if isinstance(rec.json, dict) else {}
        model = body.get("model", "")
        if s.echo:
            s.answer = str(((body.get("messages") or [{}])[-1] or {}).get("content", ""))
        if s.context_overflow:
            return _Reply("json", [_json(CONTEXT_OVERFLOW_ERROR)], "application/json", status=400)
        if s.reject_stream_options and "stream_options" in body:
            return _Reply("json", [_json(STREAM_OPTIONS_ERROR)], "application/json", status=400)
        if s.script is not None:
            return self._scripted(body, s)
        if not body.get("stream") or s.ignore_stream:
            return _Reply("json", [_json({
                "id": "chatcmpl-test", "object": "chat.completion", "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": s.answer},
                             "finish_reason": s.finish_reason}],
            })], "application/json")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(choices: list, **extra: Any) -> bytes:
            usage = {"usage": None} if include_usage else {}
            return _sse({"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model,
                         "choices": choices, **usage, **extra})

        def delta(fields: dict, finish: str | None = None) -> bytes:
            return chunk([{"index": 0, "delta": fields, "finish_reason": finish}])

        reasoning = _words(s.reasoning) if isinstance(s.reasoning, str) else list(s.reasoning or [])
        content = [] if s.tool_calls else s.chunks if s.chunks is not None else _words(s.answer)
        spoken = _n_words(["".join(reasoning), "".join(c for c in content if isinstance(c, str))])
        if s.think_tags and reasoning:
            content, reasoning = ["<thi", "nk>", *reasoning, "</", "think>\n\n", *content], []
        pieces = [delta({"content": None, s.reasoning_field: r}) for r in reasoning]
        pieces += [c if isinstance(c, bytes) else delta({"content": c} if c else {}) for c in content]
        pieces += [delta(d) for d in _tool_call_deltas(s.tool_calls or [])]
        bad = {"sse_error_event": _sse({"error": {"message": "The model crashed while generating",
                                                  "type": "server_error"}}),
               "truncated_json": b'data: {"choices": [{"delta": {"content": "cut\n\n'}.get(s.fault)
        if bad is not None:
            pieces = [*pieces[: s.fault_after], bad]
        else:
            pieces.append(delta({}, "tool_calls" if s.tool_calls else s.finish_reason))
            if include_usage:
                pieces.append(chunk([], usage=_usage(s, body, spoken)))
            pieces.append(_sse(b"[DONE]"))
        return _Reply("sse", pieces, "text/event-stream", headers={"cache-control": "no-cache"})

    def _scripted(self, body: dict, s: Any) -> _Reply:
        """The answer of :attr:`script` to this request (see :mod:`tool_script`)."""
        import tool_script

        step, turn = tool_script.turn_for(s.script, body)
        finish = "tool_calls" if turn.calls else "stop"
        head = {"id": f"chatcmpl-step{step}", "model": body.get("model", "")}
        usage = _usage(s, body, len(turn.text.split()))
        if not body.get("stream") or s.ignore_stream:
            return _Reply("json", [_json({**head, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": tool_script.message(turn, step), "finish_reason": finish}]})],
                "application/json")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(choices: list, **extra: Any) -> bytes:
            return _sse({**head, "object": "chat.completion.chunk", "choices": choices,
                         **({"usage": None} if include_usage else {}), **extra})

        pieces = [chunk([{"index": 0, "delta": d, "finish_reason": None}]) for d in tool_script.deltas(turn, step)]
        pieces.append(chunk([{"index": 0, "delta": {}, "finish_reason": finish}]))
        if include_usage:
            pieces.append(chunk([], usage=usage))
        pieces.append(_sse(b"[DONE]"))
        return _Reply("sse", pieces, "text/event-stream", headers={"cache-control": "no-cache"})

    def _openai_models(self, rec: RecordedRequest, s: Any) -> _Reply:
        data = [{"id": m, "object": "model", "owned_by": "test"} for m in s.models]
        return _Reply("json", [_json({"object": "list", "data": data})], "application/json")

    def _props(self, rec: RecordedRequest, s: Any) -> _Reply:
        """llama.cpp's ``GET /props`` (the context it was loaded with); 404 unless ``props_n_ctx`` is set."""
        if s.props_n_ctx is None:
            return _Reply("html", [b"<html><head><title>404 Not Found</title></head></html>"], "text/html", 404)
        return _Reply("json", [_json({"default_generation_settings": {"n_ctx": s.props_n_ctx}, "total_slots": 1})],
                      "application/json")


# --- helpers for tests ---------------------------------------------------------

async def collect(agen: Any) -> list:
    """Every item of an async generator."""
    return [item async for item in agen]


async def collect_until_error(agen: Any) -> tuple[list, BaseException]:
    """The items an async generator yielded before it raised, and the exception."""
    items: list = []
    try:
        async for item in agen:
            items.append(item)
    except Exception as exc:  # noqa: BLE001 - handed back to the test
        return items, exc
    raise AssertionError(f"no exception was raised; got {items!r}")


def closed_port_url(host: str = "127.0.0.1") -> str:
    """A URL on which nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"http://{host}:{port}"
