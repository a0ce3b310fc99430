"""Does the offline model answer notebook questions correctly?  Score and time on benchmarks/questions.json.

    python benchmarks/answers.py                       # the default model and the tiny Gemma
    python benchmarks/answers.py MODEL_OR_GGUF_PATH ...

Each question goes to ``Local`` alone (no history), greedy (temperature 0),
at most 64 tokens; an answer is right when it contains the question's
keywords as whole words (case-insensitive; "any": one of them; no keyword is
in its question, so repeating the question scores nothing).  Printed per model: the
score, the whole run's time (the load included) and the first answer's time.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, versions  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent / "questions.json"


def _says(answer: str, keyword: str) -> bool:
    """``keyword`` as a whole word of ``answer`` ("def" is not in "defines"), case-insensitive."""
    return re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", answer, re.IGNORECASE) is not None


def correct(answer: str, item: dict) -> bool:
    if "all" in item and not all(_says(answer, k) for k in item["all"]):
        return False
    return "any" not in item or any(_says(answer, k) for k in item["any"])


async def ask(model: str, question: str, max_tokens: int) -> str:
    from ipyg4f.providers.local import Local

    messages = [{"role": "user", "content": question}]
    parts = [item async for item in Local.create_async_generator(model, messages, max_tokens=max_tokens)
             if isinstance(item, str)]
    return "".join(parts).strip()


async def run(model: str, questions: list[dict], max_tokens: int = 64, verbose: bool = True) -> dict:
    from ipyg4f.providers.local import Local

    Local.unload()
    start = time.perf_counter()
    first = None
    right = 0
    for item in questions:
        answer = await ask(model, item["q"], max_tokens)
        first = first if first is not None else time.perf_counter() - start
        ok = correct(answer, item)
        right += ok
        if verbose:
            print(f"  {'✔' if ok else '✖'} {item['q']}\n      {answer[:160]!r}")
    total = time.perf_counter() - start
    Local.unload()
    return {"model": model, "right": right, "of": len(questions), "seconds": total, "first": first}


def main(argv: list[str]) -> None:
    from ipyg4f.providers.local import Local, bundled

    models = argv or [Local.default_model, bundled.GEMMA.name]
    questions = json.loads(QUESTIONS.read_text())["questions"]
    print(machine())
    print(versions("xllamacpp", "ipyg4f"))
    results = []
    for model in models:
        print(f"\n{model}")
        results.append(asyncio.run(run(model, questions)))
    print(f"\n| model | right | time (load included) | first answer |\n| --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['model']} | {r['right']}/{r['of']} | {r['seconds']:.1f} s | {r['first']:.1f} s |")


if __name__ == "__main__":
    main(sys.argv[1:])
