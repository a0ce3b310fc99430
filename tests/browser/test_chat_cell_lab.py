"""A ``%%chat`` answer in JupyterLab 4, light and dark: the thinking block, the answer (its code highlighted
in a box, its table's alignment kept), the footer.

Its screenshots go to the screenshot directory; ``IPYG4F_UPDATE_SCREENSHOTS=1 pytest tests/browser
-k thought`` also writes ``docs/answer-light.png`` and ``docs/answer-dark.png``.
"""

from __future__ import annotations

import pytest

from notebook_ui import expect, open_notebook, run_cell, screenshot, set_theme

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
