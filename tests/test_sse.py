"""The SSE decoder: line splitting on bytes, event assembly, and properties under random splits."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ipyg4f.sse import EventStreamDecoder, LineDecoder, ServerSentEvent, SSEDecoder, aiter_sse, iter_sse
from byte_splits import split


def lines_of(*chunks: bytes) -> list[bytes]:
    decoder = LineDecoder()
    out = [line for chunk in chunks for line in decoder.feed(chunk)]
    return out + decoder.flush()


# --- LineDecoder -------------------------------------------------------------------

def test_lf_cr_and_crlf_all_end_a_line():
    assert lines_of(b"a\nb\rc\r\nd") == [b"a", b"b", b"c", b"d"]


def test_crlf_split_across_chunks_is_one_break():
    decoder = LineDecoder()
    assert decoder.feed(b"a\r") == [b"a"]
    assert decoder.feed(b"\nb\n") == [b"b"]  # the LF completes the CR: no empty line


def test_cr_then_cr_across_chunks_is_two_breaks():
    decoder = LineDecoder()
    assert decoder.feed(b"a\r") == [b"a"]
    assert decoder.feed(b"\r") == [b""]
    assert decoder.feed(b"\n") == []  # this LF completes the second CR


def test_pending_cr_survives_an_empty_chunk():
    decoder = LineDecoder()
    assert decoder.feed(b"a\r") == [b"a"]
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\nb\n") == [b"b"]


def test_blank_lines_are_kept():
    assert lines_of(b"a\n\n\r\n\rb\n") == [b"a", b"", b"", b"", b"b"]


def test_unicode_line_separators_are_not_breaks():
    text = "a\u2028b\u2029c\x85d\x0be\x0cf"
    assert lines_of(text.encode() + b"\n") == [text.encode()]


def test_a_character_split_across_chunks_stays_whole():
    data = "Привет\n".encode()
    assert lines_of(data[:1], data[1:3], data[3:]) == ["Привет".encode()]


def test_flush_returns_the_unterminated_tail_once():
    decoder = LineDecoder()
    assert decoder.feed(b"x\ntail") == [b"x"]
    assert decoder.flush() == [b"tail"]
    assert decoder.flush() == []


# --- SSEDecoder ---------------------------------------------------------------------

def events_of(text: str) -> list[ServerSentEvent]:
    return list(iter_sse([text.encode()]))


def test_comments_and_unknown_fields_are_ignored():
    assert events_of(": ping\nfoo: bar\ndata: x\n\n") == [ServerSentEvent("x")]


def test_multi_line_data_is_joined_with_newlines():
    assert events_of("data: {\"a\":\ndata: 1}\n\n")[0].json() == {"a": 1}
    assert events_of("data: one\ndata:\ndata: three\n\n") == [ServerSentEvent("one\n\nthree")]


def test_only_one_leading_space_is_removed():
    assert events_of("data:x\n\ndata:  y\n\n") == [ServerSentEvent("x"), ServerSentEvent(" y")]


def test_a_field_without_a_colon_has_an_empty_value():
    assert events_of("data\n\n") == [ServerSentEvent("")]


def test_event_id_and_retry():
    [sse] = events_of("event: delta\nid: 42\nretry: 1500\ndata: d\n\n")
    assert sse == ServerSentEvent("d", event="delta", id="42", retry=1500)


def test_invalid_retry_and_id_with_nul_are_ignored():
    [sse] = events_of("retry: soon\nid: a\0b\ndata: d\n\n")
    assert (sse.retry, sse.id) == (None, None)


def test_event_type_and_retry_reset_after_dispatch_but_id_persists():
    first, second = events_of("event: a\nretry: 5\nid: 1\ndata: x\n\ndata: y\n\n")
    assert (first.event, first.retry, first.id) == ("a", 5, "1")
    assert (second.event, second.retry, second.id) == (None, None, "1")


def test_blank_lines_without_fields_dispatch_nothing():
    decoder = SSEDecoder()
    assert [decoder.decode(line) for line in ["", "", ": comment", ""]] == [None] * 4


def test_close_flushes_an_unterminated_event():
    assert list(iter_sse([b"data: a\n\ndata: b"])) == [ServerSentEvent("a"), ServerSentEvent("b")]


def test_invalid_utf8_is_replaced_not_raised():
    assert events_of_bytes(b"data: \xff\xfeok\n\n") == [ServerSentEvent("\ufffd\ufffdok")]


def events_of_bytes(data: bytes) -> list[ServerSentEvent]:
    return list(iter_sse([data]))


async def test_async_decoding_matches_sync():
    chunks = [b"data: a\r", b"\n\r\ndata: \xd0", b"\xb1\n\n", b"data: tail"]

    async def source():
        for chunk in chunks:
            yield chunk

    assert [sse async for sse in aiter_sse(source())] == list(iter_sse(chunks))


# --- properties ----------------------------------------------------------------------

line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=20)
event_names = st.one_of(st.none(), st.text(st.characters(whitelist_categories=("L", "N")), min_size=1,
                                           max_size=8))
events = st.lists(st.tuples(event_names, st.lists(line_text, min_size=1, max_size=4)), max_size=6)


def serialise(evts, newline: str) -> bytes:
    out = []
    for name, data_lines in evts:
        if name:
            out.append(f"event: {name}")
        out.extend(f"data: {line}" for line in data_lines)
        out.append("")
    return "".join(line + newline for line in out).encode()


@settings(max_examples=200, deadline=None)
@given(evts=events, newline=st.sampled_from(["\n", "\r", "\r\n"]),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30))
def test_random_byte_splits_of_valid_sse_give_the_same_events(evts, newline, cuts):
    data = serialise(evts, newline)
    expected = [ServerSentEvent("\n".join(lines), event=name) for name, lines in evts]
    assert list(iter_sse([data])) == expected
    assert list(iter_sse(split(data, cuts))) == expected


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=20))
def test_random_garbage_raises_nothing_and_splits_do_not_matter(data, cuts):
    whole = list(iter_sse([data]))
    assert list(iter_sse(split(data, cuts))) == whole
    decoder = EventStreamDecoder()
    for chunk in split(data, cuts):
        decoder.feed(chunk)
    decoder.close()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200).map(lambda b: b.replace(b"x", b"\r").replace(b"y", b"\n")),
       cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=20))
def test_line_splitting_does_not_depend_on_chunking(data, cuts):
    assert lines_of(*split(data, cuts)) == lines_of(data)


def test_a_remembered_id_does_not_make_blank_lines_into_events():
    assert events_of("id: 9\ndata: x\n\n\n\n") == [ServerSentEvent("x", id="9")]
    assert events_of("id: 3\n\ndata: y\n\n") == [ServerSentEvent("y", id="3")]
