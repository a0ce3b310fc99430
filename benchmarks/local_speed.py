"""Tokens per second of ``Local`` against xllamacpp's own llama.cpp HTTP server: same GGUF, threads, prompt.

    python benchmarks/local_speed.py [--threads N] [--runs 5] [--tokens 128]

Both run in this process, one at a time, interleaved (Local, server, Local, …):
``Local`` through its async generator (llama.cpp's in-process server, the
tokens handed to the event loop from a worker thread), the server through an
aiohttp client reading its SSE stream from 127.0.0.1.  Same model (the
default, Qwen2.5-Coder-0.5B-Instruct Q4_K_M), context (4096), thread count
(``--threads``, default :func:`~ipyg4f.providers.local.job.default_threads`,
the one ``Local`` picks), prompt, greedy sampling and answer length: both
generate the same tokens.  Speed is generation speed, (tokens - 1) / (time of
the last token - time of the first); the ratio Local / server is printed
(goal: within 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, versions  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number, "
                                      "with a docstring and a short example."}]
N_CTX = 4096


async def run_local(threads: int, tokens: int) -> tuple[float, int, str]:
    from ipyg4f.events import Usage
    from ipyg4f.providers.local import Local

    first = last = None
    count, text = 0, []
    async for item in Local.create_async_generator("", PROMPT, n_threads=threads, n_ctx=N_CTX, max_tokens=tokens,
                                                   temperature=0):
        if isinstance(item, str) and item:
            last = time.perf_counter()
            first = first or last
            text.append(item)
        elif isinstance(item, Usage):
            count = item.completion_tokens
    return (count - 1) / (last - first), count, "".join(text)


async def run_server(url: str, tokens: int) -> tuple[float, int, str]:
    import aiohttp

    body = {"messages": PROMPT, "max_tokens": tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    first = last = None
    count, text = 0, []
    async with aiohttp.ClientSession() as session, session.post(f"{url}/v1/chat/completions", json=body) as resp:
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or ():
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    last = time.perf_counter()
                    first = first or last
                    text.append(piece)
            if chunk.get("usage"):
                count = chunk["usage"]["completion_tokens"]
    return (count - 1) / (last - first), count, "".join(text)


def start_server(path: Path, threads: int):
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.cpuparams.n_threads = params.cpuparams_batch.n_threads = threads
    # as Local loads it (engine._load), plus the HTTP listener on 127.0.0.1, on a port the system picks
    for name, value in {"n_ctx": N_CTX, "n_parallel": 1, "warmup": False, "verbosity": 0, "offline": True,
                        "ui": False, "endpoint_slots": False, "hostnames": ["127.0.0.1"], "port": 0}.items():
        setattr(params, name, value)
    return xllamacpp.Server(params)


def main() -> None:
    from ipyg4f.providers.local import Local, bundled
    from ipyg4f.providers.local.job import default_threads

    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    threads = args.threads or default_threads()
    print(machine())
    print(versions("xllamacpp"))
    print(f"{cpus} CPUs, load average {os.getloadavg()[0]:.2f}; {threads} thread(s)"
          f"{'' if args.threads else ' (default_threads())'}; {args.tokens} tokens, {args.runs} runs each")
    path = bundled.path(bundled.QWEN)
    server = start_server(path, threads)
    url = server.listening_address
    local, http, texts = [], [], set()
    try:
        asyncio.run(run_local(threads, 4))  # load Local's model before timing
        asyncio.run(run_server(url, 4))
        for _ in range(args.runs):
            rate, count, text = asyncio.run(run_local(threads, args.tokens))
            local.append(rate)
            texts.add((count, text))
            rate, count, text = asyncio.run(run_server(url, args.tokens))
            http.append(rate)
            texts.add((count, text))
    finally:
        Local.unload()
        del server
        gc.collect()
    same = "same tokens" if len(texts) == 1 else f"{len(texts)} different answers (!)"
    print(f"Local      {statistics.median(local):6.1f} tokens/s  [{min(local):.1f}..{max(local):.1f}]")
    print(f"HTTP server{statistics.median(http):6.1f} tokens/s  [{min(http):.1f}..{max(http):.1f}]")
    print(f"ratio Local / server: {statistics.median(local) / statistics.median(http):.3f} ({same}; "
          f"load average now {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
