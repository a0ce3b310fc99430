"""A ``%%chat`` answer in JupyterLab 4, light and dark: the thinking block, the answer (its code highlighted
in a box, its table's alignment kept), the footer.

Its screenshots go to the screenshot directory; ``IPYG4F_UPDATE_SCREENSHOTS=1 pytest tests/browser
-k thought`` also writes ``docs/answer-light.png`` and ``docs/answer-dark.png``.
"""

from __future__ import annotations

import re

import pytest

from notebook_ui import expect, open_notebook, run_cell, screenshot, set_theme, start_cell

pytestmark = pytest.mark.browser

#: a provider that thinks, then answers with a code block and reports its usage
THINKER = '''%load_ext ipyg4f
import asyncio
from ipyg4f.providers import AsyncGeneratorProvider, register
from ipyg4f.events import Reasoning, Usage, FinishReason

@register
class Thinker(AsyncGeneratorProvider):
    supports_stream = True
    default_model = "thinker-1"

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        for piece in ["The user wants a loop. ", "A `for` over `range` is the plainest; ",
                      "show it, then say what it prints."]:
            await asyncio.sleep(0.05)
            yield Reasoning(piece)
        for piece in ["Here is a loop:\\n\\n", "```python\\nfor i in range(3):\\n",
                      "    print(i, 'squared:', i ** 2)  # one line each\\n```\\n\\n",
                      "It prints **0**, **1** and **2**.\\n\\n",
                      "| i | squared |\\n|---|--:|\\n| 0 | 0 |\\n| 1 | 1 |\\n| 2 | 4 |\\n"]:
            await asyncio.sleep(0.05)
            yield piece
        yield Usage(42, 17)
        yield FinishReason("stop")
'''

#: the text of every paragraph of the output that is not inside the thinking block
ANSWER_PARAGRAPHS = """(output) => [...output.querySelectorAll('p')]
    .filter(p => !p.closest('.ipyg4f-thinking')).map(p => p.textContent)"""


#: computed styles of the answer's code box, its tokens and its table, with the theme's own editor colours
LOOKS = """(output) => {
    const style = (e) => getComputedStyle(e);
    const resolve = (value) => {  // a CSS colour value as the browser computes it here
        const probe = document.createElement('span');
        probe.style.color = value;
        output.appendChild(probe);
        const colour = style(probe).color;
        probe.remove();
        return colour;
    };
    const pre = output.querySelector('.ipyg4f-md pre.ipyg4f-code');
    const cell = (row, col) => output.querySelectorAll('.ipyg4f-md tbody tr')[row].children[col];
    return {
        text: style(pre).color, background: style(pre).backgroundColor, radius: parseFloat(style(pre).borderRadius),
        padding: parseFloat(style(pre).paddingLeft), border: style(pre).borderTopStyle,
        keyword: style(pre.querySelector('.k')).color, string: style(pre.querySelector('.s')).color,
        comment: style(pre.querySelector('.c')).color, number: style(pre.querySelector('.m')).color,
        labKeyword: resolve('var(--jp-mirror-editor-keyword-color)'),
        labString: resolve('var(--jp-mirror-editor-string-color)'),
        plainAlign: style(cell(0, 0)).textAlign, headAlign: style(output.querySelector('.ipyg4f-md th')).textAlign,
        rightAlign: style(cell(0, 1)).textAlign,
    };
}"""


def leave(page):
    """Make the last cell the active one and move the mouse away: the shot shows no cell toolbar."""
    page.evaluate("() => { const nb = window.jupyterapp.shell.currentWidget.content;"
                  " nb.activeCellIndex = nb.widgets.length - 1; }")
    page.mouse.move(0, 0)


