"""The SSE decoder: WHATWG event-stream rules, chunk-boundary independence, bounded memory."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from proxy.recording.sse import SSEDecoder, SSEEvent

TRANSCRIPTS = Path(__file__).parent / "transcripts"
TRANSCRIPT_NAMES = sorted(path.name for path in TRANSCRIPTS.glob("*.sse"))


def transcript(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def decode(*chunks: bytes, decoder: SSEDecoder | None = None) -> list[SSEEvent]:
    decoder = decoder or SSEDecoder()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    events.extend(decoder.flush())
    return events


def one_byte_chunks(stream: bytes) -> list[bytes]:
    return [stream[i : i + 1] for i in range(len(stream))]


def test_transcripts_are_present() -> None:
    """The recorded transcripts the split tests run over exist."""
    assert len(TRANSCRIPT_NAMES) >= 3


@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_transcript_split_at_every_offset_gives_the_same_events(name: str) -> None:
    """A transcript split into two chunks at any byte offset decodes to the same events."""
    stream = transcript(name)
    whole = decode(stream)
    assert whole
    for offset in range(len(stream) + 1):
        assert decode(stream[:offset], stream[offset:]) == whole, offset


@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_transcript_in_one_byte_chunks_gives_the_same_events(name: str) -> None:
    """A transcript fed one byte at a time decodes to the same events as fed whole."""
    stream = transcript(name)
    assert decode(*one_byte_chunks(stream)) == decode(stream)


@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
def test_transcript_in_random_chunks_gives_the_same_events(name: str) -> None:
    """A transcript cut at random places into many chunks decodes to the same events."""
    stream = transcript(name)
    whole = decode(stream)
    rng = random.Random(name)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(stream)), 12))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert decode(*chunks) == whole


@pytest.mark.parametrize("name", TRANSCRIPT_NAMES)
@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_transcript_with_other_line_endings_gives_the_same_events(
    name: str, newline: bytes
) -> None:
    """Rewriting a transcript's LF line endings as CRLF or CR changes no event."""
    stream = transcript(name)
    rewritten = stream.replace(b"\n", newline)
    assert decode(rewritten) == decode(stream)
    assert decode(*one_byte_chunks(rewritten)) == decode(stream)


def test_openai_chat_transcript_events() -> None:
    """The OpenAI chat stream decodes to one unnamed event per chunk, ending in [DONE]."""
    events = decode(transcript("openai_chat_include_usage.sse"))
    assert [e.event for e in events] == ["message"] * len(events)
    assert events[-1] == SSEEvent(event="message", data="[DONE]", id=None)
    contents = [orjson.loads(e.data)["choices"] for e in events[:-1]]
    pieces = [c[0]["delta"].get("content") for c in contents if c]
    assert "".join(p for p in pieces if p) == "Bonjour à vous ☕ — ça va ?"


def test_anthropic_transcript_event_names() -> None:
    """The Anthropic stream's event names match the ``type`` inside each data payload."""
    events = decode(transcript("anthropic_messages_tool_use.sse"))
    assert events[0].event == "message_start"
    assert events[-1].event == "message_stop"
    assert all(orjson.loads(e.data)["type"] == e.event for e in events)


def test_responses_transcript_event_names() -> None:
    """The Responses API stream starts with response.created and ends with response.completed."""
    events = decode(transcript("openai_responses_function_call.sse"))
    assert events[0].event == "response.created"
    assert events[-1].event == "response.completed"
    numbers = [orjson.loads(e.data)["sequence_number"] for e in events]
    assert numbers == list(range(len(events)))


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_each_line_ending_style(newline: bytes) -> None:
    """LF, CRLF and CR each end lines, and two of them end an event."""
    stream = b"event: greet" + newline + b"data: a" + newline + b"data: b" + newline + newline
    assert decode(stream) == [SSEEvent(event="greet", data="a\nb")]


def test_mixed_line_endings_in_one_stream() -> None:
    """Line endings may differ from line to line within one stream."""
    stream = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    assert decode(stream) == [SSEEvent(data="a\nb\nc"), SSEEvent(data="d")]


def test_cr_at_chunk_end_and_lf_at_next_chunk_start_is_one_line_break() -> None:
    """A CR ending one chunk and an LF starting the next are one CRLF, not a blank line."""
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEEvent(data="a\nb")]


def test_cr_at_chunk_end_and_lf_after_an_empty_chunk_is_one_line_break() -> None:
    """An empty chunk between the CR and the LF of a CRLF changes nothing."""
    assert decode(b"data: a\r", b"", b"\ndata: b\r\n\r\n") == [SSEEvent(data="a\nb")]


