"""The Hub cache, read without the network: ``hf:`` model names, which file of a repository, what is pulled.

``hf:REPO[/FILE]`` names a model (``hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF`` or
``hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf``).
:func:`local_path` and :func:`pulled` read the cache only (no network, no
``huggingface_hub`` import): a model on disk is used as it is.  The layout is
the Hub's (``models--OWNER--NAME/blobs``, ``snapshots/<commit>``,
``refs/<revision>``), so ``hf download`` and other tools see the same files.
Downloading is :mod:`.hub`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import ProviderError
from .common import NAME

__all__ = ["PREFIX", "PREFERRED", "DEFAULT_REVISION", "Ref", "Progress", "Pulled", "HubError", "AmbiguousFileError",
           "parse_ref", "quantization_of", "cache_root", "choose", "local_path", "pulled"]

PREFIX = "hf:"
#: the quantisation picked when a repository has several GGUF files (a good size/quality balance)
PREFERRED = "Q4_K_M"
DEFAULT_REVISION = "main"

_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
_QUANT = re.compile(r"(?:^|[-_.])((?:IQ|Q)\d_[A-Z0-9_]*?(?:_[SML]|_XXS|_XS|_NL|_0|_1|_K)?|BF16|F16|F32)(?=[-_.]|$)",
                    re.IGNORECASE)


class HubError(ProviderError):
    """A pull that could not be done; the message says why in one line."""


class AmbiguousFileError(HubError):
    """The repository holds several GGUF files and none is the preferred one: the user picks."""

    def __init__(self, repo: str, choices: list[tuple[str, int | None]]):
        self.repo = repo
        self.choices = choices
        super().__init__(f"{repo} has {len(choices)} GGUF files and none is the {PREFERRED} one: "
                         "name the one you want", provider=NAME,
                         hint=f"%chat pull {repo} FILE, with FILE one of those listed")


@dataclass(frozen=True)
class Ref:
    repo: str
    file: str | None = None
    revision: str = DEFAULT_REVISION

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.repo}/{self.file}" if self.file else f"{PREFIX}{self.repo}"


@dataclass(frozen=True)
class Progress:
    """How far a download is: ``done`` of ``total`` bytes, ``resumed_from`` of them already on disk."""

    done: int
    total: int | None
    resumed_from: int
    started: float  #: time.monotonic() when this download started


@dataclass(frozen=True)
class Pulled:
    """A GGUF file in the cache."""

    ref: Ref
    path: Path
    size: int

    @property
    def name(self) -> str:
        return self.ref.name

    @property
    def quantization(self) -> str:
        return quantization_of(self.ref.file or self.path.name)


def parse_ref(text: str) -> Ref:
    """``hf:OWNER/NAME[/FILE]`` (the ``hf:`` prefix optional) -> :class:`Ref`; a ValueError says what is wrong."""
    body = text[len(PREFIX):] if text.startswith(PREFIX) else text
    body = body.strip().strip("/")
    parts = body.split("/")
    repo = "/".join(parts[:2])
    if len(parts) < 2 or not _REPO.match(repo):
        raise ValueError(f"{text!r} is not a Hub repository: write OWNER/NAME[/FILE.gguf], "
                         "e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF")
    file = "/".join(parts[2:]) or None
    if file is not None and (".." in file.split("/") or not file.lower().endswith(".gguf")):
        raise ValueError(f"{file!r} is not a GGUF file name (it should end in .gguf)")
    return Ref(repo, file)


def quantization_of(filename: str) -> str:
    """``qwen2.5-0.5b-instruct-q4_k_m.gguf`` -> ``Q4_K_M`` ("" when the name does not say)."""
    stem = Path(filename).name[:-5] if filename.lower().endswith(".gguf") else Path(filename).name
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else ""


def choose(repo: str, files: list[tuple[str, int | None]]) -> str:
    """The GGUF file to pull from ``files`` ((name, size) pairs): the rule of ``%chat pull REPO``.

    Split files (``-00001-of-00003``) and vision projectors (``mmproj``) are left out.  The one
    file left is taken; else the one whose name says ``Q4_K_M``; else
    :class:`AmbiguousFileError` lists the choices.
    """
    ggufs = [(f, s) for f, s in files if f.lower().endswith(".gguf")]
    usable = [(f, s) for f, s in ggufs if not _SHARD.search(f) and "mmproj" not in Path(f).name.lower()]
    if not usable:
        what = "only split or projector GGUF files" if ggufs else "no GGUF file"
        raise HubError(f"{repo} has {what}; ipyg4f needs a single-file GGUF model", provider=NAME,
                       hint="pick a repository whose name ends in -GGUF")
    if len(usable) == 1:
        return usable[0][0]
    preferred = [(f, s) for f, s in usable if quantization_of(f) == PREFERRED]
    if len(preferred) == 1:
        return preferred[0][0]
    raise AmbiguousFileError(repo, sorted(preferred or usable))


# -- the cache (no network) -----------------------------------------------------------------------


def cache_root() -> Path:
    """The Hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``
    (read now, so that a change of the environment in a running kernel counts)."""
    if env := os.environ.get("HF_HUB_CACHE"):
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def _repo_dir(repo: str) -> Path:
    return cache_root() / ("models--" + repo.replace("/", "--"))


def _snapshot(repo: str, revision: str) -> Path | None:
    folder = _repo_dir(repo)
    ref = folder / "refs" / revision
    try:
        commit = ref.read_text().strip() if ref.is_file() else revision
    except OSError:
        return None
    snapshot = folder / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def _files_in(snapshot: Path) -> list[tuple[str, int | None]]:
    found = []
    for path in sorted(snapshot.rglob("*")):
        if path.is_file() and path.name.lower().endswith(".gguf"):
            found.append((path.relative_to(snapshot).as_posix(), path.stat().st_size))
    return found


def local_path(ref: Ref) -> Path | None:
    """The file ``ref`` names, if it is in the cache (by :func:`choose`'s rule when no file is named)."""
    snapshot = _snapshot(ref.repo, ref.revision)
    if snapshot is None:
        return None
    file = ref.file
    if file is None:
        files = _files_in(snapshot)
        if not files:
            return None
        file = choose(ref.repo, files)
    path = snapshot / file
    return path if path.is_file() else None


def pulled() -> list[Pulled]:
    """Every single-file GGUF model in the Hub cache, by name."""
    root = cache_root()
    found: dict[str, Pulled] = {}
    for folder in sorted(root.glob("models--*--*")):
        repo = folder.name[len("models--"):].replace("--", "/", 1)
        snapshots = folder / "snapshots"
        for snapshot in sorted(snapshots.glob("*"), key=lambda p: p.stat().st_mtime if p.exists() else 0):
            for file, size in _files_in(snapshot):
                if _SHARD.search(file) or "mmproj" in Path(file).name.lower():
                    continue
                ref = Ref(repo, file)
                found[ref.name] = Pulled(ref, snapshot / file, size or 0)  # the newest snapshot wins
    return sorted(found.values(), key=lambda p: p.name.lower())
