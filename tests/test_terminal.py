"""Terminal IPython (no kernel, no cell ids): %%chat prints the answer as it
streams, and each execution is its own exchange."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    ip = TerminalInteractiveShell.instance()
    ip.run_cell("%load_ext ipyg4f")
    ip.run_cell("%%chat -p OpenAI\\nsame question")
    ip.run_cell("%%chat -p OpenAI\\nsame question")
    ip.run_cell("%chat history")
    r = ip.run_cell("%%chat -p NoSuch\\nx")
    print("usage error:", type(r.error_in_exec).__name__)
''')


def test_terminal_ipython_streams_and_keeps_each_run(protocol_server, tmp_path):
    protocol_server.chunks = ["Terminal ", "streamed ", "answer"]
    env = {"OPENAI_BASE_URL": protocol_server.base_url + "/v1", "IPYG4F_DATA_DIR": str(tmp_path),
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Terminal streamed answer\n" * 2), out.stdout
    table = out.stdout[out.stdout.index("#  provider"):]
    assert table.count("same question") == 2, "no cell ids: each run is its own exchange"
    assert "known providers" in out.stdout + out.stderr
    prompts = [r.json["messages"] for r in protocol_server.requests]
    assert [m["content"] for m in prompts[1]] == ["same question", "Terminal streamed answer", "same question"]