def test_cr_at_chunk_end_then_cr_is_a_blank_line() -> None:
    """A CR ending one chunk and a CR starting the next are two line breaks: an event ends."""
    assert decode(b"data: a\r", b"\rdata: b\r\r") == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_lf_cr_is_two_line_breaks() -> None:
    """LF followed by CR is two line breaks, so it ends an event."""
    assert decode(b"data: a\n\rdata: b\n\n") == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_comments_are_ignored() -> None:
    """Lines starting with a colon are comments: they never make or change an event."""
    stream = b": keep-alive\n\n:another\ndata: x\n: between\ndata: y\n\n"
    assert decode(stream) == [SSEEvent(data="x\ny")]


def test_multi_line_data_is_joined_by_lf() -> None:
    """Several data lines in one event are joined with LF; the last LF is not kept."""
    assert decode(b'data: {\ndata:   "a": 1\ndata: }\n\n') == [SSEEvent(data='{\n  "a": 1\n}')]


def test_field_without_colon_has_an_empty_value() -> None:
    """A line with no colon is a field name with an empty value."""
    assert decode(b"data\ndata\n\n") == [SSEEvent(data="\n")]
    assert decode(b"data: x\nevent\n\n") == [SSEEvent(event="message", data="x")]


def test_only_one_space_after_the_colon_is_stripped() -> None:
    """Exactly one space after the colon is removed; more spaces and no space are kept as is."""
    assert decode(b"data:  two\n\ndata:none\n\n") == [SSEEvent(data=" two"), SSEEvent(data="none")]


def test_colon_in_the_value_is_kept() -> None:
    """Only the first colon separates the field name from the value."""
    assert decode(b"data: a: b:c\n\n") == [SSEEvent(data="a: b:c")]


def test_event_type_resets_after_each_dispatch() -> None:
    """The event type applies to one event; the next defaults to ``message``."""
    stream = b"event: custom\ndata: 1\n\ndata: 2\n\n"
    assert decode(stream) == [SSEEvent(event="custom", data="1"), SSEEvent(data="2")]


def test_empty_event_type_means_message() -> None:
    """An empty ``event:`` value dispatches as ``message``."""
    assert decode(b"event:\ndata: x\n\n") == [SSEEvent(event="message", data="x")]


def test_event_without_data_is_not_dispatched() -> None:
    """An event with a type but no data line is dropped, and its type does not leak."""
    assert decode(b"event: ping\n\ndata: x\n\n") == [SSEEvent(data="x")]


def test_empty_data_line_dispatches_an_event_with_empty_data() -> None:
    """A ``data:`` line with nothing after it still dispatches an event with empty data."""
    assert decode(b"data:\n\n") == [SSEEvent(data="")]


def test_last_event_id_persists_across_events() -> None:
    """``id`` sets the last event ID, which later events carry until it changes."""
    stream = b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"
    assert decode(stream) == [
        SSEEvent(data="a", id="1"),
        SSEEvent(data="b", id="1"),
        SSEEvent(data="c", id=""),
    ]


def test_id_containing_nul_is_ignored() -> None:
    """An ``id`` value containing NUL does not change the last event ID."""
    assert decode(b"id: 7\ndata: a\n\nid: x\x00y\ndata: b\n\n")[1] == SSEEvent(data="b", id="7")


def test_retry_and_unknown_fields_are_ignored() -> None:
    """``retry`` and unknown field names leave the event untouched."""
    assert decode(b"retry: 3000\nfoo: bar\ndata: x\nDATA: y\n\n") == [SSEEvent(data="x")]


def test_leading_bom_is_ignored() -> None:
    """A UTF-8 byte order mark at the start of the stream is skipped."""
    assert decode(b"\xef\xbb\xbfdata: x\n\n") == [SSEEvent(data="x")]


def test_leading_bom_split_across_chunks_is_ignored() -> None:
    """A BOM arriving one byte per chunk is still skipped."""
    assert decode(b"\xef", b"\xbb", b"\xbfdata: x\n\n") == [SSEEvent(data="x")]


