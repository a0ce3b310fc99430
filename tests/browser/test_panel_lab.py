"""The chat panel in JupyterLab 4, in headless chromium, against the local protocol server.

Run: ``pytest -q tests/browser`` (needs ``ipyg4f[browser]`` and /usr/bin/chromium;
skipped with the reason otherwise).  Each test opens its own notebook (own
kernel); the server and the browser are shared by the module.
"""

from __future__ import annotations

import re

import pytest

from notebook_ui import (assert_widgets_render, cell, expect, open_notebook, run_cell, screenshot, set_theme,
                         start_cell)

pytestmark = pytest.mark.browser

#: records every distinct state of the newest exchange (and, in ``__when``, the kernel's status
#: and how many cells showed ``[*]`` at that moment), and any dangerous element or attribute
#: that ever appears inside an exchange (while streaming as well as at the end)
RECORDER = """() => {
    window.__states = []; window.__when = []; window.__bad = [];
    const panel = document.querySelector('.ipyg4f-panel');
    const when = () => {
        const kernel = window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel;
        const running = [...document.querySelectorAll('.jp-Cell .jp-InputPrompt')]
            .filter(p => p.textContent.includes('[*]')).length;
        return (kernel ? kernel.status : '?') + '|' + running;
    };
    const record = () => {
        const turns = panel.querySelectorAll('.ipyg4f-exchange .ipyg4f-turn');
        const last = turns[turns.length - 1];
        if (!last) return;
        const state = last.dataset.status + '|' + last.querySelector('.ipyg4f-answer').innerHTML;
        if (window.__states[window.__states.length - 1] !== state) {
            window.__states.push(state);
            window.__when.push(when());
        }
    };
    const inspect = (node) => {
        if (node.nodeType !== 1 || !node.closest('.ipyg4f-exchange')) return;
        for (const el of [node, ...node.querySelectorAll('*')]) {
            const tag = el.tagName.toUpperCase();
            const attrs = [...el.attributes];
            if (['IMG', 'SCRIPT', 'SVG', 'IFRAME', 'OBJECT', 'EMBED'].includes(tag)
                || attrs.some(a => a.name.toLowerCase().startsWith('on') || /^\\s*javascript:/i.test(a.value)))
                window.__bad.push(el.outerHTML);
        }
    };
    new MutationObserver((mutations) => {
        for (const m of mutations) for (const n of m.addedNodes) inspect(n);
        record();
    }).observe(panel, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def show_panel(page, lab, *more_cells: str, app: str = "lab"):
    """A notebook whose first cell shows the panel; returns the panel's locator."""
    open_notebook(page, lab, "%load_ext ipyg4f\n%chat panel", *more_cells, app=app)
    run_cell(page, 0)
    panel = cell(page, 0).locator(".jp-Cell-outputArea .ipyg4f-panel")
    expect()(panel).to_be_visible()
    expect()(panel.locator(".ipyg4f-panel-status")).to_contain_text("ready")
    assert_widgets_render(page)
    page.evaluate(RECORDER)
    return panel


def choose_openai(panel, model: str = "test-model"):
    provider = panel.locator(".widget-dropdown select").nth(0)
    models = panel.locator(".widget-dropdown select").nth(1)
    provider.select_option(label="OpenAI")
    # the model list is fetched from the server (GET /v1/models) without blocking the kernel
    expect()(models.locator(f'option[value="{model}"]')).to_have_count(1)
    models.select_option(value=model)
    return provider, models


def ask(panel, prompt: str):
    panel.locator("textarea.ipyg4f-prompt-input").fill(prompt)
    panel.locator(".ipyg4f-send button, button.ipyg4f-send").first.click()


def last_turn(panel):
    return panel.locator(".ipyg4f-exchange .ipyg4f-turn").last


