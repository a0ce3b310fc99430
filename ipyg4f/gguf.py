"""A structural check of GGUF model files, in pure Python.

It walks the header, the metadata and the tensor table and checks that every
tensor fits in the file, so a truncated or foreign file gets a clear
:class:`~ipyg4f.errors.ProviderError` before llama.cpp sees it.  Tensor types
missing from the size table below skip the size check (never a false alarm).
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ProviderError

__all__ = ["FILE_TYPES", "GGUFInfo", "check_gguf"]

_GGUF_MAGIC = b"GGUF"
#: GGUF metadata value type -> struct format of a fixed-size scalar (8: string, 9: array)
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
#: ggml tensor type -> (elements per block, bytes per block); types not listed skip the size check
_GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17),
}


#: llama.cpp's ``general.file_type`` (``enum llama_ftype``) -> the quantisation's usual name
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}


@dataclass(frozen=True)
class GGUFInfo:
    version: int
    tensors: int
    architecture: str
    has_chat_template: bool
    #: the context the model was trained for (``<arch>.context_length``); 0 when the file does not say
    context_length: int = 0
    #: ``general.file_type``; None when the file does not say
    file_type: int | None = None
    #: ``general.name``
    name: str = ""
    #: the text of the end-of-generation tokens the file names (eos, eot, eom), e.g. ``("<|im_end|>",)``
    stop_texts: tuple[str, ...] = ()

    @property
    def quantization(self) -> str:
        """``Q4_K_M``, ``F16``... ("" when unknown)."""
        if self.file_type is None:
            return ""
        return FILE_TYPES.get(self.file_type, f"type {self.file_type}")


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, data: Any):
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise _Truncated
        (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return value

    def string(self) -> bytes:
        size = self.take("Q")
        if self.pos + size > len(self.data):
            raise _Truncated
        value = bytes(self.data[self.pos:self.pos + size])
        self.pos += size
        return value

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == 8:
            return self.string()
        if kind == 9:
            item, count = self.take("I"), self.take("Q")
            if item in _SCALARS:  # skip the block without decoding it
                self.pos += count * struct.calcsize("<" + _SCALARS[item])
                if self.pos > len(self.data):
                    raise _Truncated
            else:
                for _ in range(count):
                    self.value(item)
            return None
        raise ValueError(f"unknown metadata value type {kind}")


def check_gguf(path: str | os.PathLike[str], provider: str = "Local") -> GGUFInfo:
    """Walk a GGUF file's header, metadata and tensor table; raise :class:`ProviderError` if it is not
    a complete GGUF model (wrong magic or version, truncated, tensors past the end of the file).

    Run before llama.cpp sees a user's file, so a bad file gives a clear message.
    """
    path = Path(path)
    size = path.stat().st_size

    def invalid(why: str) -> ProviderError:
        return ProviderError(f"{path} is not a valid GGUF model: {why}", provider=provider,
                             hint="download the file again (it may be truncated), or pick another model")

    if size < 24:
        raise invalid(f"the file is only {size} bytes")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if data[:4] != _GGUF_MAGIC:
            raise invalid("it does not start with the GGUF signature")
        reader = _Reader(data)
        reader.pos = 4
        try:
            version = reader.take("I")
            if version not in (2, 3):
                raise invalid(f"unsupported GGUF version {version}")
            n_tensors, n_kv = reader.take("Q"), reader.take("Q")
            if n_tensors > size or n_kv > size:
                raise invalid("the header's counts are impossible for the file's size")
            alignment, architecture, template = 32, "", False
            scalars: dict[bytes, Any] = {}
            tokens_at = -1  # where the vocabulary's strings start
            for _ in range(n_kv):
                key = reader.string()
                kind = reader.take("I")
                if key == b"tokenizer.ggml.tokens" and kind == 9:
                    tokens_at = reader.pos
                value = reader.value(kind)
                if key == b"general.alignment" and isinstance(value, int) and value > 0:
                    alignment = value
                elif key == b"general.architecture" and isinstance(value, bytes):
                    architecture = value.decode("utf-8", "replace")
                elif key == b"tokenizer.chat_template":
                    template = bool(value)
                elif key.endswith((b".context_length", b".file_type", b".name", b"_token_id")):
                    scalars[key] = value
            stops = _token_texts(reader, tokens_at, [scalars.get(b"tokenizer.ggml.%s_token_id" % k)
                                                     for k in (b"eos", b"eot", b"eom")])
            end = 0
            for _ in range(n_tensors):
                reader.string()
                dims = [reader.take("Q") for _ in range(reader.take("I"))]
                kind, offset = reader.take("I"), reader.take("Q")
                block, block_bytes = _GGML_TYPES.get(kind, (1, 0))
                end = max(end, offset + math.prod(dims) // block * block_bytes)
        except _Truncated:
            raise invalid(f"the file ends inside its header ({size} bytes)") from None
        except ValueError as exc:
            raise invalid(str(exc)) from None
        data_start = -(-reader.pos // alignment) * alignment
        if data_start + end > size:
            raise invalid(f"it is truncated: its tensors need {data_start + end} bytes, the file has {size}")
    context = scalars.get(f"{architecture}.context_length".encode())
    file_type = scalars.get(b"general.file_type")
    name = scalars.get(b"general.name")
    return GGUFInfo(version, n_tensors, architecture, template,
                    context_length=context if isinstance(context, int) and context > 0 else 0,
                    file_type=file_type if isinstance(file_type, int) and not isinstance(file_type, bool) else None,
                    name=name.decode("utf-8", "replace") if isinstance(name, bytes) else "",
                    stop_texts=stops)


def _token_texts(reader: _Reader, tokens_at: int, ids: list[Any]) -> tuple[str, ...]:
    """The vocabulary's text of each token id in ``ids`` (unknown ids and duplicates left out)."""
    wanted = {i for i in ids if isinstance(i, int) and not isinstance(i, bool) and i >= 0}
    if tokens_at < 0 or not wanted:
        return ()
    saved, reader.pos = reader.pos, tokens_at
    try:
        if reader.take("I") != 8:
            return ()
        count = reader.take("Q")
        found: dict[int, str] = {}
        for index in range(min(count, max(wanted) + 1)):
            text = reader.string()
            if index in wanted:
                found[index] = text.decode("utf-8", "replace")
    finally:
        reader.pos = saved
    return tuple(dict.fromkeys(found[i] for i in ids if i in found and found[i]))
