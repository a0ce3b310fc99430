"""The read-only ``notebook`` toolset and ``run_python`` over a real (terminal) IPython shell."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from ipyg4f.agent.notebook import list_variables, notebook_context, notebook_tools, read_cells
from ipyg4f.context.lasterror import track, untrack
from ipyg4f.agent.python import python_tool, run_python
from ipyg4f.agent.tool import PYTHON, READ, ToolError


@pytest.fixture
def shell():
    from IPython.terminal.interactiveshell import TerminalInteractiveShell

    main = sys.modules["__main__"]  # reset() installs the shell's own __main__ (multiprocessing's spawn
    ip = TerminalInteractiveShell.instance()  # in a later test needs the real one back)
    ip.reset(new_session=True)
    track(ip)  # what %load_ext does: the last error, and which cell raised what
    yield ip
    untrack(ip)
    ip.reset(new_session=True)
    sys.modules["__main__"] = main


def tools(shell, budget=4000):
    return {t.name: t for t in notebook_tools(shell, budget)}


class Lazy:
    """Every way of looking at it raises: listing it must not touch any of them."""

    @property
    def shape(self):
        raise AssertionError("a property was evaluated")

    def __len__(self):
        raise AssertionError("__len__ was called")

    def __repr__(self):
        raise AssertionError("__repr__ was called")


def test_list_variables_gives_types_and_sizes_without_calling_anything(shell):
    shell.run_cell("import math\ndef helper(): pass\nclass Thing: pass", store_history=True)
    shell.user_ns.update(n=3, name="Ada", rows=[1, 2, 3], lazy=Lazy(), df=pd.DataFrame({"a": [1.0, None]}),
                         arr=np.zeros((2, 5)), _private=1)
    text = tools(shell)["list_variables"].call({})
    lines = text.splitlines()
    assert "n: int = 3" in lines and "name: str of 3 characters = 'Ada'" in lines
    assert "rows: list of 3 items" in lines
    assert any(line.startswith("df: pandas.") and line.endswith("DataFrame, shape (2, 1)") for line in lines)
    assert "arr: numpy.ndarray, shape (2, 5), dtype float64" in lines
    assert f"lazy: {__name__}.Lazy" in lines
    assert "Thing: class" in lines
    for hidden in ("math", "helper", "_private", "In", "Out", "exit", "get_ipython"):
        assert not any(line.startswith(f"{hidden}:") for line in lines), hidden
    assert tools(shell)["list_variables"].kind == READ


def test_describe_is_the_with_description_and_a_bad_name_is_a_tool_error(shell):
    shell.user_ns["df"] = pd.DataFrame({"revenue": [1.0, None, 3.0]})
    text = tools(shell)["describe"].call({"name": "df"})
    assert text.startswith("pandas DataFrame: 3 rows x 1 columns")
    assert "'revenue': float64, 1 null" in text
    with pytest.raises(ToolError, match="'nope' is not defined"):
        tools(shell)["describe"].call({"name": "nope"})
    with pytest.raises(ToolError, match="no calls or operators"):
        tools(shell)["describe"].call({"name": "df.drop('revenue')"})
    shell.user_ns["big"] = "x" * 10_000
    assert len(tools(shell, budget=500)["describe"].call({"name": "big"})) <= 500


def test_read_cells_in_execution_order_with_results_and_errors(shell):
    shell.run_cell("x = 21", store_history=True)
    shell.run_cell("x * 2", store_history=True)
    shell.run_cell("1 / 0", store_history=True)
    shell.run_cell("print('hi')", store_history=True)
    text = tools(shell)["read_cells"].call({})
    assert text == ("In [1]:\nx = 21\nIn [2]:\nx * 2\nOut[2]: 42\nIn [3]:\n1 / 0\n"
                    "Error in [3]: ZeroDivisionError: division by zero\nIn [4]:\nprint('hi')")
    assert read_cells(shell, 2, 3).startswith("In [2]:") and "In [4]" not in read_cells(shell, 2, 3)
    assert read_cells(shell, 9, 12) == "no executed cells in that range (cells 1 to 4 exist)"
    assert len(tools(shell, budget=60)["read_cells"].call({"start": 1, "end": 4})) <= 60


def test_the_notebook_as_context_keeps_the_newest_cells_that_fit(shell):
    for n in range(1, 6):
        shell.run_cell(f"value_{n} = {n}  # cell {n}", store_history=True)
    whole = notebook_context(shell, 10_000)
    assert whole.startswith("In [1]:") and whole.endswith("value_5 = 5  # cell 5")
    cell = len("In [5]:\nvalue_5 = 5  # cell 5") + 1
    note = len("[3 older cells left out to fit]\n")
    two = notebook_context(shell, 2 * cell + note)
    assert two == "[3 older cells left out to fit]\nIn [4]:\nvalue_4 = 4  # cell 4\nIn [5]:\nvalue_5 = 5  # cell 5"
    assert len(two) <= 2 * cell + note
    assert notebook_context(shell, 2 * cell + 5).startswith("[4 older cells left out to fit]\nIn [5]:")
    assert notebook_context(shell, 10) == ""


def test_last_error_is_the_error_attachment_and_none_says_so(shell, monkeypatch):
    monkeypatch.delattr(sys, "last_value", raising=False)
    with pytest.raises(ToolError, match="no error to attach"):
        tools(shell)["last_error"].call({})
    shell.run_cell("def ratio(a, b):\n    return a / b\nratio(1, 0)", store_history=True)
    text = tools(shell)["last_error"].call({})
    assert text.startswith("ZeroDivisionError: division by zero") and "return a / b" in text


def test_list_variables_is_bounded():
    text = list_variables({f"v{i}": i for i in range(250)})
    assert text.splitlines()[-1] == "… 50 more" and len(text.splitlines()) == 201
    assert list_variables({}) == "no variables defined yet"


# --- run_python ----------------------------------------------------------------------------


def test_run_python_runs_in_the_namespace_and_returns_printed_output_and_the_last_value(shell, capsys):
    shell.user_ns["x"] = 20
    tool = python_tool(shell)
    assert tool.kind == PYTHON
    result = tool.call({"code": "y = x + 1\nprint('y is', y)\ny * 2"})
    assert result.text == "printed:\ny is 21\nresult: 42"
    assert result.displays == ()
    assert shell.user_ns["y"] == 21
    assert capsys.readouterr().out == "y is 21\n"  # still shown in the cell


def test_run_python_returns_the_error_with_the_models_own_lines(shell):
    result = run_python("a = 1\nb = [1, 2]\nb[a + 5]", shell.user_ns, shell)
    assert result == "error: IndexError: list index out of range\n  line 3: b[a + 5]"
    assert run_python("def f(:\n  pass", {}) == "SyntaxError: invalid syntax (line 1): def f(:"
    assert run_python("raise SystemExit(3)", {}).startswith("error: SystemExit: 3")


def test_run_python_compiles_the_code_as_a_cell_would_not_with_ipyg4fs_future_flags():
    # ipyg4f's modules use "from __future__ import annotations"; the model's code must not inherit it
    assert run_python("def f(x: nowhere):\n    pass", {}) == \
        "error: NameError: name 'nowhere' is not defined\n  line 1: def f(x: nowhere):"


def test_run_python_knows_magics_and_says_when_nothing_came_back(shell):
    assert run_python("z = 5", shell.user_ns, shell) == "done (no output, no value)"
    assert run_python("%time w = z + 1\nw", shell.user_ns, shell).endswith("result: 6")


def test_run_python_output_is_bounded_and_says_so(shell, capsys):
    result = run_python("for i in range(1000): print('line', i)", {}, budget=300)
    assert len(result) <= 300 and "cut here" in result
    assert capsys.readouterr().out.count("line") == 1000  # the cell shows all of it


def test_an_interrupt_in_the_code_is_not_caught(shell):
    with pytest.raises(KeyboardInterrupt):
        run_python("raise KeyboardInterrupt", shell.user_ns, shell)
    assert sys.stdout is not None and type(sys.stdout).__name__ != "_Tee"


def test_run_python_keeps_only_what_its_own_thread_prints():
    import threading

    started, printed = threading.Event(), threading.Event()

    def other() -> None:
        started.wait(30)
        print("the user's cell prints this")
        printed.set()

    thread = threading.Thread(target=other)
    thread.start()
    namespace = {"started": started, "printed": printed}
    result = run_python("started.set()\nprinted.wait(30)\nprint('mine')", namespace)
    thread.join(30)
    assert result == "printed:\nmine"
