"""Values -> bounded, typed descriptions (``--with``, ``--error``) and images (``--image``), without a shell."""

from __future__ import annotations

import io
import sys

import pytest

from ipyg4f.context.values import (Attachment, ContextError, attach, context_block, describe, evaluate, fit, split_exprs,
                            user_content)
from ipyg4f.context.displayed import DisplayCapture
from ipyg4f.context.images import attach_image, image_bytes

import numpy as np  # pinned in the test extra, like pandas, polars and matplotlib
import pandas as pd


class Model:
    def __init__(self):
        self.coef_ = [0.5, -1.25]


class Exploding:
    """An object whose repr and one attribute raise."""

    def __repr__(self):
        raise ValueError("no repr for you")

    @property
    def weights(self):
        raise RuntimeError("lazy load failed")


NS = {"df": pd.DataFrame({"x": [1.0, None, 3.0], "label": ["a", "b", None]}), "model": Model(),
      "data": {"train": [1, 2, 3], "a,b": 1}, "Out": {12: "twelve"}, "key": "train", "bad": Exploding()}


@pytest.mark.parametrize("expr, expected", [
    ("model.coef_", [0.5, -1.25]),
    ('data["train"]', [1, 2, 3]),
    ("data[key]", [1, 2, 3]),
    ("Out[12]", "twelve"),
    ('data["train"][-1]', 3),
])
def test_evaluate_reads_names_attributes_and_indexes(expr, expected):
    assert evaluate(expr, NS) == expected


@pytest.mark.parametrize("expr, words", [
    ("print('x')", "only names, attributes and indexes"),
    ("df.x + 1", "only names, attributes and indexes"),
    ("data[len(key)]", "an index must be a constant or a name"),
    ("model.__class__", "dunder attributes are not read"),
    ("nothing", "'nothing' is not defined"),
    ("bad.weights", "bad.weights: reading it raised RuntimeError: lazy load failed"),
    ("data['missing']", "reading it raised KeyError"),
    ("1 +", "is not a name"),
])
def test_evaluate_refuses_everything_else_with_a_short_message(expr, words):
    with pytest.raises(ContextError, match=None) as caught:
        evaluate(expr, NS)
    assert words in str(caught.value)


def test_split_keeps_commas_inside_brackets():
    assert split_exprs('df, data["a,b"], model.coef_') == ["df", 'data["a,b"]', "model.coef_"]
    assert split_exprs("df") == ["df"]
    assert split_exprs("\"d['a b'], df\"") == ["d['a b']", "df"]  # the magic keeps quotes around a spec


def test_a_dataframe_gives_shape_dtypes_nulls_rows_and_memory():
    kind, text = describe(NS["df"])
    assert kind == "DataFrame"
    assert "3 rows x 2 columns" in text
    assert "'x': float64, 1 null" in text and "'label':" in text and "1 null" in text.split("'label':")[1]
    assert "memory:" in text and "NaN" in text


def test_a_long_dataframe_shows_head_and_tail_only():
    df = pd.DataFrame({"n": np.arange(1000)})
    text = describe(df)[1]
    assert "first 3 rows" in text and "last 3 rows" in text
    assert " 999" in text and " 500" not in text


def test_a_ten_million_row_dataframe_is_described_without_copying():
    n = 10_000_000
    df = pd.DataFrame({"i": np.arange(n), "f": np.ones(n)})
    df.loc[7, "f"] = np.nan
    before = df["f"].to_numpy()
    text = describe(df)[1]  # its speed is measured by benchmarks/describe_dataframe.py, not here
    assert "10,000,000 rows" in text and "'f': float64, 1 null" in text
    assert np.shares_memory(before, df["f"].to_numpy())  # nothing replaced the column's data


def test_a_polars_frame_gives_shape_dtypes_nulls_rows_and_memory():
    import polars as pl
    df = pl.DataFrame({"n": list(range(1000)), "s": ["a", None] * 500})
    kind, text = describe(df)
    assert kind == "polars DataFrame" and "1,000 rows x 2 columns" in text
    assert "'n': Int64, 0 null" in text and "'s': String, 500 null" in text and "(estimated)" in text
    assert "first 3 rows" in text and "last 3 rows" in text and "999" in text and "500 " not in text.split("rows:")[-1]
    kind, text = describe(df["s"])
    assert kind == "polars Series" and "'s': String, 500 null" in text


def test_a_numpy_array_gives_shape_dtype_values_and_stats():
    kind, text = describe(np.arange(12, dtype=np.int32).reshape(3, 4))
    assert kind == "ndarray"
    assert "shape (3, 4), dtype int32" in text and "min 0 / max 11 / mean 5.5" in text
    _, text = describe(np.array([1.0, np.nan, 3.0]))
    assert "has NaN; without them: min 1 / max 3" in text


