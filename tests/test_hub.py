"""Pulling GGUF models from a local server that answers like the Hugging Face Hub (HF_ENDPOINT),
into a Hub cache in a temporary HF_HOME: pick, pull, resume, reuse offline, and the failures."""

from __future__ import annotations

import errno
import filecmp
import io
import socket
import struct

import pytest

from gguf_build import bundled_gguf
from hub_server import HubServer
from ipyg4f.errors import ChatFailed, ModelNotFoundError
from ipyg4f.providers.local import Local, hub
from ipyg4f.pull import describe_progress, pull as pull_with_bar

REPO = "acme/Tiny-GGUF"
BIG = "tiny-q4_k_m.gguf"


def _synthetic_gguf(path, megabytes: int):
    """A valid GGUF (header, metadata, one f32 tensor) of about ``megabytes`` MB: quick to serve."""
    def string(value: bytes) -> bytes:
        return struct.pack("<Q", len(value)) + value

    floats = megabytes * 1_000_000 // 4
    kv = [string(b"general.architecture") + struct.pack("<I", 8) + string(b"llama"),
          string(b"general.file_type") + struct.pack("<II", 4, 15)]
    head = b"GGUF" + struct.pack("<IQQ", 3, 1, len(kv)) + b"".join(kv)
    head += string(b"w") + struct.pack("<I", 1) + struct.pack("<Q", floats) + struct.pack("<IQ", 0, 0)
    head += b"\0" * (-len(head) % 32)
    with open(path, "wb") as f:
        f.write(head)
        f.write(bytes(range(256)) * (floats * 4 // 256) + b"\0" * (floats * 4 % 256))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub-files")
    small = _synthetic_gguf(folder / "small.gguf", 30)
    truncated = folder / "truncated.gguf"
    truncated.write_bytes(small.read_bytes()[:5_000_000])
    return {"small": small, "truncated": truncated}


@pytest.fixture
def server(files, tmp_path, monkeypatch):
    repos = {
        REPO: {BIG: bundled_gguf(), "README.md": files["small"]},
        "acme/Small-GGUF": {"small-Q4_K_M.gguf": files["small"], "small-Q8_0.gguf": files["small"],
                            "mmproj-small-f16.gguf": files["small"]},
        "acme/Choose-GGUF": {"small-Q5_K_M.gguf": files["small"], "small-Q8_0.gguf": files["small"]},
        "acme/Broken-GGUF": {"broken-Q4_K_M.gguf": files["truncated"]},
    }
    with HubServer(repos) as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.delenv("HF_HUB_CACHE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield srv


def _refused_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: connections are refused


# -- names and the choice of file -----------------------------------------------------------------


def test_references_and_the_rule_that_picks_a_file():
    assert hub.parse_ref("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF") == hub.Ref("Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    assert hub.parse_ref("a/b/sub/x-Q4_K_M.gguf") == hub.Ref("a/b", "sub/x-Q4_K_M.gguf")
    for bad in ("qwen", "hf:a", "a/b/readme.md", "a/b/../x.gguf"):
        with pytest.raises(ValueError):
            hub.parse_ref(bad)
    assert hub.quantization_of("qwen2.5-0.5b-instruct-q4_k_m.gguf") == "Q4_K_M"
    assert hub.quantization_of("Llama-3.2-3B-Instruct-IQ4_XS.gguf") == "IQ4_XS"
    assert hub.quantization_of("model-f16.gguf") == "F16"
    files = [("m-Q8_0.gguf", 9), ("m-Q4_K_M.gguf", 5), ("README.md", 1), ("mmproj-m-f16.gguf", 2)]
    assert hub.choose("a/b", files) == "m-Q4_K_M.gguf"
    assert hub.choose("a/b", [("only.gguf", 1), ("mmproj.gguf", 1)]) == "only.gguf"
    with pytest.raises(hub.AmbiguousFileError) as info:
        hub.choose("a/b", [("m-Q8_0.gguf", 9), ("m-Q5_K_M.gguf", 7)])
    assert info.value.choices == [("m-Q5_K_M.gguf", 7), ("m-Q8_0.gguf", 9)]
    with pytest.raises(hub.HubError, match="only split or projector"):
        hub.choose("a/b", [("m-00001-of-00002.gguf", 1), ("m-00002-of-00002.gguf", 1)])


# -- pulling --------------------------------------------------------------------------------------


def test_pull_picks_the_file_downloads_it_once_and_then_needs_no_network(server, monkeypatch):
    seen = []
    pulled = hub.pull(hub.parse_ref(REPO), seen.append)
    assert pulled.name == f"hf:{REPO}/{BIG}" and pulled.quantization == "Q4_K_M"
    assert filecmp.cmp(pulled.path, bundled_gguf(), shallow=False)
    assert "/hub/models--acme--Tiny-GGUF/snapshots/" in str(pulled.path)  # the Hub's own cache layout
    assert seen[-1].done == seen[-1].total == bundled_gguf().stat().st_size
    assert [p.done for p in seen] == sorted(p.done for p in seen) and len(seen) > 2
    assert len(server.gets(BIG)) == 1 and server.gets(BIG)[0].range is None

    # offline after: the Hub is gone and HF_HUB_OFFLINE is set; nothing is asked
    monkeypatch.setenv("HF_ENDPOINT", _refused_endpoint())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(server.requests)
    assert hub.pull(hub.parse_ref(REPO)).path == pulled.path
    assert hub.pull(hub.parse_ref(f"hf:{REPO}/{BIG}")).path == pulled.path
    assert Local.resolve_path(f"hf:{REPO}") == pulled.path
    assert f"hf:{REPO}/{BIG}" in Local.available_models()
    headers, rows = Local.model_table()
    row = next(r for r in rows if r[0] == f"hf:{REPO}/{BIG}")
    assert row[1:3] == ["253 MB", "Q4_K_M"]
    assert len(server.requests) == asked


def test_an_interrupted_pull_keeps_its_part_and_resumes_with_a_range_request(server):
    ref = hub.parse_ref("acme/Small-GGUF")  # three GGUF files: the Q4_K_M one is picked
    total = server.repos["acme/Small-GGUF"]["small-Q4_K_M.gguf"].stat().st_size

    def interrupt(progress):
        if progress.done >= 10_000_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hub.pull(ref, interrupt)
    parts = list((hub.cache_root() / "models--acme--Small-GGUF" / "blobs").glob("*.part"))
    assert len(parts) == 1
    kept = parts[0].stat().st_size
    assert 10_000_000 <= kept < total
    assert hub.local_path(ref) is None and "hf:acme/Small-GGUF/small-Q4_K_M.gguf" not in Local.available_models()

    seen = []
    pulled = hub.pull(ref, seen.append)
    first, second = server.gets("small-Q4_K_M.gguf")
    assert second.range == f"bytes={kept}-"
    assert second.sent == total - kept < first.sent + second.sent
    assert seen[0].resumed_from == kept and seen[-1].done == total
    assert filecmp.cmp(pulled.path, server.repos["acme/Small-GGUF"]["small-Q4_K_M.gguf"], shallow=False)
    assert not list(parts[0].parent.glob("*.part"))


def test_the_progress_line_says_size_speed_and_time_left(server):
    out = io.StringIO()
    result = pull_with_bar("acme/Small-GGUF", widget=False, stream=out)
    assert result.quantization == "Q4_K_M"
    line = out.getvalue()
    assert "pulling hf:acme/Small-GGUF: " in line and "MB/s" in line and " left" in line
    assert "30.0 MB / 30.0 MB" in line
    p = hub.Progress(done=60_000_000, total=250_000_000, resumed_from=10_000_000, started=100.0)
    assert describe_progress(p, now=102.0) == "60.0 MB / 250.0 MB · 25.0 MB/s · 8 s left · resumed at 10.0 MB"


@pytest.mark.parametrize("spec, expected", [
    ("acme/Nowhere-GGUF", "no repository acme/Nowhere-GGUF on http://127.0.0.1:"),
    ("acme/Tiny-GGUF/missing-Q4_K_M.gguf", "acme/Tiny-GGUF has no file 'missing-Q4_K_M.gguf'"),
    ("acme/Broken-GGUF", "hf:acme/Broken-GGUF/broken-Q4_K_M.gguf is not a valid GGUF model: it is truncated"),
    ("acme/Choose-GGUF", "acme/Choose-GGUF has 2 GGUF files and none is the Q4_K_M one"),
])
def test_failures_are_short_lines_and_leave_nothing_behind(server, spec, expected):
    with pytest.raises(ChatFailed) as info:
        pull_with_bar(spec, widget=False, stream=io.StringIO())
    lines = info.value.lines
    assert lines[0].startswith("✖ ") and expected in lines[0]
    assert not any("Traceback" in line for line in lines)
    if "Choose" in spec:
        assert any("small-Q5_K_M.gguf  (30.0 MB)" in line for line in lines)
    assert not list(hub.cache_root().glob("models--*/blobs/*"))  # no blob, no partial file
    assert not [p for p in hub.pulled() if p.name.startswith("hf:" + spec)]


def test_offline_and_unreachable_hub_are_said_plainly(server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubError, match="not on this machine and HF_HUB_OFFLINE is set"):
        hub.pull(hub.parse_ref(REPO))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", _refused_endpoint())
    with pytest.raises(hub.HubError, match=r"cannot reach http://127.0.0.1:\d+: the connection was refused"):
        hub.pull(hub.parse_ref(f"{REPO}/{BIG}"))
    with pytest.raises(ModelNotFoundError, match="is not pulled yet") as info:
        Local.resolve_path(f"hf:{REPO}")  # the provider itself never downloads
    assert f"%chat pull {REPO}" in info.value.hint


class _Counted:
    """Counts the name look-ups and connections to ``host`` (every HTTP client goes through these)."""

    def __init__(self, monkeypatch, host: str):
        self.host, self.lookups, self.connects = host, 0, 0
        real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect

        def lookup(name, *args, **kwargs):
            self.lookups += name == host
            return real_lookup(name, *args, **kwargs)

        def connect(sock, address):
            self.connects += isinstance(address, tuple) and address[0] in (host, "127.0.0.1")
            return real_connect(sock, address)

        monkeypatch.setattr(socket, "getaddrinfo", lookup)
        monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.mark.parametrize("where", ["refused", "unresolvable"])
def test_pull_offline_fails_at_the_first_attempt_in_one_line(where, monkeypatch, tmp_path, capfd):
    """No Hub client retries (5 of them, 30 s, each printed on stderr): one attempt, one line."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    endpoint = _refused_endpoint() if where == "refused" else "http://no-such-hub.invalid"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    counted = _Counted(monkeypatch, "no-such-hub.invalid" if where == "unresolvable" else "127.0.0.1")
    with pytest.raises(ChatFailed) as info:
        pull_with_bar(REPO, widget=False, stream=io.StringIO())  # no file named: the tree listing retried before
    first, *rest = info.value.lines
    expected = "the connection was refused" if where == "refused" else "the name no-such-hub.invalid does not resolve"
    assert first == f"✖ cannot reach {endpoint}: {expected}" + ("" if where == "refused" else " (offline?)")
    assert [line for line in rest if not line.startswith("  try: ")] == []
    assert counted.lookups + counted.connects <= 2, "one attempt, not the Hub client's retries"
    err = capfd.readouterr().err
    assert "Retrying" not in err and "thrown while requesting" not in err


def test_a_full_disk_is_said_before_and_during_the_download(server, monkeypatch):
    import shutil
    from collections import namedtuple

    usage, real_usage = namedtuple("usage", "total used free"), shutil.disk_usage
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(hub.HubError, match=r"the disk is full \(1.0 kB free in .*; 30.0 MB more are needed\)"):
        hub.pull(hub.parse_ref("acme/Small-GGUF/small-Q8_0.gguf"))
    monkeypatch.setattr(hub.shutil, "disk_usage", real_usage)

    import huggingface_hub.file_download as fd

    real = fd.http_get

    def full_after_5_mb(url, temp_file, **kwargs):
        class Full(io.RawIOBase):
            def write(self, data):
                room = 5_000_000 - temp_file.tell()
                temp_file.write(data[:max(room, 0)])  # what fits is written, then the disk is full
                if len(data) > room:
                    raise OSError(errno.ENOSPC, "No space left on device")
                return len(data)

            def tell(self):
                return temp_file.tell()

        return real(url, Full(), **kwargs)

    monkeypatch.setattr(fd, "http_get", full_after_5_mb)
    with pytest.raises(hub.HubError, match="the disk is full") as info:
        hub.pull(hub.parse_ref("acme/Small-GGUF/small-Q8_0.gguf"))
    assert "pull again: it resumes from the 5.0 MB already in" in info.value.hint


def test_without_hf_endpoint_the_hubs_own_address_is_used():
    """No HF_ENDPOINT (every other test sets one): the client's default, read without touching the network
    (``huggingface_hub.constants`` is a lazy submodule; reading it as an attribute failed).  In a fresh
    process: the client reads HF_ENDPOINT once, when it is imported."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "HF_ENDPOINT"}
    code = "from ipyg4f.providers.local import hub; print(hub._endpoint(hub._hub()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "https://huggingface.co"
