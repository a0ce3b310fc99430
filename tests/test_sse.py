"""The SSE decoder: line splitting on bytes, event assembly, and properties under random splits.

The WHATWG vectors below are the event-stream bodies of the web-platform-tests
``eventsource/format-*`` tests, each framed so that the events the browser test
expects are the ones terminated by a blank line."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipyg4f.sse import LineDecoder, ServerSentEvent, SSEDecoder, aiter_sse, iter_sse
from byte_splits import split


BOM = codecs.BOM_UTF8


def lines_of(*chunks: bytes) -> list[bytes]:
    decoder = LineDecoder()
    return [line for chunk in chunks for line in decoder.feed(chunk)]


# --- LineDecoder -------------------------------------------------------------------

def test_lf_cr_and_crlf_all_end_a_line():
    assert lines_of(b"a\nb\rc\r\nd\n") == [b"a", b"b", b"c", b"d"]


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


def test_an_unterminated_line_waits_for_its_break():
    decoder = LineDecoder()
    assert decoder.feed(b"x\nta") == [b"x"]
    assert decoder.feed(b"il") == []
    assert decoder.feed(b"\r") == [b"tail"]


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


def test_an_id_with_nul_is_ignored():
    [sse] = events_of("id: 1\nid: a\0b\ndata: d\n\n")
    assert sse.id == "1"


@pytest.mark.parametrize("value", ["soon", "1000x", " 1000", "+5", "-5", "1_000", "1.5", "\u0665", ""])
def test_retry_that_is_not_only_ascii_digits_is_ignored(value):
    # WHATWG: "If the field value consists of only ASCII digits ... Otherwise, ignore the field."
    [sse] = events_of(f"retry: 3000\nretry: {value}\ndata: x\n\n")  # WPT format-field-retry-bogus
    assert sse.retry == 3000


def test_retry_without_a_value_is_ignored():
    assert events_of("retry: 7\nretry\ndata: x\n\n")[0].retry == 7


def test_event_type_resets_after_dispatch_but_id_and_retry_persist():
    first, second = events_of("event: a\nretry: 5\nid: 1\ndata: x\n\ndata: y\n\n")
    assert (first.event, first.retry, first.id) == ("a", 5, "1")
    assert (second.event, second.retry, second.id) == (None, 5, "1")


def test_an_empty_event_type_is_the_default_type():
    # WPT format-field-event-empty
    assert events_of("event: \ndata:data\n\n") == [ServerSentEvent("data")]
    assert events_of("event\ndata:data\n\n") == [ServerSentEvent("data")]


def test_an_id_field_without_a_value_sets_an_empty_id():
    assert events_of("id: 1\ndata: a\n\nid\ndata: no id\n\n")[1] == ServerSentEvent("no id", id="")


def test_blank_lines_without_fields_dispatch_nothing():
    decoder = SSEDecoder()
    assert [decoder.decode(line) for line in ["", "", ": comment", ""]] == [None] * 4


@pytest.mark.parametrize("block", ["event: ping\n\n", "id: 5\n\n", "retry: 10\n\n", ": keep-alive\n\n",
                                   "event: a\nid: 1\nretry: 3\n: c\n\n", "data : spaced name\n\n"])
def test_a_block_without_a_data_field_dispatches_nothing(block):
    assert events_of(block) == []


def test_a_block_without_data_still_sets_id_and_retry_but_not_the_event_type():
    assert events_of("event: a\nid: 5\nretry: 10\n\ndata: x\n\n") == [ServerSentEvent("x", id="5", retry=10)]


def test_an_event_without_its_blank_line_at_the_end_is_not_dispatched():
    assert events_of("data: a\n\ndata: b") == [ServerSentEvent("a")]
    assert events_of("data: a\n\ndata: b\n") == [ServerSentEvent("a")]
    # WPT format-data-before-final-empty-line: only test1 is ever dispatched
    assert events_of("retry:1000\ndata:test1\n\nid:test\ndata:test2") == [ServerSentEvent("test1", retry=1000)]


def test_a_blank_line_ended_by_cr_dispatches_without_waiting_for_more_bytes():
    # WPT format-newlines
    assert events_of("data:test\r\ndata\ndata:test\r\n\r") == [ServerSentEvent("test\n\ntest")]


def test_crlf_split_across_chunks_does_not_end_the_event():
    chunks = [b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]
    assert list(iter_sse(chunks)) == [ServerSentEvent("a\nb")]


# --- WHATWG vectors (web-platform-tests eventsource/format-*) -------------------------

def test_wpt_field_parsing():
    stream = ("data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\r"
              "data:\r\n data:32\ndata:4\n\n")
    assert events_of(stream) == [ServerSentEvent("\0\n 2\n1\n3\n\n4")]


def test_wpt_comments():
    long = "x" * 2048
    stream = f"data:1\r:\0\n:\r\ndata:2\n:{long}\rdata:3\n:data:fail\r:{long}\ndata:4\n\n"
    assert events_of(stream) == [ServerSentEvent("1\n2\n3\n4")]


def test_wpt_leading_space():
    assert events_of("data:\ttest\rdata: \ndata:test\n\n") == [ServerSentEvent("\ttest\n\ntest")]


def test_wpt_bom_only_the_first_is_skipped():
    # format-bom: a BOM later in the stream makes that line's field name unknown
    assert events_of_bytes(BOM + b"data:1\n\n" + BOM + b"data:2\n\ndata:3\n\n") == \
        [ServerSentEvent("1"), ServerSentEvent("3")]
    # format-bom-2: of two leading BOMs only one is skipped
    assert events_of_bytes(BOM + BOM + b"data:1\n\ndata:2\n\ndata:3\n\n") == \
        [ServerSentEvent("2"), ServerSentEvent("3")]


def test_a_bom_split_across_chunks_is_still_skipped():
    data = BOM + b"data: x\n\n"
    for i in range(len(BOM) + 1):
        for j in range(i, len(BOM) + 1):
            chunks = [b"", data[:i], data[i:j], b"", data[j:]]
            assert list(iter_sse(chunks)) == [ServerSentEvent("x")], chunks


def test_a_bom_inside_data_is_kept():
    assert events_of_bytes(b"data: " + BOM + b"x\n\n") == [ServerSentEvent("\ufeffx")]


def test_invalid_utf8_is_replaced_not_raised():
    assert events_of_bytes(b"data: \xff\xfeok\n\n") == [ServerSentEvent("\ufffd\ufffdok")]


def events_of_bytes(data: bytes) -> list[ServerSentEvent]:
    return list(iter_sse([data]))


async def test_async_decoding_matches_sync():
    chunks = [BOM[:1], BOM[1:] + b"data: a\r", b"\n\r\ndata: \xd0", b"\xb1\n\n", b"data: tail"]

    async def source():
        for chunk in chunks:
            yield chunk

    events = [sse async for sse in aiter_sse(source())]
    assert events == list(iter_sse(chunks)) == [ServerSentEvent("a"), ServerSentEvent("б")]


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


bom_like_starts = st.sampled_from([b"", BOM, BOM + BOM, BOM[:1], BOM[:2], BOM[:2] + b"\n"])


@settings(max_examples=200, deadline=None)
@given(data=st.tuples(bom_like_starts, st.binary(max_size=300)).map(b"".join),
       cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=20))
def test_random_garbage_raises_nothing_and_splits_do_not_matter(data, cuts):
    whole = list(iter_sse([data]))
    assert list(iter_sse(split(data, cuts))) == whole


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200).map(lambda b: b.replace(b"x", b"\r").replace(b"y", b"\n")),
       cuts=st.lists(st.integers(min_value=0, max_value=1000), max_size=20))
def test_line_splitting_does_not_depend_on_chunking(data, cuts):
    data += b"\n"  # so that the last line is complete too
    assert lines_of(*split(data, cuts)) == lines_of(data)


def test_a_remembered_id_does_not_make_blank_lines_into_events():
    assert events_of("id: 9\ndata: x\n\n\n\n") == [ServerSentEvent("x", id="9")]
    assert events_of("id: 3\n\ndata: y\n\n") == [ServerSentEvent("y", id="3")]