def test_collections_functions_and_anything_else():
    assert describe(list(range(100)))[1].startswith("list of 100 items:")
    assert "… 90 more" in describe(list(range(100)))[1]
    kind, text = describe(NS["data"])
    assert kind == "dict" and "'train': [1, 2, 3]" in text

    def area(width: float, height: float = 1.0) -> float:
        """The area of a rectangle."""
        return width * height

    kind, text = describe(area)
    assert kind == "function" and "area(width: 'float', height: 'float' = 1.0) -> 'float'" in text
    assert "The area of a rectangle." in text
    kind, text = describe(Model())
    assert kind.endswith("Model") and "Model object" in text


def test_a_description_fits_the_budget_and_says_where_it_was_cut():
    [a] = attach(["big"], {"big": "x" * 10_000}, budget=500)
    assert len(a.text) <= 500 and a.cut
    assert a.text.startswith("str of 10,000 characters:\nxxx")
    assert a.text.endswith("[… cut here: 500 of 10,026 characters]")
    assert "cut" in a.size
    assert fit("short", 500) == ("short", False)


def test_an_object_whose_repr_raises_gives_a_short_message():
    with pytest.raises(ContextError) as caught:
        attach(["bad"], NS, budget=500)
    assert str(caught.value) == "bad: describing it raised ValueError: no repr for you"
    [listed] = attach(["items"], {"items": [NS["bad"]]}, budget=500)  # inside a collection: reprlib's placeholder
    assert "Exploding" in listed.text


def test_the_user_message_puts_a_delimited_block_before_the_prompt():
    a = Attachment("n", "int", "int: 3")
    assert context_block([]) == ""
    assert user_content("why?", [a]) == ('<context>The user attached these from their Python session:\n'
                                         '<attachment name="n" kind="int">\nint: 3\n</attachment>\n</context>\n\nwhy?')
    assert user_content("why?", []) == "why?"


def test_images_become_content_parts_with_data_urls():
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    parts = user_content("what is this?", [Attachment("img", "image", data=png, mime="image/png")])
    assert parts[0]["type"] == "text" and parts[0]["text"].endswith("what is this?")
    assert '[image: image/png, 28 bytes]' in parts[0]["text"]
    assert parts[1] == {"type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgowMDAwMDAwMDAwMDAwMDAwMDAwMA=="}}


def test_image_values_figure_pil_bytes_path(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    assert image_bytes(fig)[0] == "image/png" and image_bytes(ax)[1].startswith(b"\x89PNG")
    plt.close(fig)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(buffer, format="JPEG")
    assert image_bytes(Image.new("RGB", (4, 4)))[0] == "image/png"
    assert image_bytes(buffer.getvalue())[0] == "image/jpeg"
    assert image_bytes(b"not an image") is None
    path = tmp_path / "plot.png"
    Image.new("L", (2, 2)).save(path)
    assert attach_image("p", {"p": str(path)}, None).mime == "image/png"
    assert attach_image(str(path), {}, None).data == path.read_bytes()
    with pytest.raises(ContextError, match="a int is not an image"):
        attach_image("n", {"n": 3}, None)


class _Publisher:
    def __init__(self):
        self.published = []

    def publish(self, data, metadata=None, **kwargs):
        self.published.append(data)


class _Shell:
    def __init__(self):
        self.display_pub = _Publisher()
        self.execution_count = 5  # IPython counts up before a cell runs: this is cell 4


def test_the_display_capture_remembers_the_last_image_and_unwraps_on_remove():
    import base64

    shell = _Shell()
    capture = DisplayCapture(shell)
    capture.install()
    png = b"\x89PNG\r\n\x1a\n" + b"1" * 8
    shell.display_pub.publish({"text/plain": "<Figure>", "image/png": base64.b64encode(png).decode()})
    shell.display_pub.publish({"text/plain": "just text"})
    assert len(shell.display_pub.published) == 2  # every display still goes out
    assert capture.last == ("image/png", png) and capture.of_cell(4) == ("image/png", png)
    assert attach_image("last", {}, capture).data == png
    assert attach_image("Out[4]", {"Out": {}}, capture).data == png  # the cell displayed it, returned nothing
    capture.remove()
    assert "publish" not in vars(shell.display_pub)
    shell.display_pub.publish({"image/png": base64.b64encode(b"\x89PNG\r\n\x1a\nother").decode()})
    assert capture.last == ("image/png", png)


def test_modules_the_user_did_not_import_are_not_imported():
    import subprocess

    code = ("import sys; from ipyg4f.context.values import describe; describe([1]); describe(object()); "
            "print(sorted(m for m in ('pandas', 'numpy', 'matplotlib', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr
