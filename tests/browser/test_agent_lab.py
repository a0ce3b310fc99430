"""The notebook agent (issue 21) in JupyterLab 4, in headless chromium, used as a person would.

* ``%%chat --tools python``: the approval question in the cell is the kernel's input box; typing ``y``
  and Enter runs the model's code in the user's namespace, ``n`` refuses it.
* The panel: Approve and Refuse buttons in the transcript; a click made while a cell runs waits,
  says so, and counts once the cell has ended (ipywidgets#3468).
* A ``%%chat --tools notebook,python`` run with its steps, light and dark (collapsed blocks, code
  highlighted, readable colours); ``IPYG4F_UPDATE_SCREENSHOTS=1 pytest tests/browser -k steps_look``
  also writes ``docs/agent-light.png`` and ``docs/agent-dark.png``.

The model is the protocol server's tool script (``tests/tool_script.py``), reached as ``-p OpenAI``
through ``OPENAI_BASE_URL``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the tool script

from notebook_ui import assert_widgets_render, cell, expect, open_notebook, run_cell, screenshot, set_theme, start_cell
from tool_script import Call, Turn

pytestmark = pytest.mark.browser

CODE = "answer = 6 * 7\nprint('computed', answer)"
SCRIPT = [Turn("Let me compute it. ", [Call("run_python", {"code": CODE})]), Turn("The answer is **42**.")]


def stdin_box(page):
    return page.locator(".jp-Stdin-input")


@pytest.mark.parametrize("typed, ran", [("y", True), ("n", False)])
def test_the_approval_question_of_a_cell_is_answered_in_the_kernels_input_box(page, lab, protocol_server, typed, ran):
    protocol_server.script = SCRIPT
    open_notebook(page, lab, "%load_ext ipyg4f", "%%chat -p OpenAI --tools python\nCompute the answer.",
                  "print('answer' in globals())")
    run_cell(page, 0)
    asking = start_cell(page, 1)
    output = asking.locator(".jp-Cell-outputArea")
    box = stdin_box(page)
    expect()(box).to_be_visible()
    expect()(output).to_contain_text("run_python wants to run:")
    expect()(output.locator(".ipyg4f-md pre")).to_contain_text("answer = 6 * 7")  # the code, before the question
    expect()(output).to_contain_text("Run it? [y]es / [n]o / [a]ll")
    box.click()
    page.keyboard.type(typed)  # as a person types it
    page.keyboard.press("Enter")
    expect()(asking.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
    step = output.locator("details.ipyg4f-step")
    expect()(step).to_have_count(1)
    expect()(step).to_have_js_property("open", False)
    expect()(step.locator("summary")).to_contain_text("run_python" if ran else "refused")
    expect()(step.locator("summary")).to_contain_text("(approved)" if ran else "refused")
    expect()(output).to_contain_text("The answer is 42.")
    [_, second] = protocol_server.chat_bodies()
    result = [m["content"] for m in second["messages"] if m.get("role") == "tool"]
    assert result == (["printed:\ncomputed 42"] if ran else ["refused by the user"]), result
    check = run_cell(page, 2).locator(".jp-Cell-outputArea")
    expect()(check).to_contain_text("True" if ran else "False")


PANEL = "%load_ext ipyg4f\n%chat panel"
#: a cell that keeps the kernel busy until the test creates the file (no timing guess)
BUSY = ("import pathlib, time\nprint('busy', flush=True)\nwhile not pathlib.Path({flag!r}).exists():\n"
        "    time.sleep(0.05)\nprint('done waiting')")


def panel_ask(panel, prompt: str, tools: str = "python"):
    panel.locator(".ipyg4f-tools input").fill(tools)
    panel.locator(".ipyg4f-tools input").press("Tab")  # the Text widget syncs on change
    panel.locator("textarea.ipyg4f-prompt-input").fill(prompt)
    panel.locator("button.ipyg4f-send").click()


def test_the_panels_approve_and_refuse_buttons(page, lab, protocol_server, tmp_path, shots_dir):
    protocol_server.script = SCRIPT
    flag = tmp_path / "go"
    open_notebook(page, lab, PANEL, BUSY.format(flag=str(flag)), "print('answer' in globals())")
    run_cell(page, 0)
    panel = cell(page, 0).locator(".jp-Cell-outputArea .ipyg4f-panel")
    expect()(panel.locator(".ipyg4f-panel-status")).to_contain_text("ready")
    assert_widgets_render(page)
    panel.locator(".widget-dropdown select").nth(0).select_option(label="OpenAI")

    # Refuse: nothing runs, the model is told
    panel_ask(panel, "Compute the answer.")
    question = panel.locator(".ipyg4f-ask")
    expect()(question).to_have_attribute("data-state", "pending")
    expect()(question).to_contain_text("run_python wants to run:")
    expect()(question.locator("pre")).to_contain_text("answer = 6 * 7")
    expect()(panel.locator(".ipyg4f-panel-status")).to_contain_text("waiting for your approval")
    page.mouse.move(0, 0)
    screenshot(panel, shots_dir, "panel-approve.png", docs=True)
    set_theme(page, "JupyterLab Dark")  # the question is readable in the dark theme too
    colours = question.element_handle().evaluate(
        "(box) => [getComputedStyle(box.querySelector('.ipyg4f-ask-title')).color,"
        " getComputedStyle(box.querySelector('pre')).color,"
        " getComputedStyle(document.querySelector('.ipyg4f-transcript')).backgroundColor]")
    for colour in colours[:2]:
        assert abs(_luminance(colour) - _luminance(colours[2])) > 0.3, colours
    screenshot(panel, shots_dir, "panel-approve-dark.png")
    set_theme(page, "JupyterLab Light")
    question.locator("button.ipyg4f-refuse").click()
    turn = panel.locator(".ipyg4f-exchange .ipyg4f-turn").last
    expect()(turn).to_have_attribute("data-status", "ok")
    expect()(turn.locator("details.ipyg4f-step summary")).to_contain_text("refused")
    expect()(turn).to_contain_text("The answer is 42.")
    expect()(panel.locator(".ipyg4f-ask")).to_have_count(0)  # the question made way for its step
    expect()(run_cell(page, 2).locator(".jp-Cell-outputArea")).to_contain_text("False")

    # Approve, clicked while a cell runs: the click says it was sent; it is never lost, whether the
    # kernel reads it at once (JupyterLab 4.6 + ipykernel 7.4 send widget messages on a kernel subshell,
    # handled on a thread of its own) or once the cell has ended (ipywidgets#3468, without subshells)
    panel_ask(panel, "Compute it again.")
    question = panel.locator(".ipyg4f-ask")
    expect()(question).to_have_attribute("data-state", "pending")
    busy = start_cell(page, 1)
    expect()(busy.locator(".jp-Cell-outputArea")).to_contain_text("busy")  # running, not only queued
    said = question.element_handle().evaluate(
        "(box) => { box.querySelector('button.ipyg4f-approve').click();"
        " return [box.dataset.state, box.querySelector('.ipyg4f-ask-state').textContent,"
        " box.querySelector('button.ipyg4f-approve').disabled]; }")
    assert said[0] == "sent" and "once no cell is running" in said[1] and said[2], said
    flag.write_text("go")
    expect()(busy.locator(".jp-Cell-outputArea")).to_contain_text("done waiting")
    where = run_cell(page, 2)
    expect()(where.locator(".jp-Cell-outputArea")).to_contain_text("True")
    turn = panel.locator(".ipyg4f-exchange .ipyg4f-turn").last
    expect()(turn).to_have_attribute("data-status", "ok")
    step = turn.locator("details.ipyg4f-step")
    expect()(step).to_have_js_property("open", False)
    expect()(step.locator("summary")).to_contain_text("(approved)")
    expect()(turn).to_contain_text("The answer is 42.")


DATA = "import pandas as pd\ndf = pd.DataFrame({'region': ['north', 'south', 'east'], 'revenue': [120.0, None, 95.5]})"
FIX = "df['revenue'] = df['revenue'].fillna(0)\nprint(df)\ndf['revenue'].isna().sum()"
STEPS = [Turn("Let me look at the data first. ", [Call("describe", {"name": "df"})]),
         Turn("One row has no revenue. I will fill it with 0. ", [Call("run_python", {"code": FIX})]),
         Turn("**Fixed.** `revenue` had one null (the *south* row); it is now `0.0`, "
              "and the column has no nulls left.")]

#: colours of the steps as the browser computes them, and whether the code is highlighted
STEP_LOOKS = """(output) => {
    const step = output.querySelector('details.ipyg4f-step');
    const pre = output.querySelector('details.ipyg4f-step pre.ipyg4f-code');
    const background = getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor;
    return {summary: getComputedStyle(step.querySelector('summary')).color, background,
            keyword: pre ? getComputedStyle(pre.querySelector('.k, .n, .o') || pre).color : null,
            open: [...output.querySelectorAll('details.ipyg4f-step')].map(d => d.open)};
}"""


def _luminance(colour: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def leave(page):
    """The first cell active, the mouse away: the shot shows no cell toolbar."""
    page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 0; }")
    page.mouse.move(0, 0)


def test_the_steps_look_right_in_light_and_dark(page, lab, protocol_server, shots_dir):
    protocol_server.script = STEPS
    page.set_viewport_size({"width": 1100, "height": 900})
    open_notebook(page, lab, "%load_ext ipyg4f\n" + DATA,
                  "%%chat -p OpenAI --tools notebook,python --approve auto\n"
                  "Why does revenue have nulls? Check the data, then fix the column.")
    set_theme(page, "JupyterLab Light")
    run_cell(page, 0)
    answer = run_cell(page, 1)
    leave(page)
    output = answer.locator(".jp-Cell-outputArea")
    steps = output.locator("details.ipyg4f-step")
    expect()(steps).to_have_count(2)
    expect()(output).to_contain_text("Fixed.")
    expect()(steps.nth(0).locator("summary")).to_contain_text("describe")
    expect()(steps.nth(1).locator("summary")).to_contain_text("run_python")
    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(page, theme)
        looks = output.element_handle().evaluate(STEP_LOOKS)
        assert looks["open"] == [False, False], looks  # collapsed
        contrast = abs(_luminance(looks["summary"]) - _luminance(looks["background"]))
        assert contrast > 0.3, looks  # the titles are readable on the theme's background
        screenshot(answer, shots_dir, f"agent-{name}.png", docs=True)
        steps.nth(1).locator("summary").click()  # opened: the code, highlighted
        expect()(steps.nth(1)).to_have_js_property("open", True)
        leave(page)
        code = steps.nth(1).locator("pre.ipyg4f-code")
        expect()(code).to_contain_text("fillna(0)")
        assert code.locator("span").count() > 3  # tokens are coloured spans
        screenshot(answer, shots_dir, f"agent-{name}-open.png", docs=True)
        steps.nth(1).locator("summary").click()
        expect()(steps.nth(1)).to_have_js_property("open", False)