def test_only_one_bom_is_ignored() -> None:
    """A second BOM is part of the field name, which then is unknown and ignored."""
    assert decode(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [SSEEvent(data="y")]


def test_bom_later_in_the_stream_is_kept_in_values() -> None:
    """A BOM after the start of the stream is ordinary data."""
    assert decode(b"data: a\n\ndata: \xef\xbb\xbfb\n\n")[1] == SSEEvent(data="\ufeffb")


def test_multibyte_utf8_split_at_every_offset() -> None:
    """Multi-byte characters split between chunks decode whole."""
    stream = "data: héllo ☕ 𝄞 日本語\n\n".encode()
    expected = [SSEEvent(data="héllo ☕ 𝄞 日本語")]
    for offset in range(len(stream) + 1):
        assert decode(stream[:offset], stream[offset:]) == expected


def test_invalid_utf8_becomes_replacement_characters() -> None:
    """Invalid UTF-8 decodes to U+FFFD and never raises."""
    assert decode(b"data: a\xff\xfeb\xe2\x82\n\n") == [SSEEvent(data="a\ufffd\ufffdb\ufffd")]


def test_pending_event_at_end_of_stream_is_discarded() -> None:
    """Per the spec, an event without its final blank line is not dispatched at end of stream."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [SSEEvent(data="a")]
    assert decoder.flush() == []


def test_partial_line_at_end_of_stream_is_discarded() -> None:
    """An unterminated last line is dropped at end of stream."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a") == []
    assert decoder.flush() == []


def test_decoder_starts_clean_after_flush() -> None:
    """After ``flush`` nothing of the old stream leaks into the next one."""
    decoder = SSEDecoder()
    decoder.feed(b"event: old\ndata: stale\npartial")
    decoder.flush()
    assert decoder.feed(b"data: new\n\n") == [SSEEvent(data="new")]


def test_empty_chunk_returns_nothing() -> None:
    """Feeding an empty chunk is harmless."""
    assert SSEDecoder().feed(b"") == []


def test_overlong_line_drops_its_event_and_decoding_goes_on() -> None:
    """A line longer than the bound drops its event; the next event decodes normally."""
    decoder = SSEDecoder(max_event_bytes=1024)
    events = decoder.feed(b"data: small\n\nevent: big\ndata: ")
    for _ in range(100):
        events += decoder.feed(b"x" * 100)
    events += decoder.feed(b"\ndata: tail of big\n\ndata: after\n\n")
    assert events == [SSEEvent(data="small"), SSEEvent(data="after")]
    assert len(decoder._buffer) == 0


def test_overlong_line_ending_in_a_later_chunk_is_not_a_blank_line() -> None:
    """The line break that ends an overlong line does not end the dropped event early."""
    decoder = SSEDecoder(max_event_bytes=16)
    events = decoder.feed(b"data: " + b"x" * 40)
    events += decoder.feed(b"\r")
    events += decoder.feed(b"\ndata: rest of big\n\ndata: ok\n\n")
    assert events == [SSEEvent(data="ok")]


def test_overlong_tail_of_a_chunk_does_not_touch_earlier_events() -> None:
    """An overlong partial line at the end of a chunk drops only its own event."""
    decoder = SSEDecoder(max_event_bytes=16)
    events = decoder.feed(b"data: a\n\ndata: " + b"z" * 40)
    events += decoder.feed(b"\ndata: rest\n\ndata: b\n\n")
    assert events == [SSEEvent(data="a"), SSEEvent(data="b")]


def test_partial_line_buffer_stays_bounded() -> None:
    """Megabytes without a line break never grow the buffer past the bound."""
    decoder = SSEDecoder(max_event_bytes=4096)
    for _ in range(1000):
        assert decoder.feed(b"y" * 1000) == []
        assert len(decoder._buffer) <= 4096
    assert decoder.feed(b"\n\ndata: ok\n\n") == [SSEEvent(data="ok")]


def test_too_much_data_in_one_event_drops_it() -> None:
    """Many short data lines adding up past the bound drop the event, not later ones."""
    decoder = SSEDecoder(max_event_bytes=100)
    stream = b"data: 0123456789\n" * 20 + b"\ndata: ok\n\n"
    assert decode(stream, decoder=decoder) == [SSEEvent(data="ok")]


def test_random_bytes_never_raise() -> None:
    """Arbitrary bytes in arbitrary chunks never make the decoder raise."""
    rng = random.Random(1234)
    alphabet = b"data:event:id\r\n :\xff\xef\xbb\xbf\x00x"
    for _ in range(300):
        stream = bytes(rng.choice(alphabet) for _ in range(rng.randrange(200)))
        cut = rng.randrange(len(stream) + 1)
        for event in decode(stream[:cut], stream[cut:], decoder=SSEDecoder(max_event_bytes=64)):
            assert isinstance(event.data, str)


def test_event_is_frozen() -> None:
    """Events are immutable values."""
    event = SSEEvent(data="x")
    with pytest.raises(AttributeError):
        event.data = "y"  # type: ignore[misc]
