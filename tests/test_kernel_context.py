"""``--with``, ``--error`` / ``%chat fix`` and ``--image last`` in a real ipykernel (inline matplotlib,
pandas), against the local protocol server, which records the exact request bodies."""

from __future__ import annotations

import matplotlib  # noqa: F401 - pinned (the kernel imports it): missing is a failure, not a skip
import pandas  # noqa: F401
import pytest

# the kernel of test_kernel_chat (OpenAI against the protocol server), one per module
from test_kernel_chat import data_dir, fresh, kernel, sent_messages, server, thread  # noqa: F401

pytestmark = pytest.mark.kernel


def last_user_content(server):
    return sent_messages(server)[-1]["content"]


def test_image_last_sends_the_inline_plot_the_cell_showed(kernel, server):
    plot = kernel.ok("%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    [shown] = [m["content"]["data"]["image/png"] for m in plot.of_type("display_data")
               if "image/png" in m["content"]["data"]]
    ex = kernel.ok(f"%%chat -c {thread()} --image last\nWhat does the plot show?")
    text, image = last_user_content(server)
    assert image == {"type": "image_url", "image_url": {"url": "data:image/png;base64," + shown.strip()}}
    assert text["text"].endswith("What does the plot show?")
    html = ex.final()["data"]["text/html"]
    assert '<details class="ipyg4f-context"' in html and "<code>last image</code> — image, image/png" in html
    assert ex.final()["metadata"]["ipyg4f"]["context"][0]["kind"] == "image"


def test_with_a_dataframe_in_the_kernel_and_a_name_that_is_escaped(kernel, server):
    kernel.ok("import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo', None], 'temp': [3.5, 4.0]})\n"
              "d = {'<img src=x onerror=alert(1)>': 1}")
    ex = kernel.ok(f"%%chat -c {thread()} --with \"df,d['<img src=x onerror=alert(1)>']\"\nWarmest city?")
    content = last_user_content(server)
    assert "pandas DataFrame: 2 rows x 2 columns" in content and "'temp': float64, 0 null" in content
    html = ex.final()["data"]["text/html"]
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_error_and_fix_in_the_kernel_use_the_cells_source(kernel, server):
    failed = kernel.run("values = [1, 2]\ntotal = sum(values) / (len(values) - 2)")
    assert failed.status == "error"
    server.answer = "Division by zero.\n\n```python\ntotal = sum(values) / len(values)\n```"
    kernel.ok(f"%chat fix -c {thread()} -f code")
    content = last_user_content(server)
    assert "ZeroDivisionError: division by zero" in content
    assert "Source of the cell that raised" in content and "total = sum(values) / (len(values) - 2)" in content
    assert "site-packages" not in content
