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
