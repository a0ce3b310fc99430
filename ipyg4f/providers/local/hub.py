"""GGUF models from the Hugging Face Hub: pulled once into the Hub's own cache, found offline after.

``hf:REPO[/FILE]`` names a model (``hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF`` or
``hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf``).

* :func:`local_path` and :func:`pulled` read the cache only (no network, no
  ``huggingface_hub`` import): a model on disk is used as it is.
* :func:`pull` downloads with ``huggingface_hub`` (``ipyg4f[local]``), which
  honours ``HF_ENDPOINT``, ``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``
  and the user's token.  It asks the Hub for the file's metadata
  (:func:`huggingface_hub.get_hf_file_metadata`) and streams the file with
  :func:`huggingface_hub.file_download.http_get` into ``blobs/<etag>.part``,
  which it keeps when the download stops (interrupt, lost connection, full
  disk): the next pull sends a ``Range`` request from where it stopped.
  (``hf_hub_download`` deletes its partial file on failure, so it cannot
  resume.)  The finished file is checked as a GGUF before it is moved into
  place; the cache layout is the Hub's (``models--OWNER--NAME/blobs``,
  ``snapshots/<commit>``, ``refs/<revision>``), so ``hf download`` and other
  tools see the same files.

Which file, when the reference names only a repository: :func:`choose`.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ProviderError
from ...gguf import check_gguf
from .engine import INSTALL_HINT, NAME

__all__ = ["PREFIX", "PREFERRED", "Ref", "Progress", "Pulled", "HubError", "AmbiguousFileError",
           "parse_ref", "cache_root", "choose", "local_path", "pulled", "pull"]

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


# -- pulling (the network) ------------------------------------------------------------------------


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(f"pulling models needs huggingface_hub; {INSTALL_HINT}", provider=NAME,
                       hint=INSTALL_HINT) from None
    return huggingface_hub


def _offline() -> bool:
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in ("1", "ON", "YES", "TRUE")


def _endpoint(hub: Any) -> str:
    from huggingface_hub import constants  # a lazy submodule: not an attribute of the package until imported

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _failure(exc: BaseException, ref: Ref, endpoint: str) -> HubError:
    """One short line for what went wrong while talking to the Hub."""
    from huggingface_hub import errors as hf

    name = type(exc).__name__
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return HubError(f"{ref.name} is not on this machine and HF_HUB_OFFLINE is set", provider=NAME,
                        hint="unset HF_HUB_OFFLINE to download it, or use a model that is pulled "
                             "(%chat models -p Local)")
    if isinstance(exc, hf.GatedRepoError):
        return HubError(f"{ref.repo} is gated: accept its licence on the Hub, then log in (hf auth login)",
                        provider=NAME)
    if isinstance(exc, hf.RepositoryNotFoundError):
        return HubError(f"no repository {ref.repo} on {endpoint} (or it is private)", provider=NAME,
                        hint="check the name (OWNER/NAME), or log in for a private one (hf auth login)")
    if isinstance(exc, hf.RevisionNotFoundError):
        return HubError(f"{ref.repo} has no revision {ref.revision!r}", provider=NAME)
    if isinstance(exc, hf.RemoteEntryNotFoundError):
        return HubError(f"{ref.repo} has no file {ref.file!r}", provider=NAME,
                        hint=f"%chat pull {ref.repo} lists its GGUF files")
    if isinstance(exc, hf.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return HubError(f"the Hub answered HTTP {status} for {ref.name}", provider=NAME,
                        hint="try again later")
    if name in ("ConnectError", "ConnectTimeout", "TimeoutException", "ReadTimeout", "ProxyError",
                "RemoteProtocolError", "ReadError", "NetworkError"):
        return HubError(f"cannot reach {endpoint} ({name}): are you offline?", provider=NAME,
                        hint="check the connection (or HF_ENDPOINT); a model that is already pulled works offline")
    return HubError(f"pulling {ref.name} failed: {name}: {exc}", provider=NAME)


def _disk_full(folder: Path, needed: int | None, partial: Path) -> HubError:
    free = shutil.disk_usage(folder).free
    need = f"; {_size(needed)} more are needed" if needed else ""
    return HubError(f"the disk is full ({_size(free)} free in {folder}{need})", provider=NAME,
                    hint=f"free some space and pull again: it resumes from the {_size(_stat_size(partial))} "
                         f"already in {partial.name}" if _stat_size(partial) else "free some space and pull again")


def _stat_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _size(n: int | None) -> str:
    if n is None:
        return "? B"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


class _Bar:
    """What ``http_get`` calls a progress bar (it builds one with ``tqdm_class(**kwargs)``): our callback.

    ``http_get`` counts a chunk before it writes it, so the callback is told the bytes on disk:
    those counted before this chunk (and all of them once the download ends).
    """

    def __init__(self, callback: Callable[[Progress], None] | None, resumed: int, total: int | None):
        self.callback = callback
        self.resumed = resumed
        self.total = total
        self.started = time.monotonic()
        self.done = resumed

    def __call__(self, **kwargs: Any) -> _Bar:
        self.done = int(kwargs.get("initial") or 0)
        self._tell(self.done)
        return self

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if kind is None:
            self._tell(self.done)

    def update(self, n: int = 1) -> None:
        written, self.done = self.done, self.done + n
        self._tell(written)

    def _tell(self, done: int) -> None:
        if self.callback is not None:
            self.callback(Progress(done, self.total, self.resumed, self.started))

    def close(self) -> None:
        return None


def _list_files(hub: Any, ref: Ref, endpoint: str) -> list[tuple[str, int | None]]:
    api = hub.HfApi(endpoint=endpoint)
    return [(entry.path, getattr(entry, "size", None))
            for entry in api.list_repo_tree(ref.repo, revision=ref.revision, recursive=True)
            if type(entry).__name__ == "RepoFile"]


def pull(ref: Ref, on_progress: Callable[[Progress], None] | None = None) -> Pulled:
    """The file ``ref`` names, downloaded into the cache if it is not there yet; checked as a GGUF.

    Raises :class:`HubError` (one line, no traceback needed) for what the user can act on:
    offline, no such repository or file, several files to choose from, a full disk, a file that
    is not a complete GGUF.  ``KeyboardInterrupt`` (from the download, or raised by
    ``on_progress``) leaves the partial file for the next pull to resume.
    """
    if (path := local_path(ref)) is not None:
        return Pulled(Ref(ref.repo, _relative(path, ref)), path, path.stat().st_size)
    hub = _hub()
    endpoint = _endpoint(hub)
    if _offline():
        raise HubError(f"{ref.name} is not on this machine and HF_HUB_OFFLINE is set", provider=NAME,
                       hint="unset HF_HUB_OFFLINE to download it, or use a model that is pulled "
                            "(%chat models -p Local)")
    from huggingface_hub.file_download import http_get
    from huggingface_hub.utils import build_hf_headers

    try:
        if ref.file is None:
            ref = Ref(ref.repo, choose(ref.repo, _list_files(hub, ref, endpoint)), ref.revision)
            if (path := local_path(ref)) is not None:
                return Pulled(ref, path, path.stat().st_size)
        url = hub.hf_hub_url(ref.repo, ref.file, revision=ref.revision, endpoint=endpoint)
        meta = hub.get_hf_file_metadata(url, endpoint=endpoint)
        headers = build_hf_headers()
        location = meta.location or url
        if location != url and _host(location) != _host(url):
            headers.pop("authorization", None)  # a CDN does not get the Hub token
        if not meta.commit_hash or not meta.etag:
            raise HubError(f"{endpoint} does not answer like the Hugging Face Hub (no commit or ETag for "
                           f"{ref.name})", provider=NAME, hint="check HF_ENDPOINT")
    except HubError:
        raise
    except Exception as exc:
        raise _failure(exc, ref, endpoint) from None
    folder = _repo_dir(ref.repo)
    blob = folder / "blobs" / meta.etag
    partial = blob.with_name(blob.name + ".part")
    if not blob.is_file():
        _download(http_get, location, headers, partial, meta.size, ref, endpoint, on_progress)
        try:
            check_gguf(partial)  # a complete download that is not a GGUF model is useless: say so
        except ProviderError as exc:
            partial.unlink()
            why = exc.message.partition(" is not a valid GGUF model: ")[2] or exc.message
            raise HubError(f"{ref.name} is not a valid GGUF model: {why}", provider=NAME,
                           hint="the file on the Hub may be damaged, or not a model: pick another file") from None
        partial.replace(blob)
    target = folder / "snapshots" / meta.commit_hash / ref.file
    _link(blob, target)
    if not re.fullmatch(r"[0-9a-f]{40}", ref.revision):
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref.revision).write_text(meta.commit_hash)
    return Pulled(ref, target, target.stat().st_size)


def _download(http_get: Callable[..., None], url: str, headers: dict[str, str], partial: Path, size: int | None,
              ref: Ref, endpoint: str, on_progress: Callable[[Progress], None] | None) -> None:
    partial.parent.mkdir(parents=True, exist_ok=True)
    resume = _stat_size(partial)
    if size is not None and resume > size:  # not the file we are after: start again
        partial.unlink()
        resume = 0
    if size is not None and shutil.disk_usage(partial.parent).free < size - resume:
        raise _disk_full(partial.parent, size - resume, partial)
    bar = _Bar(on_progress, resume, size)
    try:
        with open(partial, "ab") as out:
            http_get(url, out, resume_size=resume, headers=headers, expected_size=size,
                     displayed_filename=ref.file, tqdm_class=bar)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(partial.parent, None if size is None else size - _stat_size(partial), partial) from None
        if "Consistency check failed" in str(exc):
            raise HubError(f"the download of {ref.name} ended early ({_size(_stat_size(partial))} of "
                           f"{_size(size)}); pull again to resume", provider=NAME) from None
        raise _failure(exc, ref, endpoint) from None
    except KeyboardInterrupt:
        raise
    except HubError:
        raise
    except Exception as exc:
        raise _failure(exc, ref, endpoint) from None


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


def _relative(path: Path, ref: Ref) -> str:
    snapshot = _snapshot(ref.repo, ref.revision)
    return path.relative_to(snapshot).as_posix() if snapshot is not None else path.name


def _link(blob: Path, target: Path) -> None:
    """``snapshots/<commit>/<file>`` -> the blob, as the Hub client does (a copy where links fail)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        return
    if target.is_symlink():  # a dangling link
        target.unlink()
    try:
        target.symlink_to(os.path.relpath(blob, target.parent))
    except OSError:
        shutil.copyfile(blob, target)
