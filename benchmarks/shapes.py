"""Bytes on iopub for every shape of answer: ``%%chat`` against ``print()``, in one run, in a real kernel.

A local OpenAI-compatible server (a child process) streams one answer of about
100 KB in 5,000 chunks 2 ms apart.  The same stream is read twice in a real
ipykernel: by ``%%chat -p OpenAI`` and by a floor cell that reads it with the
standard library and ``print(piece, end="")``s each piece.  Every iopub message
of the cell is counted as the JSON the kernel sends (header, parent header,
metadata and content), so the ratio is what reaches the front end.

Shapes: one 100 KB line, one 100 KB paragraph, a 100 KB code block, a
2,000-item list, a 500-row table, a JSON document, mixed Markdown.
Target (issue 23): ``%%chat`` within 10x the answer's bytes for every shape.

    python benchmarks/shapes.py [--quick] [--breakdown] [SHAPE ...]
    # --quick: 1,000 chunks, no gap; --breakdown: where the bytes went; SHAPE: run only shapes whose
    # name contains it (e.g. table)
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import machine, versions  # noqa: E402

SIZE = 100_000


def shapes() -> dict[str, str]:
    sentence = "The model keeps writing one sentence after another, with **some emphasis** and `code`. "
    words = [f"item {i}: " + "a short point about the data " * 1 for i in range(2000)]
    rows = [f"| {i} | name_{i} | {i * 3.5:.1f} | {'yes' if i % 2 else 'no'} | a note about row {i} that runs on |"
            for i in range(500)]
    doc = {"rows": [{"id": i, "name": f"name {i}", "tags": ["a", "b"], "score": i / 7} for i in range(900)]}
    mixed = []
    while sum(map(len, mixed)) < SIZE:
        n = len(mixed)
        mixed += [f"## Part {n}", sentence * 6, "\n".join(f"- point {j} of part {n}" for j in range(8)),
                  "```python\n" + "\n".join(f"x_{j} = compute({j}, 'x')  # step {j}" for j in range(20)) + "\n```",
                  "| a | b |\n|---|--:|\n" + "\n".join(f"| r{j} | {j} |" for j in range(10))]
    out = {
        "one 100 KB line": ",".join(f"{i}:{i * i}" for i in range(20000)),
        "one 100 KB paragraph": sentence * (SIZE // len(sentence)),
        "a 100 KB code block": "```python\n" + "\n".join(f"value_{i} = transform(data[{i}], scale={i % 7})"
                                                          for i in range(2300)) + "\n```",
        "a 2,000-item list": "\n".join(f"{i + 1}. {w}" for i, w in enumerate(words)),
        "a 500-row table": "| id | name | value | flag | note |\n|---:|---|--:|:-:|---|\n" + "\n".join(rows),
        "a JSON document": json.dumps(doc, indent=1),
        "mixed Markdown": "\n\n".join(mixed),
    }
    return {name: text[:SIZE] if name == "one 100 KB line" else text for name, text in out.items()}


SERVER = r'''
import asyncio, json, socket, sys, threading
from aiohttp import web
state = {"text": "", "n": 1, "delay": 0.0}
async def configure(request):
    state.update(await request.json()); return web.json_response({"ok": True})
async def chat(request):
    await request.read()
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    text, n = state["text"], state["n"]
    step = -(-len(text) // n)
    for i in range(0, len(text), step):
        await resp.write(("data: " + json.dumps({"choices": [{"delta": {"content": text[i:i + step]}}]}) + "\n\n").encode())
        if state["delay"]:
            await asyncio.sleep(state["delay"])
    await resp.write(b"data: [DONE]\n\n")
    return resp
app = web.Application(client_max_size=2**24)
app.router.add_post("/v1/chat/completions", chat)
app.router.add_post("/config", configure)
sock = socket.socket(); sock.bind(("127.0.0.1", 0))
print(sock.getsockname()[1], flush=True)
web.run_app(app, sock=sock, print=None, access_log=None)
'''

FLOOR_CELL = r'''
import http.client, json
conn = http.client.HTTPConnection("127.0.0.1", {port})
conn.request("POST", "/v1/chat/completions", body=json.dumps({{"model": "m", "messages": [], "stream": True}}),
             headers={{"content-type": "application/json"}})
response = conn.getresponse()
for line in response:
    if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
        print(json.loads(line[6:])["choices"][0]["delta"]["content"], end="")
conn.close()
'''


def wire_bytes(messages: list[dict]) -> int:
    """What the kernel sent for these iopub messages: each one's parts as JSON."""
    parts = ("header", "parent_header", "metadata", "content")
    return sum(len(json.dumps({k: m.get(k) for k in parts}, default=str)) for m in messages)


