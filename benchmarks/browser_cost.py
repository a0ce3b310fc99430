"""What streaming an answer into a cell costs the browser, against a print() floor.

JupyterLab 4 in headless Chromium (Playwright, /usr/bin/chromium).  A child
process serves an OpenAI-compatible SSE stream of a realistic Markdown answer
(headings, paragraphs, bullet lists, fenced Python code, a table; 30,000 and
100,000 characters) cut into 4-8 character chunks evenly paced over
DURATION seconds.

* subject: ``%%chat -p OpenAI --base-url <server> -m bench`` in a notebook cell;
* floor: a code cell that prints the same chunks at the same pace
  (``print(chunk, end="", flush=True)``), so the browser gets the same text as
  stream output.

Also shown, not a target: the same prints without flush (ipykernel batches them into a
stream message every 0.2 s), a much cheaper reference than one message per chunk.

Measured per run (medians of REPEAT runs), from execution start (the page calls
``notebook:run-cell``) until the run's promise resolves (execute_reply and idle
seen) plus two animation frames:

* websocket bytes the page received on the kernel websocket (Playwright
  ``framereceived``, payload lengths), split into the final answer's frames (those
  carrying ``ipyg4f-footer``) and the rest ("while streaming");
* main-thread busy time (CDP ``Performance.getMetrics``: TaskDuration,
  ScriptDuration, LayoutDuration, RecalcStyleDuration, before/after), minus an
  idle baseline rate measured over the same wall time with nothing running;
  also the on-CPU time (``/proc/<pid>/task/*/schedstat``) of the page renderers' main
  thread and of all their threads: CPU time, not wall time, so less inflated when
  other processes compete for the CPU (the durations above are wall time of tasks);
* first visible answer text (a MutationObserver on the cell's output area; the
  first animation frame after which the output shows the answer's first
  letters) and visible updates per second while text arrives (animation frames
  in which the output area changed, from the first text to the final answer
  (chat) or to the last change (floor), divided by that time), the longest gap
  between two such frames up to that end, the fewest in any 1 s window of it
  (the target applies to the average and to every second), the outputs the cell
  had at most and at the end, and when Lab began trimming them (it shows 50 and
  hides the rest behind "Show more outputs").

Targets: bytes <= 10x the answer; main-thread time (TaskDuration) <= 2x the
print() floor; updates >= 5/s while text arrives, on average and in every second.

The Jupyter server's iopub rate limit is lifted for this run: the floor sends one
message per chunk (1,700/s at 100,000 characters), and at the default 1,000/s the
server drops messages, the idle status among them, and the cell never finishes.
The 100,000-character floor takes 1.5-2 minutes a run (Lab re-renders the whole
stream output on each message), so a full run takes about 9 minutes.

    python benchmarks/browser_cost.py [--quick] [--json] [--repeat N] [--duration S]

``--quick``: the 30,000-character answer only (about 2.5 minutes).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent

SIZES = [30_000, 100_000]
DURATION = 10.0
REPEAT = 3
#: the answer starts with this heading; the first chunk (>= 4 chars) always shows "Zq"
MARKER = "Zq"
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")
ALL_METRICS = (*METRICS, "MainThreadCPU", "RendererCPU")

# ---------------------------------------------------------------------------------------------
# The answer and its chunks (imported by the SSE server child and by the floor cell's kernel)

_VOCABULARY = ("stream token render cell output kernel browser frame update answer markdown paragraph "
               "the a of to and in is that for with as on by this we it be are from at or an which can "
               "latency throughput buffer chunk cost linear quadratic parse layout style script idle "
               "notebook display message socket payload bytes server client model request response")
_WORDS = tuple(_VOCABULARY.split())


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 16))]
    if rng.random() < 0.2:
        words[rng.randrange(len(words))] = f"`{rng.choice(_WORDS)}()`"
    if rng.random() < 0.15:
        words[rng.randrange(len(words))] = f"**{rng.choice(_WORDS)}**"
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random) -> str:
    target = rng.randint(300, 600)
    out = ""
    while len(out) < target:
        out += (" " if out else "") + _sentence(rng)
    return out


def _bullets(rng: random.Random) -> str:
    return "\n".join(f"- {_sentence(rng)}" for _ in range(rng.randint(3, 6)))


def _code(rng: random.Random) -> str:
    lines = [f"def {rng.choice(_WORDS)}_{rng.randint(1, 99)}(data, limit={rng.randint(1, 100)}):",
             '    """' + _sentence(rng) + '"""', "    total = 0"]
    for _ in range(rng.randint(10, 30) - 5):
        a, b = rng.choice(_WORDS), rng.choice(_WORDS)
        lines.append(rng.choice([f"    {a} = [x * {rng.randint(2, 9)} for x in data if x > {rng.randint(0, 50)}]",
                                 f"    if len(data) > limit:  # {a} {b}",
                                 f"        total += sum(data[:{rng.randint(1, 20)}])",
                                 f"    print(f\"{a}: {{total}}\")",
                                 f"    {b} = {{'{a}': total, 'n': len(data)}}"]))
    lines.append("    return total")
    return "```python\n" + "\n".join(lines) + "\n```"


def _table(rng: random.Random) -> str:
    rows = ["| case | chunks | bytes | ratio |", "| --- | ---: | ---: | :---: |"]
    for _ in range(rng.randint(3, 5)):
        rows.append(f"| {rng.choice(_WORDS)} | {rng.randint(10, 9999)} | {rng.randint(1000, 99999)} "
                    f"| {rng.random() * 10:.2f} |")
    return "\n".join(rows)


@lru_cache(maxsize=4)
def answer(size: int, seed: int = 13) -> str:
    """Deterministic Markdown of exactly ``size`` characters."""
    rng = random.Random(seed)
    blocks = [f"# {MARKER} streaming report", _paragraph(rng)]
    n, table_done = 0, False
    while sum(len(b) + 2 for b in blocks) < size:
        n += 1
        kind = rng.random()
        if n % 6 == 1:
            blocks.append(f"## Section {n // 6 + 1}: {_sentence(rng)[:40].rstrip('.')}")
        elif not table_done and n > 4:
            blocks.append(_table(rng))
            table_done = True
        elif kind < 0.45:
            blocks.append(_paragraph(rng))
        elif kind < 0.7:
            blocks.append(_bullets(rng))
        else:
            blocks.append(_code(rng))
    text = "\n\n".join(blocks)[:size]
    return text


@lru_cache(maxsize=4)
def chunks(size: int, seed: int = 13) -> tuple[str, ...]:
    """The answer cut into chunks of 4-8 characters, like tokens."""
    text, rng, out, i = answer(size, seed), random.Random(seed + 1), [], 0
    while i < len(text):
        n = rng.randint(4, 8)
        out.append(text[i:i + n])
        i += n
    return tuple(out)


def paced(parts, duration: float, sleep=time.sleep):
    """Yield ``parts`` evenly over ``duration`` seconds (absolute schedule: no drift)."""
    gap = duration / max(len(parts), 1)
    t0 = time.monotonic()
    for i, part in enumerate(parts):
        wait = t0 + i * gap - time.monotonic()
        if wait > 0:
            sleep(wait)
        yield part


def print_floor(config_url: str, flush: bool = True) -> None:
    """A floor cell's body: print the configured chunks at the configured pace.

    ``flush=True`` (the floor): one stream message per chunk.  ``flush=False``:
    ipykernel's own batching (a stream message every 0.2 s), shown for reference.
    """
    import urllib.request

    with urllib.request.urlopen(config_url, timeout=10) as resp:
        cfg = json.loads(resp.read())
    for part in paced(chunks(cfg["size"]), cfg["duration"]):
        print(part, end="", flush=flush)
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# The SSE server (a child process)

def serve() -> None:
    """An OpenAI-compatible /v1/chat/completions streaming the configured answer; prints its port."""
    import asyncio
    import socket

    from aiohttp import web

    cfg = {"size": 200, "duration": 0.2}

    async def configure(request):
        if request.method == "POST":
            cfg.update(await request.json())
            chunks(cfg["size"])  # generate now, not during the run
        return web.json_response(cfg)

    async def chat(request):
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        parts = chunks(cfg["size"])
        gap = cfg["duration"] / len(parts)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i, part in enumerate(parts):
            wait = t0 + i * gap - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await resp.write(("data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": part}}]})
                              + "\n\n").encode())
        await resp.write(("data: " + json.dumps({"choices": [{"index": 0, "delta": {},
                                                              "finish_reason": "stop"}]}) + "\n\n").encode())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def main():
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_route("*", "/config", configure)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        print(sock.getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


class ChildServer:
    def __init__(self) -> None:
        code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import browser_cost; browser_cost.serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def configure(self, size: int, duration: float) -> None:
        import urllib.request

        req = urllib.request.Request(f"{self.url}/config", method="POST",
                                     data=json.dumps({"size": size, "duration": duration}).encode(),
                                     headers={"content-type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---------------------------------------------------------------------------------------------
# The page side

START = """([idx, marker]) => {
    const nb = window.jupyterapp.shell.currentWidget.content;
    const area = nb.widgets[idx].node.querySelector('.jp-Cell-outputArea');
    const rec = {t0: 0, frames: [], firstText: null, footer: null, mutations: 0, maxOutputs: 0, trimmedAt: null};
    let pending = false;
    const onFrame = () => {
        pending = false;
        const now = performance.now() - rec.t0;
        rec.frames.push(now);
        if (rec.firstText === null && area.textContent.includes(marker)) rec.firstText = now;
        if (rec.footer === null && area.querySelector('.ipyg4f-footer')) rec.footer = now;
        rec.maxOutputs = Math.max(rec.maxOutputs, area.querySelectorAll('.jp-OutputArea-child').length);
        if (rec.trimmedAt === null && area.querySelector('.jp-TrimmedOutputs')) rec.trimmedAt = now;
    };
    const obs = new MutationObserver((list) => {
        rec.mutations += list.length;
        if (!pending) { pending = true; requestAnimationFrame(onFrame); }
    });
    obs.observe(area, {childList: true, subtree: true, characterData: true});
    window.__bench = {rec, obs, area};
    nb.activeCellIndex = idx;
    nb.mode = 'command';
    rec.t0 = performance.now();
    window.__bench.done = window.jupyterapp.commands.execute('notebook:run-cell')
        .then(() => performance.now() - rec.t0);
}"""

FINISH = """async (limit) => {
    const timeout = new Promise((r) => setTimeout(() => r(null), limit));
    const end = await Promise.race([window.__bench.done, timeout]);
    if (end === null) return null;
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    window.__bench.obs.disconnect();
    const area = window.__bench.area;
    const outputs = area.querySelectorAll('.jp-OutputArea-child').length;
    return {...window.__bench.rec, end, outputs};
}"""

CLEAR = """() => {
    window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');
}"""

SETTLED = """() => !document.querySelector('.jp-Notebook .jp-Cell-outputArea .jp-OutputArea-child')"""


def _schedstat(path: Path) -> float:
    try:
        return int(path.read_text().split()[0]) / 1e9
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):  # a thread that just ended
        return 0.0


class Bench:
    def __init__(self, page, cdp, browser_cdp) -> None:
        self.page, self.cdp, self.browser_cdp = page, cdp, browser_cdp
        self.limit_ms = 600_000  # longest run; a dropped status message would otherwise wait forever
        self.recording = False
        self.frames: list[bytes] = []
        page.on("websocket", self._socket)

    def _socket(self, ws) -> None:
        if "/api/kernels/" not in ws.url:
            return

        def received(payload) -> None:
            if self.recording:
                self.frames.append(payload.encode() if isinstance(payload, str) else payload)

        ws.on("framereceived", received)

    def metrics(self) -> dict[str, float]:
        """CDP's main-thread durations, and the on-CPU time of the renderers' main threads and of all
        their threads (/proc schedstat: CPU time, so unlike the durations not inflated when other
        processes compete for the CPU)."""
        got = {m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]}
        out = {k: got[k] for k in METRICS}
        main = every = 0.0
        for proc in self.browser_cdp.send("SystemInfo.getProcessInfo")["processInfo"]:
            pid = proc["id"]
            try:
                if proc["type"] != "renderer" or b"--top-chrome-webui" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    continue
                tasks = list(Path(f"/proc/{pid}/task").iterdir())
            except (FileNotFoundError, ProcessLookupError):
                continue
            main += _schedstat(Path(f"/proc/{pid}/task/{pid}/schedstat"))
            every += sum(_schedstat(t / "schedstat") for t in tasks)
        out["MainThreadCPU"], out["RendererCPU"] = main, every
        return out

    def clear(self) -> None:
        self.page.evaluate(CLEAR)
        self.page.wait_for_function(SETTLED)
        self.page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def run(self, idx: int, expect_footer: bool) -> dict:
        self.clear()
        self.frames = []
        m0 = self.metrics()
        wall0 = time.monotonic()
        self.recording = True
        self.page.evaluate(START, [idx, MARKER])
        rec = self.page.evaluate(FINISH, self.limit_ms)
        self.recording = False
        if rec is None:
            raise RuntimeError(f"cell {idx} did not finish within {self.limit_ms / 1000:.0f} s")
        wall = time.monotonic() - wall0
        m1 = self.metrics()
        prompt = self.page.locator(".jp-Notebook .jp-Cell").nth(idx).locator(".jp-InputPrompt").inner_text()
        if "*" in prompt or not any(c.isdigit() for c in prompt):
            raise RuntimeError(f"cell {idx} has not finished: prompt {prompt!r}")
        if expect_footer and rec["footer"] is None:
            text = self.page.locator(".jp-Notebook .jp-Cell").nth(idx).locator(".jp-Cell-outputArea").inner_text()
            raise RuntimeError(f"no .ipyg4f-footer in the chat cell's output:\n{text[-2000:]}")
        final = [f for f in self.frames if b"ipyg4f-footer" in f]
        total = sum(len(f) for f in self.frames)
        # while text arrives: from the first visible text to the final answer (chat) or to the
        # last change (floor); the updates counted are those before that end, the gaps run up to it
        first, footer, frames = rec["firstText"], rec["footer"], rec["frames"]
        stop = footer if footer is not None else (frames[-1] if frames else None)
        streaming = [t for t in frames if first is not None and first <= t < stop] if stop is not None else []
        span = (stop - first) / 1000 if streaming and stop > first else 0.0
        gaps = [b - a for a, b in pairwise([*streaming, stop])] if streaming else []
        # the worst second: fewest updates in any 1 s window (steps of 0.25 s) while text arrives
        starts = [first + 250 * k for k in range(int((stop - first - 1000) // 250) + 1)] if span >= 1 else []
        worst = min((sum(1 for t in streaming if w <= t < w + 1000) for w in starts), default=None)
        return {
            "wall": wall, "end": rec["end"] / 1000,
            "busy": {k: m1[k] - m0[k] for k in ALL_METRICS},
            "ws_bytes": total, "ws_frames": len(self.frames),
            "ws_final_bytes": sum(len(f) for f in final), "ws_stream_bytes": total - sum(len(f) for f in final),
            "first_text": None if first is None else first / 1000,
            "updates": len(rec["frames"]), "stream_updates": len(streaming),
            "updates_per_s": len(streaming) / span if span else 0.0,
            "outputs": rec["outputs"], "max_outputs": rec["maxOutputs"],
            "trimmed_at": None if rec["trimmedAt"] is None else rec["trimmedAt"] / 1000,
            "max_gap": max(gaps) / 1000 if gaps else None, "worst_second": worst,
            "mutations": rec["mutations"],
        }

    def idle(self, seconds: float) -> dict:
        """Main-thread busy rate and websocket bytes with nothing running, over ``seconds``."""
        self.clear()
        self.frames = []
        m0 = self.metrics()
        self.recording = True
        t0 = time.monotonic()
        self.page.wait_for_timeout(seconds * 1000)  # the measuring window itself, not a synchronisation
        wall = time.monotonic() - t0
        self.recording = False
        m1 = self.metrics()
        return {"wall": wall, "rate": {k: (m1[k] - m0[k]) / wall for k in ALL_METRICS},
                "ws_bytes": sum(len(f) for f in self.frames)}


def median_run(runs: list[dict], idle: dict) -> dict:
    def med(key, sub=None):
        vals = [r[key][sub] if sub else r[key] for r in runs]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    out = {k: med(k) for k in ("wall", "end", "ws_bytes", "ws_frames", "ws_final_bytes", "ws_stream_bytes",
                               "first_text", "updates", "stream_updates", "updates_per_s", "max_gap", "worst_second", "mutations",
                               "outputs", "max_outputs", "trimmed_at")}
    out["busy"] = {k: med("busy", k) for k in ALL_METRICS}
    out["net"] = {k: statistics.median(r["busy"][k] - idle["rate"][k] * r["wall"] for r in runs) for k in ALL_METRICS}
    out["runs"] = runs
    return out


def code_state() -> str:
    """The commit measured, and whether ipyg4f/ had uncommitted changes (the kernel imports the work tree)."""
    def git(*cmd):
        return subprocess.run(["git", "-C", str(HERE.parent), *cmd], check=False, capture_output=True,
                              text=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "ipyg4f").splitlines()
    return f"{git('rev-parse', '--short', 'HEAD') or '?'}" + (f" + {len(changed)} uncommitted files in ipyg4f/"
                                                              if changed else "")


def ms(x) -> str:
    return "-" if x is None else f"{x * 1000:,.0f} ms"


#: (key, column title, cell index); the chat cell is index 1
SUBJECTS = [("chat", "%%chat", 1), ("floor", "print() floor", 2), ("batched", "print batched", 3)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the 30,000-character answer only")
    ap.add_argument("--json", action="store_true", help="also print the results as JSON")
    ap.add_argument("--repeat", type=int, default=REPEAT, help=f"runs per case (default {REPEAT})")
    ap.add_argument("--duration", type=float, default=DURATION, help=f"seconds of streaming (default {DURATION})")
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], help="answer sizes, e.g. 30000,100000")
    args = ap.parse_args()
    sizes = args.sizes or (SIZES[:1] if args.quick else SIZES)

    sys.path.insert(0, str(HERE.parent / "tests"))
    from _common import machine, versions
    from browser.conftest import CHROMIUM, CHROMIUM_ARGS, Lab, missing
    from browser.notebook_ui import KERNEL_READY
    from playwright.sync_api import sync_playwright

    if reason := missing():
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2

    t_start = time.monotonic()
    srv = ChildServer()
    lab = Lab({"IPYG4F_BENCH_KEY": "not-a-real-key"})
    # The floor sends one stream message per chunk: 1,700 messages/s at 100,000 characters, over the
    # server's default iopub limit (1,000/s), which then drops messages (a dropped status: idle leaves
    # the cell running for ever).  Measure what the browser does with all of them.
    (lab.tmp / "config" / "jupyter_server_config.json").write_text(json.dumps(
        {"ZMQChannelsWebsocketConnection": {"limit_rate": False},
         "ServerApp": {"iopub_msg_rate_limit": 1e9, "iopub_data_rate_limit": 1e12}}))
    lab.start()
    config = srv.url + "/config"
    cells = [f"import sys\nsys.path.insert(0, {str(HERE)!r})\nimport browser_cost\n%load_ext ipyg4f",
             (f"%%chat -p OpenAI --base-url {srv.url}/v1 -m bench --api-key-env IPYG4F_BENCH_KEY -c bench --new\n"
              "Write the streaming report."),
             f"browser_cost.print_floor({config!r})",
             f"browser_cost.print_floor({config!r}, flush=False)"]
    results: dict = {"machine": machine(), "duration": args.duration, "repeat": args.repeat,
                     "versions": versions("jupyterlab", "ipykernel", "playwright", "ipyg4f"), "code": code_state(),
                     "cases": []}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            results["versions"] += f", chromium {browser.version}"
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            bench = Bench(page, context.new_cdp_session(page), browser.new_browser_cdp_session())
            page.goto(lab.open_url(lab.notebook(*cells)))
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            page.wait_for_function(KERNEL_READY, timeout=60_000)
            bench.cdp.send("Performance.enable")
            bench.run(0, expect_footer=False)
            srv.configure(3_000, 0.5)  # warm-up: imports, the first connection, Pygments, Lab's renderers
            for key, _, idx in SUBJECTS:
                bench.run(idx, expect_footer=key == "chat")

            for size in sizes:
                srv.configure(size, args.duration)
                idle_before = bench.idle(args.duration)
                runs: dict[str, list] = {key: [] for key, _, _ in SUBJECTS}
                for _ in range(args.repeat):  # interleaved, so drift hits every subject alike
                    for key, _, idx in SUBJECTS:
                        runs[key].append(bench.run(idx, expect_footer=key == "chat"))
                idle_after = bench.idle(args.duration)
                # nothing running: the quieter window (the other may still be collecting the last run's garbage)
                idle = min(idle_before, idle_after, key=lambda i: i["rate"]["TaskDuration"])
                case = {"size": size, "chunks": len(chunks(size)), "idle": idle,
                        "idle_windows": [idle_before, idle_after]}
                case.update({key: median_run(runs[key], idle) for key, _, _ in SUBJECTS})
                results["cases"].append(case)
            if errors:
                results["page_errors"] = errors
            browser.close()
    finally:
        lab.stop()
        srv.stop()
    results["runtime"] = time.monotonic() - t_start
    ok = report(results)
    if args.json:
        print(json.dumps(results, indent=1, default=float))
    return 0 if ok else 1


def report(results: dict) -> bool:
    print(f"machine: {results['machine']}")
    print(f"versions: {results['versions']}")
    print(f"code: {results['code']}")
    print(f"answer streamed over {results['duration']:g} s in 4-8 character chunks; "
          f"medians of {results['repeat']} runs; runtime {results['runtime']:.0f} s")
    print("main-thread times are net of the idle rate x the run's wall time; ratio = %%chat / print() floor\n")
    ok = True

    def kb(x):
        return "-" if x is None else f"{x / 1000:,.0f} kB"

    def num(x):
        return "-" if x is None else f"{x:,.0f}"

    for case in results["cases"]:
        size, idle = case["size"], case["idle"]
        subj = [case[key] for key, _, _ in SUBJECTS]
        chat, floor = case["chat"], case["floor"]
        windows = ", ".join(f"{w['rate']['TaskDuration'] * 1000:.1f}" for w in case["idle_windows"])
        cpu = ", ".join(f"{w['rate']['MainThreadCPU'] * 1000:.1f}" for w in case["idle_windows"])
        print(f"== answer {size:,} chars, {case['chunks']:,} chunks; idle main thread {windows} ms/s "
              f"(CPU {cpu}; before, after; the lower is used), idle websocket {idle['ws_bytes']:,} B")
        print(f"{'':25}" + "".join(f"{title:>15}" for _, title, _ in SUBJECTS) + f"{'ratio':>9}")

        def row(label, get, fmt, ratio=True, subj=subj):
            vals = [get(s) for s in subj]
            r = f"{vals[0] / vals[1]:8.2f}x" if ratio and vals[0] is not None and vals[1] else ""
            print(f"{label:25}" + "".join(f"{fmt(v):>15}" for v in vals) + f"{r:>9}")

        row("ws bytes, total", lambda s: s["ws_bytes"], kb)
        row("  while streaming", lambda s: s["ws_stream_bytes"], kb)
        row("  final answer message", lambda s: s["ws_final_bytes"], kb, ratio=False)
        row("ws frames", lambda s: s["ws_frames"], num)
        row("bytes / answer size", lambda s, size=size: s["ws_bytes"] / size, lambda x: f"{x:.1f}x", ratio=False)
        for k in METRICS:
            row(f"main thread {k[:-8]}", lambda s, k=k: s["net"][k], ms)
        row("  (TaskDuration, raw)", lambda s: s["busy"]["TaskDuration"], ms)
        row("main thread CPU time", lambda s: s["net"]["MainThreadCPU"], ms)
        row("renderer CPU, all threads", lambda s: s["net"]["RendererCPU"], ms)
        row("first visible text", lambda s: s["first_text"], ms, ratio=False)
        row("end (reply + 2 frames)", lambda s: s["end"], ms)
        row("visible updates", lambda s: s["stream_updates"], num, ratio=False)
        row("updates/s while text", lambda s: s["updates_per_s"], lambda x: f"{x:.1f}/s", ratio=False)
        row("  fewest in any 1 s", lambda s: s["worst_second"], num, ratio=False)
        row("longest gap between them", lambda s: s["max_gap"], ms, ratio=False)
        row("outputs: most seen", lambda s: s["max_outputs"], num, ratio=False)
        row("  at the end", lambda s: s["outputs"], num, ratio=False)
        row("outputs trimmed from", lambda s: s["trimmed_at"], ms, ratio=False)
        trimmed = [title for (key, title, _) in SUBJECTS if case[key]["trimmed_at"] is not None]
        if trimmed:
            print(f"  note: Lab trimmed the outputs of {', '.join(trimmed)} while streaming (more than its "
                  "maxNumberOutputs, 50 by default): later ones were hidden behind 'Show more outputs'")
        bytes_ratio = chat["ws_bytes"] / size
        task_ratio = chat["net"]["TaskDuration"] / max(floor["net"]["TaskDuration"], 1e-9)
        checks = [("websocket bytes <= 10x answer", bytes_ratio <= 10, f"{bytes_ratio:.1f}x"),
                  ("main thread <= 2x print() floor", task_ratio <= 2, f"{task_ratio:.2f}x"),
                  ("updates >= 5/s while text arrives", chat["updates_per_s"] >= 5, f"{chat['updates_per_s']:.1f}/s"),
                  ("  ... in every second of it", (chat["worst_second"] or 0) >= 5, f"{chat['worst_second']}/s")]
        for label, good, value in checks:
            print(f"  target {label:34} {value:>8}  {'met' if good else 'MISSED'}")
            ok &= good
        print()
    if results.get("page_errors"):
        print(f"page errors: {results['page_errors'][:5]}")
    print("all targets met" if ok else "some target missed (see above)")
    return ok


if __name__ == "__main__":
    sys.exit(main())