def test_the_thought_sits_collapsed_above_the_answer_in_light_and_dark(page, lab, shots_dir):
    page.set_viewport_size({"width": 1100, "height": 700})
    open_notebook(page, lab, THINKER, "%%chat -p Thinker\nShow me a loop.")
    set_theme(page, "JupyterLab Light")
    run_cell(page, 0)
    answer = run_cell(page, 1)
    leave(page)
    output = answer.locator(".jp-Cell-outputArea")
    footer = output.locator(".ipyg4f-footer")
    expect()(footer).to_contain_text("tokens")
    for part in ("Thinker (thinker-1)", "first token", "total", "42 in / 17 out tokens", "tokens/s"):
        expect()(footer).to_contain_text(part)
    thought = output.locator("details.ipyg4f-thinking")
    expect()(thought).to_have_count(1)
    expect()(thought).to_have_js_property("open", False)
    expect()(thought.locator("summary")).to_have_text("Thought")
    expect()(thought).to_contain_text("The user wants a loop.")
    paragraphs = output.element_handle().evaluate(ANSWER_PARAGRAPHS)
    assert paragraphs == ["Here is a loop:", "It prints 0, 1 and 2."], paragraphs
    expect()(output.locator("pre code")).to_have_count(1)
    expect()(output.locator("pre code")).to_contain_text("for i in range(3):")
    # the thought comes first, the footer last
    order = output.element_handle().evaluate(
        "(o) => [...o.querySelectorAll('.ipyg4f-thinking, pre, .ipyg4f-footer')].map(e => e.tagName)")
    assert order == ["DETAILS", "PRE", "DIV"], order

    expect()(output.locator("style")).to_have_count(1)  # the answers' CSS, once

    looks = {}
    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(page, theme)
        expect()(thought).to_have_js_property("open", False)
        look = looks[name] = output.element_handle().evaluate(LOOKS)
        # highlighted: the tokens have the theme's own editor colours, unlike the plain text
        assert look["keyword"] == look["labKeyword"] != look["text"], look
        assert look["string"] == look["labString"] != look["text"], look
        assert len({look["keyword"], look["string"], look["comment"], look["number"]}) == 4, look
        # a box: a background of its own, padding, rounded corners, a border
        assert look["background"] not in ("rgba(0, 0, 0, 0)", "transparent"), look
        assert look["radius"] > 0 and look["padding"] > 0 and look["border"] == "solid", look
        # tables: |--:| is right-aligned, an unaligned column (and its header) left-aligned
        assert (look["plainAlign"], look["headAlign"], look["rightAlign"]) == ("left", "left", "right"), look
        screenshot(answer, shots_dir, f"answer-{name}.png", docs=True)
        thought.locator("summary").click()
        expect()(thought).to_have_js_property("open", True)
        expect()(thought.get_by_text("show it, then say what it prints.")).to_be_visible()
        leave(page)
        screenshot(answer, shots_dir, f"answer-{name}-thought-open.png")
        thought.locator("summary").click()
        leave(page)
    assert looks["light"]["keyword"] != looks["dark"]["keyword"], looks  # the colours follow the theme
    assert looks["light"]["background"] != looks["dark"]["background"], looks
    assert page.errors == []


#: a provider that streams a long answer (paragraphs, a 60-line code block, model-written HTML), and waits in
#: the middle of the code block until the test creates the file GATE
STREAMER = '''%load_ext ipyg4f
import asyncio, os
from ipyg4f.providers import AsyncGeneratorProvider, register

GATE = {gate!r}
CODE = "".join(f"    total_{{i}} = compute({{i}}, 'x') * 2  # step {{i}}\\n" for i in range(60))
ANSWER = ("Intro paragraph with <img src=x onerror=\\"window.__xss=1\\"> and "
          "[a link](javascript:window.__xss=2).\\n\\n" + "A second paragraph. " * 30 + "\\n\\n"
          + "".join(f"{{i}}. item {{i}} of a numbered list\\n" for i in range(1, 13)) + "\\n"
          "```python\\ndef f():\\n" + CODE + "```\\n\\nAfter the code: <script>window.__xss=3</script> done.\\n")
PAUSE = ANSWER.index("total_45")

@register
class Streamer(AsyncGeneratorProvider):
    supports_stream = True
    default_model = "streamer-1"

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        for start in range(0, len(ANSWER), 40):
            if start >= PAUSE and not os.path.exists(GATE):
                while not os.path.exists(GATE):  # the test opens the gate once it has looked
                    await asyncio.sleep(0.02)
            await asyncio.sleep(0.01)
            yield ANSWER[start:start + 40]
'''