def breakdown(messages: list[dict], size: int) -> str:
    """Where the bytes went, each part over the answer's size: the final answer (and, in it, text/html,
    text/plain, text/markdown), settled pieces (outputs of their own), tail updates, anything else."""
    parts = {"final": 0, "html": 0, "plain": 0, "md": 0, "pieces": 0, "tail": 0, "other": 0}
    for m in messages:
        b = wire_bytes([m])
        data = m.get("content", {}).get("data", {})
        if "ipyg4f-footer" in data.get("text/html", ""):
            parts["final"] += b
            for key, mime in (("html", "text/html"), ("plain", "text/plain"), ("md", "text/markdown")):
                parts[key] += len(json.dumps(data.get(mime, "")))
        elif m["msg_type"] == "update_display_data":
            parts["tail"] += b
        elif m["msg_type"] == "display_data":
            parts["pieces"] += b
        else:
            parts["other"] += b
    return "  ".join(f"{k} {v / size:.1f}x" for k, v in parts.items())


def configure(port: int, text: str, n: int, delay: float) -> None:
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}/config", method="POST",
                                 data=json.dumps({"text": text, "n": n, "delay": delay}).encode(),
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()


def main() -> int:
    quick = "--quick" in sys.argv
    only = [a for a in sys.argv[1:] if not a.startswith("--")]  # names (or parts of names) of shapes to run
    n, delay = (1_000, 0.0) if quick else (5_000, 0.002)
    from kernel_harness import Kernel

    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    tmp = tempfile.mkdtemp(prefix="ipyg4f-shapes-")
    k = Kernel(env={"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "IPYG4F_DATA_DIR": tmp,
                    "JPY_SESSION_NAME": f"{tmp}/shapes.ipynb"})
    ok = True
    try:
        k.ok("%load_ext ipyg4f")
        configure(port, "warm up " * 20, 10, 0.0)
        k.ok("%%chat -p OpenAI -c warm\nhi", cell_id="warm", timeout=120)
        print(f"machine: {machine()}")
        print(f"versions: {versions('ipykernel', 'ipython', 'ipyg4f')}")
        print(f"{n:,} chunks, {delay * 1000:.0f} ms apart; bytes = iopub messages as JSON (header, parent, "
              "metadata, content)\n")
        print(f"{'shape':<22} {'answer':>9} | {'print()':>10} {'ratio':>6} | {'%%chat':>10} {'ratio':>6} "
              f"{'msgs':>5} | {'vs print':>8}")
        for i, (name, text) in enumerate(shapes().items()):
            if only and not any(o in name for o in only):
                continue
            configure(port, text, n, delay)
            floor = k.ok(FLOOR_CELL.format(port=port), cell_id=f"floor-{i}", timeout=600)
            chat = k.ok(f"%%chat -p OpenAI -c shape{i}\nanswer please", cell_id=f"shape-{i}", timeout=600)
            size = len(text.encode())
            fb, cb = wire_bytes(floor.messages), wire_bytes(chat.messages)
            print(f"{name:<22} {size:>8,}B | {fb:>9,}B {fb / size:>5.1f}x | {cb:>9,}B {cb / size:>5.1f}x "
                  f"{len(chat.messages):>5} | {cb / fb:>7.1f}x")
            if "--breakdown" in sys.argv:
                print(f"    {breakdown(chat.messages, size)}")
            ok &= cb <= 10 * size
    finally:
        k.shutdown()
        server.kill()
        server.wait()
    print("\nall shapes within 10x the answer" if ok else "\nsome shape above 10x the answer")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
