"""Loading the extension is cheap and clean: nothing heavy is imported, and
unloading removes what loading added."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import sys
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    ip = TerminalInteractiveShell.instance()
    before_cb = len(ip.events.callbacks["pre_run_cell"])
    ip.run_line_magic("load_ext", "ipyg4f")
    heavy = sorted(m for m in ("aiohttp", "ipywidgets", "markdown_it", "nh3", "xllamacpp",
                               "ipyg4f.providers", "ipyg4f.http") if m in sys.modules)
    print("heavy:", heavy)
    print("magics:", "chat" in ip.magics_manager.magics["cell"], "chat" in ip.magics_manager.magics["line"])
    ip.run_line_magic("unload_ext", "ipyg4f")
    print("after unload:", "chat" in ip.magics_manager.magics["cell"], "chat" in ip.magics_manager.magics["line"],
          len(ip.events.callbacks["pre_run_cell"]) == before_cb,
          not any(type(c).__module__.startswith("ipyg4f") for c in ip.configurables))
''')


def test_load_imports_nothing_heavy_and_unload_undoes_load(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert "heavy: []" in out.stdout, out.stdout
    assert "magics: True True" in out.stdout
    assert "after unload: False False True True" in out.stdout
