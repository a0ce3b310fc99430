"""Terminal IPython (no kernel, no cell ids): %%chat prints the answer as it
streams, and each execution is its own exchange."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pexpect
import pytest

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
    lines = out.stdout.splitlines()
    assert lines[0] == lines[2] == "Terminal streamed answer", out.stdout
    assert FOOTER.fullmatch(lines[1]) and FOOTER.fullmatch(lines[3]), "each answer has the footer"
    table = out.stdout[out.stdout.index("#  provider"):]
    assert table.count("same question") == 2, "no cell ids: each run is its own exchange"
    assert "known providers" in out.stdout + out.stderr
    prompts = [r.json["messages"] for r in protocol_server.requests]
    assert [m["content"] for m in prompts[1]] == ["same question", "Terminal streamed answer", "same question"]


# --- a real terminal IPython (prompt_toolkit) in a pty, 100 columns wide -----------------------------

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r")
FOOTER = re.compile(r"OpenAI \([^)]+\) · first token \d+\.\d s · total \d+\.\d s · "
                    r"(?:\d+ in / ≈?\d+ out tokens|≈?\d+ tokens out)(?: · ≈?\d+ tokens/s)?")


class Terminal:
    """``ipython`` in a pseudo-terminal, typed into as a user types (Esc+Enter runs a %%chat cell)."""

    def __init__(self, env: dict[str, str]):
        self.child = pexpect.spawn(sys.executable, ["-m", "IPython", "--no-banner", "--colors=NoColor",
                                                    "--HistoryManager.enabled=False",
                                                    "--TerminalInteractiveShell.confirm_exit=False"],
                                   env=env, dimensions=(50, 100), encoding="utf-8", timeout=60)
        self.count = 1
        self.prompt()

    def prompt(self) -> str:
        """What was printed until the next ``In [n]:`` prompt (escape codes and carriage returns removed)."""
        self.child.expect(rf"In \[{self.count}\]:")
        self.count += 1
        return ANSI.sub("", self.child.before)

    def line(self, text: str) -> str:
        self.child.send(text + "\r")
        return self.prompt()

    def cell(self, first: str, body: str) -> None:
        self.child.send(first + "\r" + body)
        self.child.send("\x1b\r")  # Esc, Enter: run the cell

    def close(self) -> None:
        try:
            self.child.sendeof()
            self.child.expect(pexpect.EOF)
        finally:
            self.child.close(force=True)


@pytest.fixture
def terminal(protocol_server, tmp_path):
    env = {"OPENAI_BASE_URL": protocol_server.base_url + "/v1", "OPENAI_API_KEY": "sk-test-terminal",
           "IPYG4F_DATA_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "xterm",
           "LANG": "C.UTF-8", "IPYTHONDIR": str(tmp_path / "ipython")}
    term = Terminal(env)
    term.line("%load_ext ipyg4f")
    yield term
    term.close()


def test_a_failure_is_one_line_in_a_terminal(terminal, protocol_server):
    protocol_server.fault = "http500"
    terminal.cell("%%chat -p OpenAI", "What is a quartile?")
    out = terminal.prompt()
    assert out.count("HTTP 500") == 1, out
    assert "✖ OpenAI: HTTP 500" in out and "[OpenAI failed" not in out
    assert "try: " in out
    assert not FOOTER.search(out) and "total" not in out, "nothing was received: the failure line says it all"


def test_an_interrupt_is_one_line_in_a_terminal(terminal, protocol_server):
    protocol_server.chunks = [f"part{i} " for i in range(400)]
    protocol_server.chunk_delay = 0.05
    terminal.cell("%%chat -p OpenAI", "A long answer, please")
    terminal.child.expect("part3 ")
    terminal.child.sendintr()
    out = terminal.prompt()
    assert out.count("stopped by interrupt") == 1, out
    assert "■ stopped by interrupt; partial answer kept" in out
    assert FOOTER.search(out), out


def test_the_footer_is_the_one_jupyter_shows(terminal, protocol_server):
    protocol_server.chunks = ["A quartile ", "splits sorted data ", "into four parts."]
    terminal.cell("%%chat -p OpenAI", "What is a quartile?")
    out = terminal.prompt()
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    answer = lines.index("A quartile splits sorted data into four parts.")
    assert FOOTER.fullmatch(lines[answer + 1]), lines[answer + 1]
    assert "[" not in lines[answer + 1]


def test_providers_fit_100_columns(terminal):
    out = terminal.line("%chat providers")
    lines = out.splitlines()
    assert any(line.startswith("provider") and "about" in line for line in lines), out
    assert any(line.startswith("ChatGptt") for line in lines)
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)


def test_a_table_is_wrapped_to_the_width_it_is_given_and_loses_no_word():
    from ipyg4f.render.table import text_table as _text_table

    rows = [["ChatGptt", "yes", "gpt-4, gpt-4o, gpt-4o-mini", "stream system history",
             "chatgptt.me, a WordPress chat page, no key (site retired)"],
            ["Acytoo", "no (marked not working)", "any", "history",
             "chat.acytoo.com, gpt-3.5-turbo, no key (dead; kept for reference)"]]
    headers = ["provider", "set up", "models", "supports", "about"]
    for width in (100, 80):
        table = _text_table(headers, rows, width)
        assert max(len(line) for line in table.splitlines()) <= width, table
        assert sorted("".join(table.split())) == sorted("".join(" ".join(headers + [c for r in rows for c in r])
                                                                 .split())), "no character lost"
    assert _text_table(headers, rows[:1], 200).count("\n") == 1, "one line a row when it fits"
    named = _text_table(headers, [["LlamaCppServer", *rows[0][1:]]], 80)
    assert named.splitlines()[1].startswith("LlamaCppServer  yes"), "the names are not wrapped"
    assert "(site retired)" in named