def test_choose_a_model_send_and_watch_the_answer_stream(page, lab, protocol_server, shots_dir):
    protocol_server.models = ["gpt-4o-mini", "test-model"]
    protocol_server.chunks = ["## Tea, briefly\n\n", "Tea is **brewed** ", "from the leaves of ",
                              "*Camellia sinensis*.\n\n", "- green: unoxidised\n", "- black: fully oxidised\n\n",
                              "Steep it at `80 °C` for green tea."]
    protocol_server.chunk_delay = 0.15
    panel = show_panel(page, lab,
                       "from ipyg4f.chat import get_chat\nc = get_chat().config\nprint('defaults:', c.provider, c.model)",
                       "%chat history",
                       "%chat use -p ChatGptt -m gpt-4")
    provider, models = choose_openai(panel)

    # the choice is the default of later %%chat cells in this kernel
    expect()(run_cell(page, 1).locator(".jp-Cell-outputArea")).to_contain_text("defaults: OpenAI test-model")

    ask(panel, "Tell me about tea.")
    turn = last_turn(panel)
    expect()(turn).to_have_attribute("data-status", "ok")
    states = page.evaluate("window.__states")
    streaming = [s for s in states if s.startswith("streaming|")]
    assert len(streaming) >= 3, states  # several partial states reached the browser
    answer = turn.locator(".ipyg4f-answer")
    expect()(answer.locator("h2")).to_have_text("Tea, briefly")
    expect()(answer.locator("strong")).to_have_text("brewed")
    expect()(answer.locator("li")).to_have_count(2)
    expect()(answer.locator("code")).to_have_text("80 °C")
    expect()(turn.locator(".ipyg4f-cursor")).to_have_count(0)
    status = panel.locator(".ipyg4f-panel-status")
    expect()(status).to_contain_text(re.compile(r"answered in \d+\.\d s"))
    assert protocol_server.requests[-1].json["model"] == "test-model"
    assert_widgets_render(page)
    assert page.errors == []

    screenshot(panel, shots_dir, "panel-tea.png")

    # the panel's exchange is in the history %%chat uses
    expect()(run_cell(page, 2).locator(".jp-Cell-outputArea")).to_contain_text("Tell me about tea.")
    # and %chat use is reflected back in the panel
    run_cell(page, 3)
    expect()(provider.locator("option:checked")).to_have_text("ChatGptt")
    expect()(models.locator("option:checked")).to_have_text("gpt-4")


def test_stop_keeps_the_partial_answer_marked_as_stopped(page, lab, protocol_server):
    protocol_server.chunks = ["One ", "two ", "three ", "four ", "five"]
    protocol_server.fault, protocol_server.fault_after = "stall", 3
    protocol_server.fault_path = "/v1/chat/completions"  # the model list still answers
    panel = show_panel(page, lab, "Out[1]  # the same panel, shown again")
    choose_openai(panel)
    ask(panel, "Count slowly.")
    turn = last_turn(panel)
    expect()(turn.locator(".ipyg4f-answer")).to_contain_text("One two three")
    assert protocol_server.wait_stalled(1, 10)
    panel.locator(".ipyg4f-stop button, button.ipyg4f-stop").first.click()
    # the server never sends more (it stalls for good): only Stop can end this answer
    expect()(turn).to_have_attribute("data-status", "interrupted", timeout=30_000)
    expect()(turn.locator(".ipyg4f-note")).to_contain_text("stopped")
    expect()(turn.locator(".ipyg4f-answer")).to_have_text("One two three")
    expect()(panel.locator(".ipyg4f-panel-status")).to_contain_text("stopped after")
    expect()(panel.locator("button.ipyg4f-send, .ipyg4f-send button").first).to_be_enabled()
    # a second view of the same panel gets the whole transcript (and the status line)
    again = run_cell(page, 1).locator(".jp-Cell-outputArea .ipyg4f-chat")
    expect()(again.locator(".ipyg4f-turn")).to_have_attribute("data-status", "interrupted")
    expect()(again.locator(".ipyg4f-answer")).to_have_text("One two three")
    expect()(again.locator(".ipyg4f-prompt")).to_have_text("you: Count slowly.")
    expect()(again.locator(".ipyg4f-panel-status")).to_contain_text("stopped after")
    assert_widgets_render(page)


def slow_answer(page, lab, protocol_server, words: int, delay: float, *cells: str):
    """A panel (and ``cells``) whose OpenAI answer, ``words`` words ``delay`` s apart, is streaming;
    returns the answer's turn."""
    protocol_server.chunks = [f"word{i} " for i in range(words)]
    protocol_server.chunk_delay = delay
    panel = show_panel(page, lab, *cells)
    choose_openai(panel)
    ask(panel, "Take your time.")
    turn = last_turn(panel)
    expect()(turn).to_have_attribute("data-status", "streaming")
    return turn


