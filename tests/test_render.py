"""Rendering units: sanitised Markdown, code extraction, the throttle."""

from __future__ import annotations

from ipyg4f.render import Throttle, answer_bundle, code_block, markdown_to_html


def test_untrusted_markdown_cannot_carry_script():
    html = markdown_to_html('<script>alert(1)</script> <img src=x onerror=alert(2)> [a](javascript:alert(3)) **ok**')
    assert "<script" not in html and "<img" not in html and "href" not in html
    assert "<strong>ok</strong>" in html


def test_code_block_takes_the_first_fence_and_its_language():
    assert code_block("text\n```bash\nls -l\n```\nmore") == ("ls -l", "bash")
    assert code_block("```\nx = 1\n") == ("x = 1", "")
    assert code_block("no fence at all\n") == ("no fence at all", "")
    bundle = answer_bundle("see:\n```sql\nSELECT 1;\n```", "code")
    assert bundle["text/plain"] == "SELECT 1;" and bundle["text/markdown"].startswith("```sql\n")


def test_throttle_spaces_updates_by_rate_and_by_size():
    now = [0.0]
    throttle = Throttle(rate=20, budget=1000, clock=lambda: now[0])
    assert throttle.ready()
    throttle.mark(10)  # small: the rate decides (50 ms)
    now[0] = 0.049
    assert not throttle.ready()
    now[0] = 0.05
    assert throttle.ready()
    throttle.mark(500)  # large: the size budget decides (500 characters at 1000/s = 0.5 s)
    now[0] = 0.5
    assert not throttle.ready() and abs(throttle.wait_time() - 0.05) < 1e-9
    now[0] = 0.55
    assert throttle.ready()


def test_media_sources_and_login_links_are_rendered_safely():
    from ipyg4f.events import LoginRequired, Media, Sources
    from ipyg4f.render.html import extras_html
    from ipyg4f.runner import Answer

    answer = Answer("P")
    for event in (Media("image", "https://example.test/a.png", 'a "plot"'),
                  Media("image", "javascript:alert(1)"), Media("image", "data:image/png;base64,iVBOR"),
                  Media("audio", "data:text/html,<script>x</script>"),
                  Sources((("https://example.test/s", "<b>Source</b>"), ("javascript:alert(2)", "bad"))),
                  LoginRequired("https://example.test/login", "Example")):
        answer.feed(event)
    html = extras_html(answer)
    assert '<img src="https://example.test/a.png" alt="a &quot;plot&quot;"' in html
    assert 'src="data:image/png;base64,iVBOR"' in html
    assert "javascript:" not in html and "<script" not in html and "data:text/html" not in html
    assert '<a href="https://example.test/s">&lt;b&gt;Source&lt;/b&gt;</a>' in html
    assert '<a href="https://example.test/login">Example</a>' in html


def test_thinking_is_open_only_while_it_is_all_there_is():
    from ipyg4f.render import thinking_html

    live = thinking_html("step **one**", open_=True, live=True)
    assert live.startswith('<details class="ipyg4f-thinking" open') and "Thinking…" in live and "▌" in live
    done = thinking_html("step **one**", open_=False)
    assert done.startswith('<details class="ipyg4f-thinking" style') and "<strong>one</strong>" in done
    assert thinking_html("", open_=True) == ""
    assert "<script" not in thinking_html("<script>alert(1)</script>", open_=False)