#: the live answer's code boxes (one per settled piece and the tail): their edges, and where the cursor is
PIECES = """(output) => {
    const boxes = [...output.querySelectorAll('pre.ipyg4f-code')].map(p => p.getBoundingClientRect());
    const cursor = output.querySelector('.ipyg4f-cursor');
    return {
        boxes: boxes.map(b => ({top: b.top, bottom: b.bottom, left: b.left, width: b.width})),
        children: output.querySelectorAll('.jp-OutputArea-child').length,
        cursorInCode: !!cursor && !!cursor.closest('pre.ipyg4f-code'),
        cursors: output.querySelectorAll('.ipyg4f-cursor').length,
        lists: output.querySelectorAll('ol').length,
        items: [...output.querySelectorAll('ol > li')].map(li => li.getBoundingClientRect().top),
        numbers: [...output.querySelectorAll('ol')].map(ol => ol.start),
    };
}"""


def test_a_long_answer_streams_in_pieces_that_read_as_one_then_ends_as_one_output(page, lab, shots_dir, tmp_path):
    gate = tmp_path / "gate"
    page.set_viewport_size({"width": 1100, "height": 1400})
    open_notebook(page, lab, STREAMER.format(gate=str(gate)), "%%chat -p Streamer\nWrite a long function.")
    set_theme(page, "JupyterLab Light")
    run_cell(page, 0)
    answer = start_cell(page, 1)
    output = answer.locator(".jp-Cell-outputArea")
    expect()(output.locator(".ipyg4f-cursor")).to_have_count(1)
    expect()(output.locator("pre.ipyg4f-code").last).to_contain_text("total_44", timeout=30_000)
    live = output.element_handle().evaluate(PIECES)
    try:
        assert live["children"] >= 3, "settled pieces are outputs of their own; only the tail is replaced"
        assert live["cursors"] == 1 and live["cursorInCode"], live
        boxes = live["boxes"]
        assert len(boxes) >= 3, "the long code block arrives in pieces"
        for above, below in zip(boxes, boxes[1:]):  # that join into one box
            assert abs(below["top"] - above["bottom"]) <= 1, boxes
            assert (below["left"], below["width"]) == (above["left"], above["width"]), boxes
        # the list arrived in parts that read as one list: numbers go on, items evenly spaced
        assert live["lists"] >= 2 and live["numbers"][0] == 1 and live["numbers"][1] > 1, live
        gaps = [b - a for a, b in zip(live["items"], live["items"][1:])]
        assert len(gaps) == 11 and max(gaps) - min(gaps) <= 2, gaps
        assert page.evaluate("typeof window.__xss") == "undefined"
        leave(page)
        screenshot(answer, shots_dir, "streaming-light.png")
        set_theme(page, "JupyterLab Dark")
        screenshot(answer, shots_dir, "streaming-dark.png")
    finally:
        gate.write_text("go")
    expect()(answer.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=30_000)
    expect()(output.locator(".jp-OutputArea-child")).to_have_count(1)  # the saved notebook: one clean answer
    expect()(output.locator("pre.ipyg4f-code")).to_have_count(1)
    expect()(output.locator("pre.ipyg4f-code")).to_contain_text("total_59")
    expect()(output.locator(".ipyg4f-cursor")).to_have_count(0)
    expect()(output).to_contain_text('<img src=x onerror="window.__xss=1">')  # shown as text, not run
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.errors == []
