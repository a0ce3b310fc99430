"""``%%chat --compare`` in JupyterLab 4: the columns side by side (stacked on a narrow screen), readable in
light and dark, a footer each, and the pick button under each column.

``IPYG4F_UPDATE_SCREENSHOTS=1 pytest tests/browser/test_compare_lab.py`` also writes
``docs/compare-light.png`` and ``docs/compare-dark.png``.
"""

from __future__ import annotations

import re

import pytest

from notebook_ui import expect, open_notebook, run_cell, screenshot, set_theme, start_cell
from test_chat_cell_lab import leave

pytestmark = pytest.mark.browser

#: one provider whose answer depends on the model asked for (three columns of different shapes)
ANSWERS = '''%load_ext ipyg4f
import asyncio
from ipyg4f.providers import AsyncGeneratorProvider, register
from ipyg4f.events import Usage, FinishReason

TEXTS = {
    "brief": "A **list** is mutable; a *tuple* is not. Use a tuple for fixed records.",
    "code": "Both hold sequences:\\n\\n```python\\npoint = (1, 2)      # tuple\\nitems = [1, 2]\\nitems.append(3)\\n```\\n\\nTuples are hashable.",
    "table": "| | list | tuple |\\n|---|---|---|\\n| mutable | yes | no |\\n| hashable | no | yes |\\n\\nPick a list for data that grows.",
}

@register
class Panelist(AsyncGeneratorProvider):
    supports_stream = True
    default_model = "brief"

    @classmethod
    async def create_async_generator(cls, model, messages, proxy=None, **kwargs):
        name, _, pace = model.partition("-")  # "code-slow": the same answer, streamed over seconds
        text = TEXTS[name]
        for i in range(0, len(text), 12):
            await asyncio.sleep(0.25 if pace == "slow" else 0.02)
            yield text[i:i + 12]
        yield Usage(20, len(text) // 4)
        yield FinishReason("stop")
'''

#: each column's box and its colours
BOXES = """(output) => [...output.querySelectorAll('.ipyg4f-column')].map(c => {
    const r = c.getBoundingClientRect(), s = getComputedStyle(c), p = c.querySelector('p, td');
    return {top: Math.round(r.top), left: Math.round(r.left), width: Math.round(r.width),
            background: s.backgroundColor, text: getComputedStyle(p).color,
            head: getComputedStyle(c.querySelector('.ipyg4f-column-head')).color};
})"""


def luminance(css: str) -> float:
    r, g, b = (int(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_columns_side_by_side_in_light_and_dark_stacked_when_narrow_and_picked_by_a_button(page, lab, shots_dir):
    page.set_viewport_size({"width": 1280, "height": 800})
    open_notebook(page, lab, ANSWERS,
                  "%%chat --compare Panelist=brief,Panelist=code,Panelist=table\nList or tuple?",
                  "from ipyg4f.chat import get_chat\nc = get_chat()\n"
                  "print([(e.answer[:6], e.model) for e in c.store.exchanges(c.notebook, 'default')])")
    set_theme(page, "JupyterLab Light")
    run_cell(page, 0)
    compared = run_cell(page, 1)
    leave(page)
    output = compared.locator(".jp-Cell-outputArea")
    expect()(output.locator(".ipyg4f-column")).to_have_count(3)
    expect()(output.locator(".ipyg4f-column .ipyg4f-footer")).to_have_count(3)
    for n, model in enumerate(("brief", "code", "table"), 1):
        column = output.locator(f'.ipyg4f-column[data-column="{n}"]')
        expect()(column.locator(".ipyg4f-column-head")).to_have_text(f"{n}. Panelist ({model})")
        expect()(column.locator(".ipyg4f-footer")).to_contain_text("first token")
    expect()(output.locator(".ipyg4f-column pre code")).to_contain_text("items.append(3)")
    expect()(output.locator(".ipyg4f-column table")).to_have_count(1)

    looks = {}
    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(page, theme)
        leave(page)
        boxes = looks[name] = output.element_handle().evaluate(BOXES)
        assert len({b["top"] for b in boxes}) == 1, boxes  # side by side: one row
        assert boxes[0]["left"] < boxes[1]["left"] < boxes[2]["left"], boxes
        for box in boxes:  # readable: the text stands out from the column's background
            background = box["background"] if box["background"] not in ("rgba(0, 0, 0, 0)",) else (
                "rgb(255, 255, 255)" if name == "light" else "rgb(17, 17, 17)")
            assert abs(luminance(box["text"]) - luminance(background)) > 0.4, (name, box)
            assert abs(luminance(box["head"]) - luminance(background)) > 0.4, (name, box)
        screenshot(compared, shots_dir, f"compare-{name}.png", docs=True)
    assert looks["light"][0]["text"] != looks["dark"][0]["text"], looks  # the colours follow the theme

    page.set_viewport_size({"width": 560, "height": 1000})  # narrow: one column under the other
    page.wait_for_function("(o) => { const c = o.querySelectorAll('.ipyg4f-column');"
                           " return c[0].getBoundingClientRect().top < c[1].getBoundingClientRect().top; }",
                           arg=output.element_handle())
    narrow = output.element_handle().evaluate(BOXES)
    assert narrow[0]["top"] < narrow[1]["top"] < narrow[2]["top"], narrow
    assert len({b["left"] for b in narrow}) == 1, narrow
    screenshot(compared, shots_dir, "compare-narrow-dark.png")

    page.set_viewport_size({"width": 1280, "height": 800})
    buttons = output.locator(".widget-button")
    expect()(buttons).to_have_count(3)
    buttons.nth(1).click()
    expect()(buttons.nth(1)).to_contain_text("picked 2")
    expect()(output).to_contain_text("continues with column 2: Panelist (code)")
    leave(page)
    screenshot(compared, shots_dir, "compare-picked-dark.png")
    check = run_cell(page, 2)
    expect()(check.locator(".jp-Cell-outputArea")).to_contain_text("[('Both h', 'code')]")
    body = page.locator("body")
    expect()(body).not_to_contain_text("Error displaying widget")
    assert page.errors == []


def test_columns_stream_side_by_side(page, lab, shots_dir):
    page.set_viewport_size({"width": 1280, "height": 800})
    open_notebook(page, lab, ANSWERS, "%%chat --compare Panelist=brief-slow,Panelist=code-slow\nList or tuple?")
    set_theme(page, "JupyterLab Light")
    run_cell(page, 0)
    streaming = start_cell(page, 1)
    output = streaming.locator(".jp-Cell-outputArea")
    live = output.locator(".ipyg4f-column .ipyg4f-live")
    expect()(live).to_have_count(2)  # both columns show text while they stream
    expect()(output.locator(".ipyg4f-column").nth(1)).to_contain_text("Both hold")
    boxes = output.element_handle().evaluate(BOXES)
    assert len(boxes) == 2 and boxes[0]["top"] == boxes[1]["top"] and boxes[0]["left"] < boxes[1]["left"], boxes
    leave(page)
    screenshot(streaming, shots_dir, "compare-streaming-light.png")
    expect()(streaming.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
    expect()(output.locator(".ipyg4f-column .ipyg4f-footer")).to_have_count(2)
    expect()(output.locator(".ipyg4f-live")).to_have_count(0)  # the final grid replaced the live one
    expect()(output.locator("style")).to_have_count(2)  # the answers' and the grid's CSS, once each: the CSS
    # output of the streaming phase is gone, and no column repeats the answers' CSS
    assert page.errors == []