def test_other_cells_run_while_the_panel_streams(page, lab, protocol_server):
    turn = slow_answer(page, lab, protocol_server, 14, 0.25, "print('other cell', 6 * 7)")
    other = run_cell(page, 1)
    expect()(other.locator(".jp-Cell-outputArea")).to_contain_text("other cell 42")
    assert turn.get_attribute("data-status") == "streaming"  # the panel is still answering
    expect()(turn).to_have_attribute("data-status", "ok")
    expect()(turn.locator(".ipyg4f-answer")).to_contain_text("word13")


def test_the_answer_keeps_streaming_while_a_cell_sleeps(page, lab, protocol_server):
    """The issue's case: Send, then ``time.sleep(20)`` in a cell; the answer grows (and ends) while
    that cell still shows ``[*]``."""
    turn = slow_answer(page, lab, protocol_server, 25, 0.2, "import time; time.sleep(20)")  # 5 s of 20
    sleeper = start_cell(page, 1)
    expect()(turn).to_have_attribute("data-status", "ok")
    expect()(sleeper.locator(".jp-InputPrompt")).to_have_text("[*]:", timeout=1_000)  # still sleeping
    states, when = page.evaluate("window.__states"), page.evaluate("window.__when")
    busy = [state for state, at in zip(states, when) if at == "busy|1"]
    words = [len(re.findall(r"word\d+", s)) for s in busy if s.startswith("streaming|")]
    assert len(set(words)) >= 5 and words == sorted(words), (words, when)  # grew while the cell slept
    assert busy[-1].startswith("ok|") and "word24" in busy[-1]  # and ended before the cell did
    expect()(sleeper.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"))
    assert_widgets_render(page)
    assert page.errors == []


XSS = ('Look: <img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
       '[click me](javascript:window.__xss=3) <a href="javascript:window.__xss=4">a</a> '
       '<svg onload="window.__xss=5"></svg> <iframe srcdoc="<script>parent.__xss=6</script>"></iframe> '
       '<details open ontoggle="window.__xss=7">d</details> done')


def test_an_xss_answer_does_not_execute(page, lab, protocol_server):
    protocol_server.chunks = [XSS[i:i + 25] for i in range(0, len(XSS), 25)]
    protocol_server.chunk_delay = 0.05
    panel = show_panel(page, lab)
    choose_openai(panel)
    ask(panel, "<img src=y onerror=\"window.__xss='prompt'\"> echo this")
    turn = last_turn(panel)
    expect()(turn).to_have_attribute("data-status", "ok")
    expect()(turn.locator(".ipyg4f-answer")).to_contain_text("done")
    # the payload is shown as text, no element of it was ever built
    expect()(turn.locator(".ipyg4f-answer")).to_contain_text('<img src=x onerror="window.__xss=1">')
    assert page.evaluate("window.__bad") == []
    assert turn.locator("img, script, svg, iframe, details, a[href^='javascript']").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.errors == []


def test_the_panel_works_in_notebook_7(page, lab, protocol_server):
    import notebook  # pinned (>=7) in the browser extra: a missing one is a failure, not a skip

    assert int(notebook.__version__.split(".")[0]) >= 7, notebook.__version__
    protocol_server.chunks = ["Works ", "in ", "**Notebook 7** ", "too."]
    protocol_server.chunk_delay = 0.1
    panel = show_panel(page, lab, "from ipyg4f import ChatPanel\nChatPanel()", app="notebook")
    choose_openai(panel)
    ask(panel, "Where am I?")
    turn = last_turn(panel)
    expect()(turn).to_have_attribute("data-status", "ok")
    expect()(turn.locator(".ipyg4f-answer strong")).to_have_text("Notebook 7")
    assert len([s for s in page.evaluate("window.__states") if s.startswith("streaming|")]) >= 2
    # ipyg4f.ChatPanel() shows a second panel that follows the same defaults
    second = run_cell(page, 1).locator(".jp-Cell-outputArea .ipyg4f-panel")
    expect()(second.locator(".widget-dropdown select").nth(1).locator("option:checked")).to_have_text("test-model")
    expect()(second.locator(".ipyg4f-exchange")).to_have_count(1)  # the shared thread's history
    assert_widgets_render(page)


#: where the transcript is scrolled, and how big it is
SCROLL = """() => {
    const t = document.querySelector('.ipyg4f-panel .ipyg4f-transcript');
    const words = (t.querySelector('.ipyg4f-exchange:last-child .ipyg4f-answer').textContent.match(/word\\d+/g) || []).length;
    return {top: t.scrollTop, height: t.scrollHeight, client: t.clientHeight, words,
            fromBottom: t.scrollHeight - t.scrollTop - t.clientHeight, viewport: window.innerHeight,
            overflow: getComputedStyle(t).overflowY};
}"""


def words_at_least(page, n: int):
    page.wait_for_function(
        "(n) => (document.querySelector('.ipyg4f-panel .ipyg4f-exchange:last-child .ipyg4f-answer')"
        "?.textContent.match(/word\\d+/g) || []).length >= n", arg=n)


def within_viewport(page, locator):
    box = locator.bounding_box()
    assert box is not None and box["height"] > 0
    assert 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"], box


def test_the_transcript_scrolls_follows_the_answer_and_ctrl_enter_sends(page, lab, protocol_server):
    panel = show_panel(page, lab)
    choose_openai(panel)
    prompt = panel.locator("textarea.ipyg4f-prompt-input")
    transcript = panel.locator(".ipyg4f-transcript")

    # Enter is a newline; Ctrl+Enter sends (and does not run the cell the panel is in)
    protocol_server.chunks = [f"word{i} " + ("\n\n" if i % 3 == 2 else "") for i in range(150)]
    protocol_server.chunk_delay = 0.05
    prompt.click()
    page.keyboard.type("first line")
    page.keyboard.press("Enter")
    page.keyboard.type("second line")
    expect()(prompt).to_have_value("first line\nsecond line")
    expect()(panel.locator(".ipyg4f-exchange")).to_have_count(0)
    page.keyboard.press("Control+Enter")
    turn = last_turn(panel)
    expect()(turn.locator(".ipyg4f-prompt")).to_have_text("you: first line\nsecond line")
    expect()(prompt).to_have_value("")
    expect()(cell(page, 0).locator(".jp-InputPrompt")).to_have_text("[1]:")  # the cell did not run again
    assert protocol_server.requests[-1].json["messages"][-1]["content"] == "first line\nsecond line"

    # the transcript is a bounded scrolling area that follows the newest text
    words_at_least(page, 75)
    at = page.evaluate(SCROLL)
    assert at["overflow"] == "auto" and at["client"] <= 0.6 * at["viewport"] + 1, at
    assert at["height"] > at["client"] + 100, at  # it does overflow
    assert at["fromBottom"] <= 24, at  # following the newest text
    # the user scrolls up: it stays where they put it while the answer grows
    transcript.hover()
    page.mouse.wheel(0, -5000)
    page.wait_for_function("() => document.querySelector('.ipyg4f-panel .ipyg4f-transcript').scrollTop === 0")
    words = page.evaluate(SCROLL)["words"]
    words_at_least(page, words + 8)
    at = page.evaluate(SCROLL)
    assert at["top"] == 0 and at["fromBottom"] > 100, at
    # back at the bottom, it follows again
    page.mouse.wheel(0, 50_000)
    page.wait_for_function("() => { const t = document.querySelector('.ipyg4f-panel .ipyg4f-transcript');"
                           " return t.scrollHeight - t.scrollTop - t.clientHeight <= 24; }")
    words_at_least(page, page.evaluate(SCROLL)["words"] + 8)
    at = page.evaluate(SCROLL)
    assert at["fromBottom"] <= 24 and at["words"] < 150, at
    expect()(turn).to_have_attribute("data-status", "ok")

    # two more long answers: the prompt box, the buttons and the status line stay in view
    protocol_server.chunks = [f"word{i} " + ("\n\n" if i % 3 == 2 else "") for i in range(200)]
    protocol_server.chunk_delay = 0.0
    for n in (2, 3):
        prompt.fill(f"long answer {n}")
        prompt.press("Control+Enter")
        expect()(panel.locator(".ipyg4f-exchange")).to_have_count(n)
        expect()(last_turn(panel)).to_have_attribute("data-status", "ok")
    at = page.evaluate(SCROLL)
    assert at["height"] > 3 * at["client"] and at["fromBottom"] <= 24, at
    for part in (prompt, panel.locator("button.ipyg4f-send"), panel.locator("button.ipyg4f-stop"),
                 panel.locator(".ipyg4f-panel-status")):
        within_viewport(page, part)
    expect()(panel.locator(".ipyg4f-panel-status")).to_contain_text("answered in")
    assert_widgets_render(page)
    assert page.errors == []


MARKDOWN = """## Brewing tea

Steep **green** tea at `80 °C`; black tea wants boiling water ([a guide](https://example.org/tea)).

> Water that is too hot makes green tea bitter.

| tea | minutes | °C |
|:--|--:|--:|
| green | 2 | 80 |
| black | 4 | 95 |
| oolong | 3 | 90 |

```python
def steep(tea: str, minutes: int = 3) -> str:
    return f"{tea} for {minutes} min"  # then pour
```
"""

#: computed styles of the panel's answer that make it read as rendered Markdown
STYLES = """() => {
    const answer = [...document.querySelectorAll('.ipyg4f-panel .ipyg4f-answer')].pop();
    const s = (sel) => getComputedStyle(answer.querySelector(sel));
    const rows = answer.querySelectorAll('tbody tr');
    const luminance = (colour) => {
        const [r, g, b] = colour.match(/[\\d.]+/g).map(Number);
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    };
    const transcript = getComputedStyle(document.querySelector('.ipyg4f-panel .ipyg4f-transcript'));
    return {
        classes: answer.className,
        thead: s('thead').borderBottomWidth, quote: s('blockquote').borderLeftWidth,
        code: s('p code').backgroundColor, pre: s('pre.ipyg4f-code').borderTopWidth,
        keyword: s('pre.ipyg4f-code .k').color, plain: s('pre.ipyg4f-code').color,
        link: s('a').color, text: s('p').color, textLight: luminance(s('p').color),
        stripes: [getComputedStyle(rows[0]).backgroundColor, getComputedStyle(rows[1]).backgroundColor],
        background: luminance(transcript.backgroundColor),
        right: s('tbody td:nth-child(2)').textAlign,
    };
}"""


def test_answers_look_like_rendered_markdown_in_light_and_dark(page, lab, protocol_server, shots_dir):
    protocol_server.chunks = [MARKDOWN[i:i + 40] for i in range(0, len(MARKDOWN), 40)]
    protocol_server.chunk_delay = 0.03
    panel = show_panel(page, lab)
    choose_openai(panel)
    ask(panel, "How do I brew tea?")
    turn = last_turn(panel)
    expect()(turn).to_have_attribute("data-status", "ok")
    expect()(turn.locator(".ipyg4f-answer table")).to_be_visible()
    for theme, name, dark in (("JupyterLab Light", "light", False), ("JupyterLab Dark", "dark", True)):
        set_theme(page, theme)
        css = page.evaluate(STYLES)
        assert "jp-RenderedHTMLCommon" in css["classes"] and "jp-RenderedMarkdown" in css["classes"]
        assert css["thead"] not in ("", "0px"), css  # a header rule
        assert css["quote"] not in ("", "0px"), css  # a bar on the quote
        assert css["code"] != "rgba(0, 0, 0, 0)", css  # inline code on a background
        assert css["pre"] not in ("", "0px"), css  # the code box
        assert css["keyword"] != css["plain"], css  # highlighted
        assert css["link"] != css["text"], css  # links coloured
        assert css["stripes"][0] != css["stripes"][1], css  # striped rows
        assert css["right"] == "right", css  # the |--:| column
        assert (css["textLight"] > 0.6) == dark and (css["background"] < 0.4) == dark, css  # readable
        # docs/panel.png and docs/panel-dark.png are these, rewritten only on request:
        # IPYG4F_UPDATE_SCREENSHOTS=1 pytest tests/browser -k rendered_markdown
        screenshot(panel, shots_dir, "panel.png" if name == "light" else "panel-dark.png", docs=True)
    set_theme(page, "JupyterLab Light")
    assert page.errors == []


def open_panel(page, lab, *more_cells: str):
    """A notebook whose first cell shows a panel kept in ``_panel`` (with Ollama pointed at the same
    local server as OpenAI: two providers that both fetch their models and both answer)."""
    open_notebook(page, lab, "import os\nos.environ['OLLAMA_BASE_URL'] = os.environ['OPENAI_BASE_URL']\n"
                  "%load_ext ipyg4f\nfrom ipyg4f import ChatPanel\n_panel = ChatPanel()\n_panel", *more_cells)
    run_cell(page, 0)
    panel = cell(page, 0).locator(".jp-Cell-outputArea .ipyg4f-panel")
    expect()(panel.locator(".ipyg4f-panel-status")).to_contain_text("ready")
    assert_widgets_render(page)
    return panel


def sent_prompts(protocol_server) -> list[str]:
    return [r.json["messages"][-1]["content"] for r in protocol_server.requests if r.path.endswith("/chat/completions")]


def test_ctrl_enter_after_changing_the_provider_sends_exactly_what_was_typed(page, lab, protocol_server, shots_dir):
    """The issue's sequence: change the Provider dropdown, type, Ctrl+Enter, three times (the first
    right after the panel appears).  Each prompt is sent exactly as typed and the box is empty after;
    the kernel's copy of the box is empty too, so nothing can come back into it."""
    protocol_server.models = ["gpt-4o-mini", "llama3.2"]
    protocol_server.chunks = ["Noted", "."]
    panel = open_panel(page, lab, "print(repr(_panel.view.prompt))")
    provider = panel.locator(".widget-dropdown select").nth(0)
    prompt = panel.locator("textarea.ipyg4f-prompt-input")
    prompts = ["What is a quartile?", "And a decile?", "And a percentile, in one line?"]
    for n, (name, text) in enumerate(zip(["OpenAI", "Ollama", "OpenAI"], prompts), 1):
        provider.select_option(value=name)
        prompt.click()
        page.keyboard.type(text)
        page.keyboard.press("Control+Enter")
        expect()(panel.locator(".ipyg4f-exchange")).to_have_count(n)
        turn = last_turn(panel)
        expect()(turn.locator(".ipyg4f-prompt")).to_have_text(f"you: {text}")
        expect()(prompt).to_have_value("")
        expect()(turn).to_have_attribute("data-status", "ok")
        expect()(turn.locator(".ipyg4f-meta")).to_contain_text(name)
        expect()(prompt).to_have_value("")  # still, once the answer has ended
    assert sent_prompts(protocol_server) == prompts
    # a cell runs after every message the panel sent before it: the kernel's box is empty as well
    expect()(run_cell(page, 1).locator(".jp-Cell-outputArea")).to_have_text("''")
    expect()(prompt).to_have_value("")
    screenshot(panel, shots_dir, "panel-three-sends.png")
    assert page.errors == []


def replace_cell_text(page, index: int, text: str):
    editor = cell(page, index).locator(".jp-InputArea-editor")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(text)


def test_the_panel_follows_chat_cells_of_its_thread(page, lab, protocol_server, shots_dir):
    """A %%chat cell run after the panel is shown appears in it; re-run with another prompt, the panel
    shows the new exchange and not the old one, as history has the thread."""
    panel = open_panel(page, lab, "%%chat -p OpenAI\nWhat is a quartile?", "%chat history")
    prompt = panel.locator("textarea.ipyg4f-prompt-input")
    protocol_server.chunks = ["Asked ", "in the panel."]
    panel.locator(".widget-dropdown select").nth(0).select_option(value="OpenAI")
    prompt.fill("First, from the panel")
    prompt.press("Control+Enter")
    expect()(last_turn(panel)).to_have_attribute("data-status", "ok")

    protocol_server.chunks = ["A quartile ", "splits the data ", "in **fourths**."]
    run_cell(page, 1)
    exchanges = panel.locator(".ipyg4f-exchange")
    expect()(exchanges).to_have_count(2)
    expect()(last_turn(panel).locator(".ipyg4f-prompt")).to_have_text("you: What is a quartile?")
    expect()(last_turn(panel).locator(".ipyg4f-answer strong")).to_have_text("fourths")

    protocol_server.chunks = ["A decile ", "splits it ", "in **tenths**."]
    replace_cell_text(page, 1, "%%chat -p OpenAI\nWhat is a decile?")
    run_cell(page, 1)
    expect()(panel.locator(".ipyg4f-prompt", has_text="What is a decile?")).to_have_count(1)
    expect()(exchanges).to_have_count(2)
    expect()(panel.locator(".ipyg4f-prompt", has_text="quartile")).to_have_count(0)
    expect()(panel.locator(".ipyg4f-answer", has_text="fourths")).to_have_count(0)
    expect()(panel.locator(".ipyg4f-answer strong", has_text="tenths")).to_have_count(1)
    # the panel shows the thread as history has it, in its order
    history = run_cell(page, 2).locator(".jp-Cell-outputArea")
    expect()(history).to_contain_text("What is a decile?")
    expect()(history).not_to_contain_text("What is a quartile?")
    shown = [t.removeprefix("you: ") for t in panel.locator(".ipyg4f-prompt").all_inner_texts()]
    text = history.inner_text()
    assert sorted(shown, key=text.index) == shown, (shown, text)
    screenshot(panel, shots_dir, "panel-follows-cells.png")
    assert_widgets_render(page)
    assert page.errors == []
