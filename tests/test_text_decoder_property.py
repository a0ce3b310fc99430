"""Property tests of the plain-text stream decoder (AI365VIP, Acytoo bodies):
random byte splits of valid UTF-8 decode to the original text; random garbage
raises nothing and decodes the same however it is split."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from ipyg4f.http import iter_text
from byte_splits import split


class FakeContent:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk


class FakeResponse:
    def __init__(self, chunks: list[bytes]):
        self.content = FakeContent(chunks)


def decode(chunks: list[bytes]) -> list[str]:
    async def run():
        return [piece async for piece in iter_text(FakeResponse(chunks))]

    return asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=40))
def test_valid_utf8_survives_any_split(text, cuts):
    pieces = decode(split(text.encode("utf-8"), cuts))
    assert "".join(pieces) == text
    assert all(pieces), "no empty pieces are yielded"


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=30))
def test_garbage_raises_nothing_and_split_does_not_matter(data, cuts):
    assert "".join(decode(split(data, cuts))) == "".join(decode([data])) == data.decode("utf-8", "replace")
